"""Real slides from ../shared/data/wsi (skipped when absent), compared with CLAM's output.

Comparison with CLAM (reference/clam/*.coords.csv, create_patches_fp TCGA preset): both tile
sets are rasterised on an 8 px level-0 grid; "raw" IoU is over the area the tiles cover,
"tissue" IoU only counts area inside our tissue mask.  CLAM starts a grid at each contour's
bounding box while ours starts at (0, 0), so on a tiny slide (CMU, 50 tiles, most on the
border) the raw IoU is dominated by that offset.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import zarr

from wsirisk.layout import SLIDE_COORDS, SLIDE_MASK
from wsirisk.slides.compare import coverage_iou, mask_raster, read_coords_csv
from wsirisk.slides.tile import tile_slide

CELL = 8
CLAM_AT1 = {"segmentation": {"min_tissue_area_level0": 512 * 512}}  # CLAM's run used a_t=1


def _run(shared: Path, name: str, tmp: Path, options: dict, mpp: float | None = None) -> tuple:
    out = tmp / f"{name}.zarr"
    attrs = tile_slide(
        shared / "wsi" / name, out, slide_id="S", patient_id="P", options=options, mpp_override=mpp
    )
    group = zarr.open_group(str(out), mode="r")
    return attrs, group[SLIDE_COORDS][:], group[SLIDE_MASK][:]


def _ious(shared: Path, ref: str, attrs: dict, coords: np.ndarray, mask: np.ndarray) -> tuple:
    clam = read_coords_csv(shared / "reference" / "clam" / f"{ref}.coords.csv")
    width, height = attrs["level0_width"], attrs["level0_height"]
    tile = attrs["tile_size_level0"]
    raw = coverage_iou(coords, tile, clam, 256, width, height, CELL)
    tissue = mask_raster(mask, *attrs["mask_downsample_xy"], width, height, CELL)
    within = coverage_iou(coords, tile, clam, 256, width, height, CELL, within=tissue)
    return raw, within


def test_cmu_small_region_single_level_20x(shared_dir: Path, tmp_path: Path) -> None:
    attrs, coords, mask = _run(shared_dir, "CMU-1-Small-Region.svs", tmp_path, CLAM_AT1)
    assert attrs["status"] == "ok", attrs["reason"]
    assert (attrs["mpp"], attrs["mpp_source"]) == (0.499, "openslide.mpp-x")
    assert (attrs["read_level"], attrs["read_size_px"], attrs["level_dimensions"]) == (
        0,
        256,
        [[2220, 2967]],
    )
    assert attrs["mask_downsample"] == 64.0  # single level: level 0 block-averaged 64 x 64
    assert 30 <= len(coords) <= 60
    raw, within = _ious(shared_dir, "CMU-1-Small-Region__p256_tcga_at1", attrs, coords, mask)
    assert within >= 0.9 and raw >= 0.7


def test_cmu_with_the_tcga_preset_has_no_tissue_like_clam(shared_dir: Path, tmp_path: Path) -> None:
    attrs, coords, _ = _run(shared_dir, "CMU-1-Small-Region.svs", tmp_path, {})
    assert (attrs["status"], attrs["reason_code"], coords.shape) == ("skipped", "no_tissue", (0, 2))


def test_tcga_slide_without_mpp_fails_clearly_then_works_with_override(
    shared_dir: Path, tmp_path: Path
) -> None:
    attrs, coords, _ = _run(shared_dir, "TCGA-CR-7395-01A-01-TS1.svs", tmp_path, {})
    assert (attrs["status"], attrs["reason_code"], coords.shape) == ("failed", "no_mpp", (0, 2))
    for key in ("openslide.mpp-x", "aperio.MPP", "tiff.XResolution", "mpp_override"):
        assert key in attrs["reason"]
    attrs, coords, mask = _run(shared_dir, "TCGA-CR-7395-01A-01-TS1.svs", tmp_path, {}, 0.5)
    assert attrs["status"] == "ok" and attrs["mpp_source"] == "override"
    assert (attrs["read_level"], attrs["read_size_px"]) == (0, 256)
    raw, within = _ious(shared_dir, "TCGA-CR-7395-01A-01-TS1__p256_tcga", attrs, coords, mask)
    assert raw >= 0.9 and within >= 0.95


def test_tcga_slide_as_40x_reads_its_half_resolution_level(
    shared_dir: Path, tmp_path: Path
) -> None:
    attrs, coords, _ = _run(shared_dir, "TCGA-CR-7395-01A-01-TS1.svs", tmp_path, {}, 0.25)
    assert attrs["status"] == "ok"
    assert (attrs["read_level"], attrs["read_size_px"], attrs["tile_size_level0"]) == (1, 256, 512)
    assert len(coords) > 20 and np.all(coords % 512 == 0)


def test_openslide_fixtures(shared_dir: Path, tmp_path: Path) -> None:
    boxes, _, _ = _run(shared_dir, "boxes.tiff", tmp_path, {})
    assert (boxes["status"], boxes["reason_code"]) == ("failed", "no_mpp")  # 72 dpi tags
    assert "implausible" in boxes["reason"]
    small, _, _ = _run(shared_dir, "small.svs", tmp_path, {})
    assert (small["status"], small["reason_code"]) == ("skipped", "no_tissue")
