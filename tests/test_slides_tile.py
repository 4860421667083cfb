"""`wsirisk tile` on generated 40x / 20x pyramids: read plans, pixel agreement, outputs, CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import zarr

from wsirisk.cli import main
from wsirisk.layout import SLIDE_COORDS, SLIDE_MASK
from wsirisk.slides.compare import coverage_iou
from wsirisk.slides.outputs import TILE_RGB
from wsirisk.slides.pyramid import write_pyramid_tiff
from wsirisk.slides.read import open_slide, read_tile
from wsirisk.slides.synthetic import tissue_image
from wsirisk.slides.tile import tile_slide

# areas are level-0 px: the hole is 785k px at 40x but 196k px at 20x, so keep both
OPTIONS = {"preset": "biopsy", "segmentation": {"mthresh": 5, "min_hole_area_level0": 100_000}}
REQUIRED_ATTRS = (
    "status reason slide_id patient_id slide_path mpp mpp_source target_mpp tile_size_px "
    "overlap_px read_level read_size_px level0_width level0_height mask_downsample "
    "tissue_area_mm2 n_tiles params_hash preset segmentation"
).split()


@pytest.fixture(scope="module")
def scene() -> np.ndarray:
    """4096 x 3072 level-0 px at 40x: one tissue piece with a big hole, and a speck."""
    return tissue_image(
        4096, 3072, [(2000, 1500, 1500, 1000), (3800, 300, 60, 60)], [(1600, 1300, 500)]
    )


@pytest.fixture(scope="module")
def slides(tmp_path_factory: pytest.TempPathFactory, scene: np.ndarray) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("pyramids")
    half = cv2.resize(scene, (2048, 1536), interpolation=cv2.INTER_AREA)
    return {
        # 40x with levels 1, 4, 16: no 20x level -> read 512 px at level 0
        "40x": write_pyramid_tiff(root / "s40.svs", scene, 0.25, n_levels=3, level_factor=4),
        # 40x with levels 1, 2, 4, 8: a 20x level -> read 256 px at level 1
        "40x_l2": write_pyramid_tiff(root / "s40b.svs", scene, 0.25, n_levels=4, level_factor=2),
        "20x": write_pyramid_tiff(root / "s20.svs", half, 0.5, n_levels=3, level_factor=4),
    }


@pytest.fixture(scope="module")
def tiled(slides: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    root = tmp_path_factory.mktemp("tiled")
    out = {}
    for name, path in slides.items():
        attrs = tile_slide(
            path,
            root / f"{name}.zarr",
            slide_id=f"s-{name}",
            patient_id="P1",
            options=OPTIONS,
            geojson=root / f"{name}.geojson",
            thumbnail=root / f"{name}.png",
        )
        group = zarr.open_group(str(root / f"{name}.zarr"), mode="r")
        out[name] = {
            "attrs": attrs,
            "store_attrs": dict(group.attrs),
            "coords": group[SLIDE_COORDS][:],
            "mask": group[SLIDE_MASK][:],
            "geojson": root / f"{name}.geojson",
            "png": root / f"{name}.png",
            "root": root,
        }
    return out


def test_40x_reads_512_at_level0_and_matches_a_direct_level0_read(
    tiled: dict, slides: dict, scene: np.ndarray
) -> None:
    result = tiled["40x"]
    attrs = result["attrs"]
    assert attrs["status"] == "ok", attrs["reason"]
    assert (attrs["mpp"], attrs["mpp_source"]) == (0.25, "openslide.mpp-x")
    assert (attrs["read_level"], attrs["read_size_px"], attrs["tile_size_level0"]) == (0, 512, 512)
    coords = result["coords"]
    assert coords.dtype == np.int64 and coords.ndim == 2 and coords.shape[1] == 2
    assert len(coords) == attrs["n_tiles"] >= 10
    assert np.all(coords % 512 == 0)
    slide = open_slide(slides["40x"])
    for x, y in coords[:: max(1, len(coords) // 4)]:
        tile = read_tile(slide, x, y, 0, 512, 256)
        expected = cv2.resize(
            scene[y : y + 512, x : x + 512], (256, 256), interpolation=cv2.INTER_AREA
        )
        assert tile.shape == (256, 256, 3)
        assert np.abs(tile.astype(int) - expected).mean() < 3.0  # JPEG error only


def test_a_20x_level_is_read_directly_with_the_same_pixels(tiled: dict, slides: dict) -> None:
    attrs = tiled["40x_l2"]["attrs"]
    assert (attrs["read_level"], attrs["read_size_px"], attrs["tile_size_level0"]) == (1, 256, 512)
    slide = open_slide(slides["40x_l2"])
    for x, y in tiled["40x_l2"]["coords"][:3]:
        from_level1 = read_tile(slide, x, y, 1, 256, 256)
        from_level0 = read_tile(slide, x, y, 0, 512, 256)
        assert np.abs(from_level1.astype(int) - from_level0).mean() < 3.0


def test_tiling_does_not_depend_on_scan_resolution_or_pyramid(tiled: dict) -> None:
    t40, t40b, t20 = tiled["40x"], tiled["40x_l2"], tiled["20x"]
    assert (t20["attrs"]["read_level"], t20["attrs"]["read_size_px"]) == (0, 256)
    iou_pyramid = coverage_iou(t40["coords"], 512, t40b["coords"], 512, 4096, 3072)
    iou_scan = coverage_iou(t40["coords"], 512, t20["coords"] * 2, 512, 4096, 3072)
    assert iou_pyramid >= 0.9 and iou_scan >= 0.9
    area40, area20 = t40["attrs"]["tissue_area_mm2"], t20["attrs"]["tissue_area_mm2"]
    expected_mm2 = np.pi * (1500 * 1000 - 500 * 500) * 0.25**2 / 1e6
    assert area40 == pytest.approx(expected_mm2, rel=0.1)
    assert area20 == pytest.approx(area40, rel=0.1)  # 20x mask: 32 um/px, 40x: 16 um/px


def test_hole_and_speck_are_not_tiled(tiled: dict) -> None:
    coords = tiled["40x"]["coords"]
    centres = coords + 256
    in_hole = np.hypot(centres[:, 0] - 1600, centres[:, 1] - 1300) < 300
    assert not in_hole.any()
    assert not np.any((coords[:, 0] >= 3584) & (coords[:, 1] < 512))  # the speck's tile
    assert tiled["40x"]["attrs"]["n_tissue_pieces"] == 1
    assert tiled["40x"]["attrs"]["n_holes"] == 1


def test_store_attributes_and_mask(tiled: dict) -> None:
    attrs = tiled["40x"]["store_attrs"]
    for key in REQUIRED_ATTRS:
        assert key in attrs, key
    assert attrs["segmentation"]["mthresh"] == 5 and attrs["preset"] == "biopsy"
    mask = tiled["40x"]["mask"]
    assert mask.dtype == np.uint8 and set(np.unique(mask).tolist()) == {0, 1}
    assert mask.shape == (3072 // 64, 4096 // 64) and attrs["mask_downsample"] == 64.0
    leftovers = [p.name for p in tiled["40x"]["root"].iterdir() if ".tmp-" in p.name]
    assert leftovers == []


def test_geojson_is_a_qupath_feature_collection_in_level0_px(tiled: dict) -> None:
    collection = json.loads(tiled["40x"]["geojson"].read_text())
    assert collection["type"] == "FeatureCollection"
    (feature,) = collection["features"]
    assert feature["geometry"]["type"] == "Polygon"
    assert feature["properties"]["objectType"] == "annotation"
    exterior, hole = feature["geometry"]["coordinates"]
    for ring in (exterior, hole):
        assert ring[0] == ring[-1] and len(ring) >= 4
    xs = np.array([p[0] for p in exterior])
    ys = np.array([p[1] for p in exterior])
    tol = 2 * 64  # two mask pixels (the mask is at downsample 64)
    assert abs(xs.min() - 500) < tol and abs(xs.max() - 3500) < tol  # ellipse x: 500 .. 3500
    assert abs(ys.min() - 500) < tol and abs(ys.max() - 2500) < tol
    hx = np.array([p[0] for p in hole])
    assert abs(hx.min() - 1100) < tol and abs(hx.max() - 2100) < tol  # hole x: 1100 .. 2100


def test_thumbnail_shows_tiles(tiled: dict) -> None:
    image = cv2.imread(str(tiled["40x"]["png"]))
    assert image is not None and max(image.shape[:2]) >= 512
    bgr = np.array(TILE_RGB[::-1])
    assert np.all(image == bgr, axis=-1).sum() > 100


def test_same_inputs_same_outputs(slides: dict, tiled: dict, tmp_path: Path) -> None:
    again = tile_slide(
        slides["40x"], tmp_path / "again.zarr", slide_id="s-40x", patient_id="P1", options=OPTIONS
    )
    assert again == tiled["40x"]["attrs"]
    coords = zarr.open_group(str(tmp_path / "again.zarr"), mode="r")[SLIDE_COORDS][:]
    assert np.array_equal(coords, tiled["40x"]["coords"])


def test_cli_tile_and_invalid_options(slides: dict, tmp_path: Path, capsys) -> None:
    out = tmp_path / "cli.zarr"
    argv = [
        "tile",
        str(slides["20x"]),
        "--slide-id",
        "S20",
        "--patient-id",
        "P2",
        "--out",
        str(out),
    ]
    argv += ["--geojson", str(tmp_path / "cli.geojson"), "--thumbnail", str(tmp_path / "cli.png")]
    assert main([*argv, "--options", json.dumps(OPTIONS)]) == 0
    attrs = dict(zarr.open_group(str(out), mode="r").attrs)
    assert attrs["status"] == "ok" and attrs["patient_id"] == "P2"
    assert (tmp_path / "cli.geojson").is_file() and (tmp_path / "cli.png").is_file()
    assert main([*argv, "--options", '{"segmentation": {"close": 4}}']) == 2
    assert "slides.segmentation.close" in capsys.readouterr().err
    assert main([*argv, "--options", "{}", "--mpp-override", "0.25"]) == 0
    attrs = dict(zarr.open_group(str(out), mode="r").attrs)
    assert (attrs["mpp"], attrs["mpp_source"], attrs["read_size_px"]) == (0.25, "override", 512)
    assert main([*argv, "--options", "{}", "--mpp-override", ""]) == 0  # empty cell: metadata
    attrs = dict(zarr.open_group(str(out), mode="r").attrs)
    assert (attrs["mpp"], attrs["mpp_source"]) == (0.5, "openslide.mpp-x")
    with pytest.raises(SystemExit):
        main([*argv, "--mpp-override", "-1"])
    assert main([*argv[:3], "../bad", *argv[4:]]) == 2  # unsafe slide id


def test_whole_job_imports_no_torch(slides: dict, tmp_path: Path) -> None:
    code = (
        "import sys; from wsirisk.cli import main; "
        f"rc = main(['tile', {str(slides['40x'])!r}, '--slide-id', 'S', '--patient-id', 'P', "
        f"'--out', {str(tmp_path / 'job.zarr')!r}, '--thumbnail', {str(tmp_path / 'j.png')!r}]); "
        "heavy = [m for m in ('torch', 'matplotlib', 'timm', 'pandas') if m in sys.modules]; "
        "print(rc, heavy)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "0 []", done.stdout + done.stderr
