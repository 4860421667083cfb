"""Feature extraction of synthetic slides: batching invariance, decode failures, empty stores, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
import zarr

from wsirisk.cli import main as cli_main
from wsirisk.features import FeaturesStoreError, load_features
from wsirisk.features.encoders import Encoder, build_encoder
from wsirisk.features.extract import ExtractOptions, Extractor, SlideJob, parse_options
from wsirisk.features.partial import partial_path
from wsirisk.features.synthetic import grid_coords, write_textured_slide, write_tiles_store
from wsirisk.slides.read import open_slide, read_tile
from wsirisk.store import atomic_group

TILE_PX = 64
WIDTH_PX, HEIGHT_PX = 512, 384  # 8 x 6 = 48 tiles
OPTIONS = {"encoder": "test_resnet", "weights": "random", "input_size_px": TILE_PX}


@pytest.fixture(scope="module")
def encoder() -> Encoder:
    return build_encoder("test_resnet", "random", input_size_px=TILE_PX)


@pytest.fixture(scope="module")
def slide(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, np.ndarray]:
    """A 64-px-tiled pyramid (one TIFF tile per grid tile) and its tiles store."""
    root = tmp_path_factory.mktemp("slide")
    from wsirisk.features.synthetic import textured_rgb
    from wsirisk.slides.pyramid import write_pyramid_tiff

    path = write_pyramid_tiff(
        root / "s1.tiff", textured_rgb(WIDTH_PX, HEIGHT_PX, seed=1), 0.5, tile_px=TILE_PX
    )
    coords = grid_coords(WIDTH_PX, HEIGHT_PX, TILE_PX)[::-1].copy()  # order is the store's
    tiles = write_tiles_store(
        root / "s1.zarr", coords, slide_path=path, slide_id="s1", patient_id="p1",
        tile_size_px=TILE_PX,
    )  # fmt: skip
    return path, tiles, coords


def _extract(encoder: Encoder, slide_path: Path, tiles: Path, out: Path, **options) -> dict:
    opts = ExtractOptions.from_dict({**OPTIONS, **options})
    return Extractor(encoder, opts, progress=False).extract_slide(slide_path, tiles, out)


def _direct(encoder: Encoder, slide_path: Path, coords: np.ndarray) -> np.ndarray:
    handle = open_slide(slide_path)
    rgb = np.stack([read_tile(handle, x, y, 0, TILE_PX, TILE_PX) for x, y in coords])
    with torch.inference_mode():
        return encoder(torch.from_numpy(rgb)).numpy()


def test_features_equal_direct_forward_whatever_batching(
    encoder: Encoder, slide: tuple[Path, Path, np.ndarray], tmp_path: Path
) -> None:
    slide_path, tiles, coords = slide
    _extract(encoder, slide_path, tiles, tmp_path / "a.zarr", batch_size=4, num_workers=0)
    _extract(encoder, slide_path, tiles, tmp_path / "b.zarr", batch_size=7, num_workers=2,
             chunk_tiles=10)  # fmt: skip
    feats_a, coords_a, attrs = load_features(tmp_path / "a.zarr")
    feats_b, coords_b, _ = load_features(tmp_path / "b.zarr")
    expected = _direct(encoder, slide_path, coords)

    assert feats_a.shape == (len(coords), 96)
    np.testing.assert_array_equal(coords_a, coords)
    np.testing.assert_array_equal(coords_b, coords)
    scale = float(np.abs(expected).max())
    assert scale > 0 and np.std(expected, axis=0).max() > 0  # not a constant output
    assert np.abs(feats_a - expected).max() <= 2e-3 * scale  # float16 storage
    assert np.abs(feats_a - feats_b).max() <= 2e-3 * scale

    stored = zarr.open_group(str(tmp_path / "a.zarr"), mode="r")
    assert stored["features"].dtype == np.float16 and stored["coords"].dtype == np.int64
    assert attrs["complete"] is True and attrs["status"] == "ok"
    assert (attrs["slide_id"], attrs["patient_id"]) == ("s1", "p1")
    assert (attrs["encoder"], attrs["dim"], attrs["weights"]) == ("test_resnet", 96, "random")
    assert attrs["random_init"] is True and attrs["weights_sha256"] is None
    assert (attrs["n_tiles"], attrs["n_tiles_failed"]) == (48, 0)
    assert attrs["transform"]["input_size_px"] == TILE_PX
    assert attrs["transform"]["mean"] == [0.5, 0.5, 0.5]
    assert not partial_path(tmp_path / "a.zarr").exists()


def _corrupt_level0_tile(path: Path, tile_index: int) -> None:
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        offset, size = page.dataoffsets[tile_index], page.databytecounts[tile_index]
    with open(path, "r+b") as handle:
        handle.seek(offset)
        handle.write(bytes(size))  # zeros: not JPEG data


@pytest.mark.parametrize("reader", ["openslide", "region", "jpeg"])
def test_undecodable_tile_is_skipped_and_counted(
    encoder: Encoder, slide: tuple[Path, Path, np.ndarray], tmp_path: Path, reader: str
) -> None:
    slide_path, tiles, coords = slide
    broken = tmp_path / "broken.tiff"
    broken.write_bytes(slide_path.read_bytes())
    per_row = WIDTH_PX // TILE_PX
    bad_xy = np.array([2 * TILE_PX, 1 * TILE_PX])  # TIFF tile (row 1, col 2)
    _corrupt_level0_tile(broken, 1 * per_row + 2)

    attrs = _extract(encoder, broken, tiles, tmp_path / "f.zarr", num_workers=2, batch_size=8,
                     reader=reader)  # fmt: skip
    feats, got_coords, _ = load_features(tmp_path / "f.zarr")
    keep = ~np.all(coords == bad_xy, axis=1)
    assert attrs["reader"] == reader
    assert (attrs["n_tiles"], attrs["n_tiles_failed"]) == (47, 1)
    assert attrs["status"] == "ok" and "1 of 48" in attrs["reason"]
    np.testing.assert_array_equal(got_coords, coords[keep])
    _extract(encoder, slide_path, tiles, tmp_path / "clean.zarr")
    clean, _, _ = load_features(tmp_path / "clean.zarr")
    np.testing.assert_allclose(feats, clean[keep], rtol=0, atol=2e-3 * np.abs(clean).max())


def test_not_ok_or_empty_tiles_store_gives_empty_valid_store(
    encoder: Encoder, slide: tuple[Path, Path, np.ndarray], tmp_path: Path
) -> None:
    slide_path = slide[0]
    skipped = write_tiles_store(
        tmp_path / "skipped.zarr", np.zeros((0, 2)), slide_path=slide_path, slide_id="s2",
        patient_id="p2", tile_size_px=TILE_PX, status="skipped", reason="no tissue found",
    )  # fmt: skip
    empty = write_tiles_store(
        tmp_path / "empty.zarr", np.zeros((0, 2)), slide_path=slide_path, slide_id="s3",
        patient_id="p3", tile_size_px=TILE_PX,
    )  # fmt: skip
    _extract(encoder, tmp_path / "absent.svs", skipped, tmp_path / "f2.zarr")
    _extract(encoder, slide_path, empty, tmp_path / "f3.zarr")
    feats, coords, attrs = load_features(tmp_path / "f2.zarr")
    assert feats.shape == (0, 96) and coords.shape == (0, 2)
    assert (attrs["status"], attrs["reason"], attrs["slide_id"]) == (
        "skipped",
        "no tissue found",
        "s2",
    )
    feats, _, attrs = load_features(tmp_path / "f3.zarr")
    assert feats.shape == (0, 96) and attrs["status"] == "ok" and attrs["n_tiles"] == 0


def test_bad_inputs_name_the_file_or_key(
    encoder: Encoder, slide: tuple[Path, Path, np.ndarray], tmp_path: Path
) -> None:
    slide_path, tiles, _ = slide
    with atomic_group(tmp_path / "nolevel.zarr", {"status": "ok", "slide_id": "x"}) as group:
        group.create_array("coords", data=np.zeros((3, 2), np.int64))
    with pytest.raises(ValueError, match=r"nolevel\.zarr.*'read_level'"):
        _extract(encoder, slide_path, tmp_path / "nolevel.zarr", tmp_path / "o.zarr")
    with pytest.raises(FileNotFoundError, match="missing.zarr"):
        _extract(encoder, slide_path, tmp_path / "missing.zarr", tmp_path / "o.zarr")
    with pytest.raises(RuntimeError, match="absent.svs"):
        _extract(encoder, tmp_path / "absent.svs", tiles, tmp_path / "o.zarr")
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['batchsize'\]"):
        parse_options(json.dumps({"batchsize": 3}))
    with pytest.raises(ValueError, match="--options: not valid JSON"):
        parse_options("{encoder: x}")
    with atomic_group(tmp_path / "incomplete.zarr", {"status": "ok"}) as group:
        group.create_array("features", data=np.zeros((1, 4), np.float16))
    with pytest.raises(FeaturesStoreError, match=r"incomplete\.zarr.*not complete"):
        load_features(tmp_path / "incomplete.zarr")


def test_stale_partial_with_other_identity_is_discarded(
    encoder: Encoder, slide: tuple[Path, Path, np.ndarray], tmp_path: Path
) -> None:
    slide_path, tiles, coords = slide
    out = tmp_path / "f.zarr"
    stale = zarr.open_group(str(partial_path(out)), mode="w", zarr_format=3)
    stale.create_array("features", shape=(len(coords), 96), chunks=(256, 96), dtype="float16")
    stale.create_array("tile_ok", shape=(len(coords),), chunks=(256,), dtype="uint8")
    stale["features"][...] = 7.0
    stale["tile_ok"][...] = 1
    stale.attrs.update({"identity": {"tiles_sha256": "other"}, "n_done": len(coords)})
    _extract(encoder, slide_path, tiles, out)
    feats, _, _ = load_features(out)
    assert not np.any(feats == 7.0)
    np.testing.assert_allclose(
        feats, _direct(encoder, slide_path, coords), rtol=0, atol=2e-3 * np.abs(feats).max()
    )


def test_cli_extracts_several_slides_in_one_job(
    slide: tuple[Path, Path, np.ndarray], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    slide_path, tiles, coords = slide
    other = write_textured_slide(tmp_path / "s9.tiff", 256, 128, seed=9)
    other_tiles = write_tiles_store(
        tmp_path / "s9.zarr", grid_coords(256, 128, TILE_PX), slide_path=other, slide_id="s9",
        patient_id="p9", tile_size_px=TILE_PX,
    )  # fmt: skip
    options = json.dumps({**OPTIONS, "batch_size": 16, "num_workers": 1})
    argv = ["extract", "--options", options, "--no-progress", "--threads", "2"]
    argv += ["--slide", str(slide_path), "--tiles", str(tiles), "--out", str(tmp_path / "a.zarr")]
    argv += ["--slide", str(other), "--tiles", str(other_tiles), "--out", str(tmp_path / "b.zarr")]
    assert cli_main(argv) == 0
    assert "RANDOM weights" in caplog.text
    feats_a, coords_a, _ = load_features(tmp_path / "a.zarr")
    feats_b, coords_b, attrs_b = load_features(tmp_path / "b.zarr")
    assert feats_a.shape == (48, 96) and feats_b.shape == (8, 96)
    np.testing.assert_array_equal(coords_a, coords)
    assert attrs_b["slide_id"] == "s9"
    assert cli_main(argv[:-2]) == 2  # --out given once less than --slide


def test_resize_on_device_gives_the_loader_features_and_is_its_own_identity(
    slide: tuple[Path, Path, np.ndarray], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``resize_on: device``: workers stop at the tile size, the device resizes 64 -> 56 px
    (INTER_AREA at 8/7, as 256 -> 224); same features within rounding, recorded, never mixed."""
    import cv2

    from wsirisk.features import devicedecode

    slide_path, tiles, coords = slide
    small = build_encoder("test_resnet", "random", input_size_px=56)
    calls: list[tuple[int, ...]] = []
    real_call = devicedecode.DeviceResize.__call__

    def spy(self, batch: torch.Tensor) -> torch.Tensor:
        calls.append(tuple(batch.shape))
        return real_call(self, batch)

    monkeypatch.setattr(devicedecode.DeviceResize, "__call__", spy)
    opts = {**OPTIONS, "input_size_px": 56, "batch_size": 8}

    def extract(out: Path, where: str, workers: int) -> tuple:
        options = ExtractOptions.from_dict({**opts, "resize_on": where, "num_workers": workers})
        outcome = Extractor(small, options, progress=False).extract_slides(
            [SlideJob(slide_path, tiles, out)])[0]  # fmt: skip
        return outcome.action, *load_features(out)

    action, f_loader, _, a_loader = extract(tmp_path / "loader.zarr", "loader", 0)
    assert calls == [] and a_loader["resize_on"] == "loader"
    action, f_device, c_device, a_device = extract(tmp_path / "device.zarr", "device", 2)
    assert action == "extracted" and a_device["resize_on"] == "device"
    assert calls and all(shape[1:] == (TILE_PX, TILE_PX, 3) for shape in calls)  # tile size in
    np.testing.assert_array_equal(c_device, coords)

    handle = open_slide(slide_path)
    rgb = np.stack([cv2.resize(read_tile(handle, x, y, 0, TILE_PX, TILE_PX), (56, 56),
                               interpolation=cv2.INTER_AREA) for x, y in coords])  # fmt: skip
    with torch.inference_mode():
        expected = small(torch.from_numpy(rgb)).numpy()
    scale = float(np.abs(expected).max())
    assert np.abs(f_loader - expected).max() <= 2e-3 * scale
    # device rounding differs from OpenCV's by at most one grey level on a few pixels
    assert np.abs(f_device - expected).max() <= 2e-2 * scale
    assert np.abs(f_device - f_loader).mean() <= 2e-3 * scale

    # a store made with the loader's resize is not taken as done when the device resizes
    calls.clear()
    action, again, _, attrs = extract(tmp_path / "loader.zarr", "device", 0)
    assert action == "extracted" and attrs["resize_on"] == "device" and calls
    np.testing.assert_array_equal(again, f_device)
    action, *_ = extract(tmp_path / "loader.zarr", "device", 0)
    assert action == "done"
    with pytest.raises(ValueError, match="resize_on must be one of auto|loader|device"):
        ExtractOptions.from_dict({**opts, "resize_on": "gpu"})
