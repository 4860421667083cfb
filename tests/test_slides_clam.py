"""Export to CLAM's create_patches_fp h5 layout (what extract_features_fp.py reads)."""

from __future__ import annotations

from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
import zarr

from wsirisk.cli import main
from wsirisk.layout import SLIDE_COORDS
from wsirisk.slides.pyramid import write_pyramid_tiff
from wsirisk.slides.read import open_slide, read_tile, rgba_to_rgb
from wsirisk.slides.synthetic import tissue_image
from wsirisk.slides.tile import tile_slide


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("clam")
    scene = tissue_image(2048, 1536, [(1000, 750, 700, 500)])
    slide = write_pyramid_tiff(root / "s40.svs", scene, 0.25, n_levels=3, level_factor=4)
    options = {"preset": "biopsy"}
    tile_slide(slide, root / "ok.zarr", slide_id="OK-1", patient_id="P", options=options)
    tile_slide(root / "nope.svs", root / "bad.zarr", slide_id="BAD-1", patient_id="P")
    return {"slide": slide, "ok": root / "ok.zarr", "bad": root / "bad.zarr", "root": root}


def test_export_matches_clam_layout_and_reads_the_same_pixels(stores: dict) -> None:
    out = stores["root"] / "patches" / "OK-1.h5"
    assert main(["export-clam", str(stores["ok"]), "--out", str(out)]) == 0
    ours = zarr.open_group(str(stores["ok"]), mode="r")[SLIDE_COORDS][:]
    with h5py.File(out, "r") as handle:
        assert list(handle.keys()) == ["coords"]
        dataset = handle["coords"]
        coords = dataset[:]
        attrs = dict(dataset.attrs)
    assert coords.dtype == np.int64 and np.array_equal(coords, ours) and len(coords) > 0
    assert (attrs["patch_size"], attrs["patch_level"], attrs["target_patch_size"]) == (512, 0, 256)
    assert list(attrs["downsample"]) == [1.0, 1.0]
    assert list(attrs["level_dim"]) == [2048, 1536] == list(attrs["downsampled_level_dim"])
    assert attrs["name"] == "OK-1" and attrs["status"] == "ok"
    assert attrs["save_path"] == str(out.parent)
    # CLAM's Whole_Slide_Bag_FP: read_region(coord, patch_level, (patch_size,) * 2), resize
    slide = open_slide(stores["slide"])
    x, y = coords[0]
    size = int(attrs["patch_size"])
    region = rgba_to_rgb(np.asarray(slide.read_region((int(x), int(y)), 0, (size, size))))
    clam_tile = cv2.resize(region, (256, 256), interpolation=cv2.INTER_AREA)
    assert np.array_equal(clam_tile, read_tile(slide, x, y, 0, 512, 256))


def test_failed_slide_exports_empty_coords(stores: dict) -> None:
    out = stores["root"] / "patches" / "BAD-1.h5"
    assert main(["export-clam", str(stores["bad"]), "--out", str(out)]) == 0
    with h5py.File(out, "r") as handle:
        assert handle["coords"].shape == (0, 2)
        assert handle["coords"].attrs["status"] == "failed"


def test_missing_store_is_an_error_naming_it(stores: dict, capsys) -> None:
    out = stores["root"] / "x.h5"
    assert main(["export-clam", str(stores["root"] / "gone.zarr"), "--out", str(out)]) == 1
    assert "gone.zarr" in capsys.readouterr().err and not out.exists()
