"""Tile readers: each fast path gives OpenSlide's pixels (within JPEG/resize rounding), fails on
exactly the tiles OpenSlide fails on, and falls back to OpenSlide, saying why, when unproven."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from wsirisk.features.dataset import TileGeometry
from wsirisk.features.devicedecode import DeviceDecoder, area_weights
from wsirisk.features.jpegtiff import find_level, header_markers, implied_transform
from wsirisk.features.readers import (
    NvjpegReader,
    ReadSpec,
    _Refused,
    _self_check,
    make_reader,
    plan_blocks,
    plan_reader,
    units,
)
from wsirisk.features.synthetic import textured_rgb
from wsirisk.slides.pyramid import write_pyramid_tiff
from wsirisk.slides.read import open_slide

WIDTH_PX, HEIGHT_PX, STORED_PX = 600, 440, 80  # 8 x 6 stored tiles, partial at right/bottom
INPUT_PX = 56


def _grid(read_px: int) -> np.ndarray:
    """The tiling stage's grid: origin (0, 0), tiles may run past the right/bottom edge."""
    xs, ys = np.arange(0, WIDTH_PX, read_px), np.arange(0, HEIGHT_PX, read_px)
    return np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2).astype(np.int64)


@pytest.fixture(scope="module")
def pyramid(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("readers")
    rgb = textured_rgb(WIDTH_PX, HEIGHT_PX, seed=3)
    return write_pyramid_tiff(root / "s.tiff", rgb, 0.25, tile_px=STORED_PX)


CASES = {"20x": TileGeometry(0, 64, 64, INPUT_PX), "40x": TileGeometry(0, 128, 64, INPUT_PX)}


def _read_all(spec: ReadSpec, unit: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Read every tile as the stream does: units announced, then batches of 8."""
    reader = make_reader(spec)
    tiles, oks = [], []
    try:
        for a, b in units(len(spec.coords), 0, 8, unit):
            indices = np.arange(a, b)
            reader.begin_unit(indices)
            for s in range(a, b, 8):
                t, ok = reader.read(np.arange(s, min(s + 8, b)))
                tiles.append(t)
                oks.append(ok)
    finally:
        reader.close()
    return np.concatenate(tiles), np.concatenate(oks)


def _device_read(spec: ReadSpec) -> tuple[np.ndarray, np.ndarray]:
    """The nvjpeg reader's two halves, the device half on the CPU."""
    spec = replace(spec, reader="nvjpeg", scale=1)
    indices = np.arange(len(spec.coords))
    payload, _ = NvjpegReader(spec).read(indices)
    tiles, ok = DeviceDecoder(spec, "cpu").decode(torch.from_numpy(indices), payload)
    return tiles.numpy(), ok.numpy()


def _diff(a: np.ndarray, b: np.ndarray) -> tuple[float, int]:
    d = np.abs(a.astype(np.int16) - b.astype(np.int16))
    return float(d.mean()), int(d.max())


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_reader_matches_openslide(pyramid: Path, case: str) -> None:
    geometry = CASES[case]
    coords = _grid(geometry.read_size_px)
    reference, ok_ref = _read_all(plan_reader(pyramid, coords, geometry, "openslide"))
    assert ok_ref.all() and reference.std() > 10  # textured, not blank
    assert (reference[-1] == 255).any()  # the last tile runs past the corner: white there

    region = plan_reader(pyramid, coords, geometry, "region")
    exact = plan_reader(pyramid, coords, geometry, "jpeg", allow_scaled=False)
    assert (region.reader, exact.reader, exact.scale) == ("region", "jpeg", 1)
    for spec in (region, exact):  # same decoder, same resize: the same bytes
        tiles, ok = _read_all(spec)
        assert ok.all() and _diff(tiles, reference) == (0.0, 0), spec.describe()

    tiles, ok = _device_read(exact)  # torch resize rounding
    mean, worst = _diff(tiles, reference)
    assert ok.all() and mean < 0.1 and worst <= 2

    auto = plan_reader(pyramid, coords, geometry, "auto")
    assert auto.reader == "jpeg"
    tiles, ok = _read_all(auto)
    mean, worst = _diff(tiles, reference)
    if case == "40x":  # DCT-domain 1/2 decode instead of full decode + INTER_AREA
        assert auto.scale == 2 and "1/2" in auto.note
        assert 0 < mean < 1.5 and worst <= 32
    else:
        assert auto.scale == 1 and (mean, worst) == (0.0, 0)


def test_scaled_decode_needs_aligned_tiles(pyramid: Path) -> None:
    geometry = CASES["40x"]
    odd = _grid(128) + np.array([1, 0])  # odd x: half a pixel off at 1/2 scale
    spec = plan_reader(pyramid, odd, geometry, "auto")
    assert (spec.reader, spec.scale) == ("jpeg", 1)


def _corrupt(src: Path, dst: Path, tile_no: int, how: str) -> None:
    dst.write_bytes(src.read_bytes())
    with tifffile.TiffFile(dst) as tif:
        offset, size = tif.pages[0].dataoffsets[tile_no], tif.pages[0].databytecounts[tile_no]
    with open(dst, "r+b") as handle:
        if how == "zeros":  # no JPEG at all
            handle.seek(offset)
            handle.write(bytes(size))
        elif how == "garbled":  # a bad marker inside the scan: an error mid-decode
            handle.seek(offset + size // 2)
            handle.write(bytes(range(256))[: size // 4])
        else:  # junk after the last MCU: libjpeg warns only at the end, OpenSlide never sees it
            handle.seek(offset + size - 40)
            handle.write(bytes(range(100, 138)))


@pytest.mark.parametrize("how", ["zeros", "garbled", "trailing"])
def test_corrupt_stored_tile_fails_the_same_tiles(pyramid: Path, tmp_path: Path, how: str) -> None:
    broken = tmp_path / "broken.tiff"
    _corrupt(pyramid, broken, 8 + 2, how)  # stored tile (row 1, col 2)
    for geometry in CASES.values():
        coords = _grid(geometry.read_size_px)
        _, ok_ref = _read_all(plan_reader(broken, coords, geometry, "openslide"))
        n_bad = int((~ok_ref).sum())
        assert (0 < n_bad < len(coords)) if how != "trailing" else n_bad == 0
        specs = [plan_reader(broken, coords, geometry, "region")]
        specs += [plan_reader(broken, coords, geometry, "jpeg", allow_scaled=s) for s in (0, 1)]
        assert [s.reader for s in specs] == ["region", "jpeg", "jpeg"]
        for spec in specs:
            tiles, ok = _read_all(spec)
            np.testing.assert_array_equal(ok, ok_ref, err_msg=spec.describe())
            assert not tiles[~ok].any()  # failed tiles are zeros
        if how == "zeros":  # torchvision's decoder does not treat warnings as errors
            tiles, ok = _device_read(specs[1])
            np.testing.assert_array_equal(ok, ok_ref)


def test_fast_path_refused_for_deflate_tiff_with_a_logged_reason(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "deflate.tiff"
    rgb = textured_rgb(256, 192, seed=1)
    with tifffile.TiffWriter(path) as tif:
        tif.write(rgb, tile=(64, 64), compression="zlib", photometric="rgb")
    geometry = TileGeometry(0, 64, 64, INPUT_PX)
    coords = _grid(64)[:6]
    with caplog.at_level(logging.INFO, logger="wsirisk.readers"):
        spec = plan_reader(path, coords, geometry, "auto")
    assert spec.reader == "openslide"
    assert "compression 8" in spec.note and "compression 8" in caplog.text
    assert "falling back to openslide" in caplog.text
    region = plan_reader(path, coords, geometry, "region")  # OpenSlide reads any format
    reference, _ = _read_all(spec)
    tiles, _ = _read_all(region)
    assert region.reader == "region" and _diff(tiles, reference) == (0.0, 0)
    with caplog.at_level(logging.WARNING, logger="wsirisk.readers"):
        forced = plan_reader(path, coords, geometry, "jpeg")  # asked for, cannot: warned
    assert forced.reader == "openslide" and "fallback from jpeg" in forced.note


def test_unaligned_level_coordinates_fall_back_to_openslide(pyramid: Path) -> None:
    slide = open_slide(pyramid)
    assert slide.level_count > 1 and slide.level_downsamples[1] == 4.0
    geometry = TileGeometry(1, 16, 16, INPUT_PX)
    coords = np.array([[0, 0], [6, 4]])  # 6 / 4 is not a level-1 pixel
    spec = plan_reader(pyramid, coords, geometry, "auto")
    assert spec.reader == "openslide" and "not multiples" in spec.note
    aligned = plan_reader(pyramid, coords * 4, geometry, "auto")
    reference, _ = _read_all(plan_reader(pyramid, coords * 4, geometry, "openslide"))
    tiles, _ = _read_all(aligned)
    assert aligned.reader == "jpeg" and _diff(tiles, reference) == (0.0, 0)


def test_jpeg_markers_and_area_weights() -> None:
    jfif = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xda\x00\x02"
    assert implied_transform(header_markers(jfif)) == 1
    adobe = b"\xff\xd8\xff\xee\x00\x0eAdobe\x00\x64\x00\x00\x00\x00\x00\xff\xda\x00\x02"
    assert implied_transform(header_markers(adobe)) == 0
    assert implied_transform(header_markers(b"\xff\xd8\xff\xda\x00\x02")) is None
    weights = area_weights(256, 224)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    np.testing.assert_allclose(area_weights(4, 2), [[0.5, 0.5, 0, 0], [0, 0, 0.5, 0.5]])


def test_plan_blocks_groups_neighbours_only() -> None:
    size = 10
    rows = [(x, y) for y in (0, 10, 20) for x in (0, 10, 20, 30)]  # a 4 x 3 block
    far = [(500, 0), (510, 0)]  # a separate run
    xy = np.array(rows + far)
    boxes, block_of = plan_blocks(xy, size)
    assert len(boxes) == 2
    assert boxes[block_of[0]] == (0, 0, 40, 30) and boxes[block_of[-1]] == (500, 0, 20, 10)
    boxes, _ = plan_blocks(xy, size, max_px=20)
    assert all(w <= 20 and h <= 20 for _, _, w, h in boxes)
    assert plan_blocks(np.zeros((0, 2), np.int64), size)[0] == []


def test_real_aperio_jpeg_slide_matches_openslide(shared_dir: Path) -> None:
    svs = shared_dir / "wsi" / "CMU-1-Small-Region.svs"
    if not svs.exists():
        pytest.skip(f"{svs} absent")
    geometry = TileGeometry(0, 256, 256, 224)
    coords = np.array([[0, 0], [256, 256], [1024, 768], [2048, 2816], [512, 1792]])
    reference, _ = _read_all(plan_reader(svs, coords, geometry, "openslide"))
    spec = plan_reader(svs, coords, geometry, "auto")
    assert spec.reader == "jpeg" and spec.level is not None and spec.level.transform == 0
    tiles, ok = _read_all(spec)
    assert ok.all() and _diff(tiles, reference) == (0.0, 0)  # RGB JPEG, no colour transform
    tiles, ok = _device_read(spec)
    assert ok.all() and _diff(tiles, reference)[0] < 0.1
    # the self-check catches a wrong colour transform (YCbCr decode of the RGB tiles)
    wrong = replace(spec.level, prefix=spec.level.prefix.replace(b"Adobe\x00\x64" + bytes(4) +
                                                                 b"\x00", b"Adobe\x00\x64" +
                                                                 bytes(4) + b"\x01"))  # fmt: skip
    with pytest.raises(_Refused, match="differs from OpenSlide"):
        _self_check(open_slide(svs), replace(spec, level=wrong))


def test_real_jpeg2000_slide_falls_back_to_openslide(
    shared_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    svs = shared_dir / "wsi" / "TCGA-CR-7395-01A-01-TS1.svs"
    if not svs.exists():
        pytest.skip(f"{svs} absent")
    geometry = TileGeometry(0, 256, 256, 224)
    coords = np.array([[1024, 1024], [1280, 1024]])
    with caplog.at_level(logging.INFO, logger="wsirisk.readers"):
        spec = plan_reader(svs, coords, geometry, "auto")
    assert spec.reader == "openslide" and "compression 33005" in caplog.text
    reference, _ = _read_all(spec)
    tiles, ok = _read_all(plan_reader(svs, coords, geometry, "region"))
    assert ok.all() and _diff(tiles, reference) == (0.0, 0)
    with pytest.raises(Exception, match="33005"):
        find_level(svs, 4443, 3567)


def test_repeated_slide_is_a_jpeg_slide_the_fast_path_reads_exactly(tmp_path: Path) -> None:
    from wsirisk.features.synthetic import write_repeated_slide

    path = write_repeated_slide(tmp_path / "r.svs", 500, 300, 0.25, stored_px=80, period_px=160)
    slide = open_slide(path)
    assert slide.properties["openslide.vendor"] == "aperio" and slide.dimensions == (500, 300)
    assert abs(float(slide.properties["openslide.mpp-x"]) - 0.25) < 1e-6
    geometry = TileGeometry(0, 64, 64, INPUT_PX)
    coords = np.array([[0, 0], [160, 0], [448, 256], [96, 64]])
    reference, _ = _read_all(plan_reader(path, coords, geometry, "openslide"))
    tiles, ok = _read_all(plan_reader(path, coords, geometry, "auto"))
    assert ok.all() and _diff(tiles, reference) == (0.0, 0)
    np.testing.assert_array_equal(reference[0], reference[1])  # the texture repeats
    with pytest.raises(ValueError, match="multiple"):
        write_repeated_slide(tmp_path / "x.svs", 100, 100, 0.5, stored_px=80, period_px=100)


@pytest.mark.parametrize(("size_in", "size_out"), [(256, 224), (128, 64), (64, 80)])
def test_device_resize_matches_opencv(size_in: int, size_out: int) -> None:
    import cv2

    from wsirisk.features.devicedecode import DeviceResize

    tiles = textured_rgb(size_in, size_in * 2, seed=5).reshape(2, size_in, size_in, 3)
    flag = cv2.INTER_AREA if size_out < size_in else cv2.INTER_LINEAR
    expected = np.stack([cv2.resize(t, (size_out, size_out), interpolation=flag) for t in tiles])
    got = DeviceResize(size_in, size_out, torch.device("cpu"))(torch.from_numpy(tiles)).numpy()
    mean, worst = _diff(got, expected)
    assert got.shape == expected.shape and mean < 0.2 and worst <= 1  # rounding only


def test_missing_decoder_package_falls_back_to_openslide(
    pyramid: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "simplejpeg", None)  # import fails as if not installed
    geometry = CASES["20x"]
    spec = plan_reader(pyramid, _grid(64)[:4], geometry, "auto")
    assert spec.reader == "openslide" and "simplejpeg is not installed" in spec.note


@pytest.mark.parametrize("case", sorted(CASES))
def test_device_assembly_in_small_canvases_gives_the_same_tiles(
    pyramid: Path, case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch too wide for one canvas is cut into several; the tiles do not change."""
    import wsirisk.features.devicedecode as devicedecode

    exact = plan_reader(pyramid, _grid(CASES[case].read_size_px), CASES[case], "jpeg",
                        allow_scaled=False)  # fmt: skip
    whole, ok_whole = _device_read(exact)
    spec = replace(exact, reader="nvjpeg", scale=1)
    xy = torch.as_tensor(spec.coords)
    assert devicedecode._groups(xy, CASES[case].read_size_px, spec.level) == [(0, len(xy))]
    monkeypatch.setattr(devicedecode, "CANVAS_MAX_PX", 2 * STORED_PX * 3 * STORED_PX)
    groups = devicedecode._groups(xy, CASES[case].read_size_px, spec.level)
    assert len(groups) > 2 and groups[0][0] == 0 and groups[-1][1] == len(xy)
    assert all(a < b for a, b in groups) and all(
        b == c for (_, b), (c, _) in zip(groups[:-1], groups[1:], strict=True)
    )
    split, ok_split = _device_read(exact)
    np.testing.assert_array_equal(split, whole)
    np.testing.assert_array_equal(ok_split, ok_whole)
