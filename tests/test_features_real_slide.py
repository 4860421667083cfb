"""The real 20x Aperio slide (CMU-1-Small-Region.svs, 0.499 um/px): tiling, then extraction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from wsirisk.features import load_features
from wsirisk.features.encoders import build_encoder
from wsirisk.features.extract import ExtractOptions, Extractor
from wsirisk.slides.read import open_slide, read_tile
from wsirisk.slides.tile import tile_slide
from wsirisk.store import open_group


def test_cmu_small_region_tiles_and_extracts(shared_dir: Path, tmp_path: Path) -> None:
    svs = shared_dir / "wsi" / "CMU-1-Small-Region.svs"
    tiles_attrs = tile_slide(
        svs,
        tmp_path / "CMU-1.zarr",
        slide_id="CMU-1",
        patient_id="CMU",
        options={"preset": "biopsy"},
    )
    assert tiles_attrs["status"] == "ok" and abs(tiles_attrs["mpp"] - 0.499) < 1e-6
    tile_coords = np.asarray(open_group(tmp_path / "CMU-1.zarr")["coords"][...])
    assert len(tile_coords) >= 20

    encoder = build_encoder("resnet50_trunc", "random")  # the pipeline's default encoder
    options = ExtractOptions(batch_size=16, num_workers=2)
    attrs = Extractor(encoder, options, progress=False).extract_slide(
        svs, tmp_path / "CMU-1.zarr", tmp_path / "feat.zarr"
    )
    feats, coords, stored = load_features(tmp_path / "feat.zarr")
    assert attrs == {k: stored[k] for k in attrs} and stored["complete"] is True
    assert feats.shape == (len(tile_coords), 1024) and np.isfinite(feats).all()
    np.testing.assert_array_equal(coords, tile_coords)
    assert stored["transform"]["resize"] == "cv2.INTER_AREA"  # 256 px tiles -> 224 px input
    assert (stored["n_tiles_failed"], stored["random_init"]) == (0, True)
    assert np.std(feats, axis=0).mean() > 0  # tiles differ

    # one tile recomputed by hand: 256 px read at level 0, INTER_AREA to 224, encoder
    import cv2

    x, y = tile_coords[len(tile_coords) // 2]
    rgb = read_tile(open_slide(svs), x, y, 0, 256, 256)
    rgb = cv2.resize(rgb, (224, 224), interpolation=cv2.INTER_AREA)
    with torch.inference_mode():
        expected = encoder(torch.from_numpy(rgb)[None]).numpy()[0]
    got = feats[len(tile_coords) // 2]
    assert np.abs(got - expected).max() <= 2e-3 * np.abs(expected).max()
