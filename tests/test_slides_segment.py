"""Tissue segmentation: area filters in level-0 px, holes, Otsu floor, low-res reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from wsirisk.slides.options import parse_options
from wsirisk.slides.pyramid import write_pyramid_tiff
from wsirisk.slides.read import open_slide
from wsirisk.slides.segment import best_level, read_seg_image, segment_tissue
from wsirisk.slides.synthetic import tissue_image

PARAMS = parse_options(
    {
        "segmentation": {
            "sthresh": 20,
            "mthresh": 3,
            "close_px": 0,
            "min_tissue_area_level0": 100_000,
            "min_hole_area_level0": 20_000,
        }
    }
).segmentation


def _scene(scale: float) -> np.ndarray:
    """Two big pieces (one with a big and a tiny hole) and a speck; ``scale`` mask px per
    unit (1.0 at downsample 16)."""
    pieces = [(70, 75, 50, 40), (160, 75, 25, 30), (185, 20, 4, 4)]
    holes = [(60, 70, 8), (90, 85, 2)]
    return tissue_image(
        round(200 * scale),
        round(150 * scale),
        [tuple(v * scale for v in p) for p in pieces],
        [tuple(v * scale for v in h) for h in holes],
    )


@pytest.mark.parametrize("downsample", [16.0, 32.0])
def test_area_filters_work_in_level0_px_at_any_mask_level(downsample: float) -> None:
    seg = segment_tissue(_scene(16.0 / downsample), PARAMS, downsample, downsample)
    assert len(seg.contours) == 2  # the speck (~13k level-0 px) is dropped
    assert sorted(len(h) for h in seg.holes) == [0, 1]  # the tiny hole is filled
    area_level0 = np.count_nonzero(seg.tissue_mask) * downsample**2
    expected = (np.pi * (50 * 40 + 25 * 30 - 8 * 8)) * 16**2
    assert area_level0 == pytest.approx(expected, rel=0.06)
    assert np.count_nonzero(seg.hole_mask & seg.tissue_mask) == 0


def test_max_n_holes_keeps_the_largest() -> None:
    image = tissue_image(200, 150, [(100, 75, 90, 70)], [(50, 75, 10), (100, 75, 14), (150, 75, 6)])
    params = parse_options(
        {"segmentation": {"mthresh": 3, "close_px": 0, "min_hole_area_level0": 0, "max_n_holes": 2}}
    ).segmentation
    seg = segment_tissue(image, params, 16.0, 16.0)
    radii = sorted(round(np.sqrt(cv_area(h) / np.pi)) for h in seg.holes[0])
    assert radii == [10, 14]


def cv_area(contour: np.ndarray) -> float:
    import cv2

    return float(cv2.contourArea(contour))


def test_otsu_never_goes_below_sthresh_on_blank_glass() -> None:
    blank = tissue_image(120, 90, [])
    params = parse_options({"segmentation": {"use_otsu": True}}).segmentation
    seg = segment_tissue(blank, params, 32.0, 32.0)
    assert seg.contours == [] and seg.threshold >= params.sthresh
    assert np.count_nonzero(seg.tissue_mask) == 0


def test_best_level_never_overshoots() -> None:
    assert best_level([1.0, 4.0, 16.0, 64.0], 64) == 3
    assert best_level([1.0, 4.0, 16.0, 64.0], 32) == 2
    assert best_level([1.0, 2.0005], 2.0) == 1  # within the 1% tolerance
    assert best_level([1.0], 64) == 0


def test_low_res_read_picks_a_level_and_strips_match_one_read(tmp_path: Path) -> None:
    rgb = tissue_image(1024, 704, [(500, 350, 300, 200)])
    path = write_pyramid_tiff(tmp_path / "p.svs", rgb, 0.25, n_levels=3, level_factor=4)
    slide = open_slide(path)
    image = read_seg_image(slide, 32.0, 256)
    assert (image.level, image.factor) == (2, 2)  # level ds 16, then 2 x 2 block average
    assert image.rgb.shape == (22, 32, 3)  # 1024 x 704 / 32
    assert (image.downsample_x, image.downsample_y) == (32.0, 32.0)
    single = write_pyramid_tiff(tmp_path / "s.svs", rgb, 0.25, n_levels=1)
    whole = read_seg_image(open_slide(single), 16.0, 256)
    strips = read_seg_image(open_slide(single), 16.0, 256, strip_budget_px=5000)
    assert whole.level == 0 and whole.factor == 16
    assert np.array_equal(whole.rgb, strips.rgb)
