"""Read plans (level, read size) and the vectorised tile selection on the tissue mask."""

from __future__ import annotations

import numpy as np
import pytest

from wsirisk.slides.grid import (
    TooCoarseError,
    plan_read,
    select_tiles,
    snap_scale,
    tissue_fractions,
)


def test_40x_without_20x_level_reads_512_at_level0() -> None:
    plan = plan_read([1.0, 4.0, 16.0], 0.25, 0.5, 256, 0, 0.05)
    assert (plan.read_level, plan.read_size_px, plan.tile_size_level0) == (0, 512, 512)


def test_40x_with_a_20x_level_reads_that_level() -> None:
    plan = plan_read([1.0, 2.0005, 8.0], 0.25, 0.5, 256, 0, 0.05)
    assert (plan.read_level, plan.read_size_px, plan.tile_size_level0) == (1, 256, 512)


def test_20x_reads_256_and_scanner_mpp_snaps() -> None:
    plan = plan_read([1.0, 4.0], 0.499, 0.5, 256, 0, 0.05)
    assert (plan.read_level, plan.read_size_px) == (0, 256)
    tcga_40x = plan_read([1.0, 4.0], 0.2520, 0.5, 256, 0, 0.05)
    assert tcga_40x.read_size_px == 512
    assert snap_scale(0.5 / 0.2265, 0.05) == pytest.approx(0.5 / 0.2265)  # 2.21: not snapped
    assert plan_read([1.0], 0.2265, 0.5, 256, 0, 0.05).read_size_px == 565


def test_overlap_sets_the_step() -> None:
    plan = plan_read([1.0], 0.25, 0.5, 256, 64, 0.05)
    assert (plan.tile_size_level0, plan.step_level0) == (512, 384)


def test_coarser_slide_than_target_is_refused() -> None:
    with pytest.raises(TooCoarseError, match="coarser"):
        plan_read([1.0], 1.0, 0.5, 256, 0, 0.05)


def _brute_fraction(mask: np.ndarray, ds: int, x: int, y: int, tile: int) -> float:
    big = np.kron(mask, np.ones((ds, ds), np.uint8))
    window = big[y : y + tile, x : x + tile]
    return float(window.sum()) / (tile * tile)


def test_fractions_equal_a_brute_force_count_at_level0() -> None:
    rng = np.random.default_rng(0)
    mask = (rng.random((13, 17)) > 0.5).astype(np.uint8)
    ds, tile = 8, 20  # tiles straddle mask pixels and the slide edge
    xs = np.arange(0, 17 * ds, 20)
    ys = np.arange(0, 13 * ds, 20)
    fast = tissue_fractions(mask, xs, ys, float(tile), float(ds), float(ds))
    for i, y in enumerate(ys):
        for j, x in enumerate(xs):
            assert fast[i, j] == pytest.approx(_brute_fraction(mask, ds, x, y, tile))


def test_select_keeps_tissue_tiles_and_drops_centres_in_holes() -> None:
    ds = 16  # mask 32 x 32 -> slide 512 x 512 level-0 px
    tissue = np.zeros((32, 32), np.uint8)
    tissue[:, :16] = 1  # left half (x < 256) is tissue
    holes = np.zeros_like(tissue)
    holes[6, 6] = 1  # a small kept hole at level-0 [96, 112)^2
    tissue[holes > 0] = 0
    plan = plan_read([1.0], 0.25, 0.5, 32, 0, 0.05)  # 32 px at 0.5 um/px = 64 level-0 px
    coords, fractions = select_tiles(tissue, holes, 512, 512, plan, 0.5, ds, ds)
    expected = {(x, y) for y in range(0, 512, 64) for x in (0, 64, 128, 192)} - {(64, 64)}
    assert coords.dtype == np.int64 and coords.shape == (len(expected), 2)
    assert {tuple(c) for c in coords.tolist()} == expected  # (64, 64): 15/16 tissue, centre in hole
    assert np.all(fractions >= 0.5)
    order = np.lexsort((coords[:, 0], coords[:, 1]))
    assert np.array_equal(order, np.arange(len(coords)))  # row-major, deterministic
    no_holes, _ = select_tiles(tissue, np.zeros_like(holes), 512, 512, plan, 0.5, ds, ds)
    assert (64, 64) in {tuple(c) for c in no_holes.tolist()}  # kept once the hole is gone
    strict, _ = select_tiles(tissue, np.zeros_like(holes), 512, 512, plan, 1.0, ds, ds)
    assert {tuple(c) for c in strict.tolist()} == expected  # 15/16 fails a threshold of 1
