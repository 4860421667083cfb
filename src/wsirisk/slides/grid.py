"""Which level and size to read per tile, and which grid tiles to keep (vectorised on the mask)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from wsirisk.slides.segment import best_level


class TooCoarseError(ValueError):
    """The slide's resolution is coarser than the target: tiles would be upsampled."""


@dataclass(frozen=True)
class ReadPlan:
    """How one tile is read: ``read_size_px`` at ``read_level``, resized to the tile size."""

    scale: float  # level-0 px per target px (target_mpp / mpp, snapped to 2**k when close)
    read_level: int
    read_level_downsample: float
    read_size_px: int
    tile_size_level0: int  # tile footprint in level-0 px
    step_level0: int  # grid step in level-0 px (tile minus overlap)


def snap_scale(scale: float, tolerance: float) -> float:
    """Snap ``scale`` to the nearest power of two when within ``tolerance`` (relative):
    0.499 um/px at target 0.5 -> 1, TCGA 40x 0.2520 um/px -> 2 (reads 512 px, like CLAM)."""
    nice = 2.0 ** round(math.log2(scale))
    return nice if abs(scale / nice - 1.0) <= tolerance else scale


def plan_read(
    level_downsamples: tuple[float, ...] | list[float],
    mpp: float,
    target_mpp: float,
    tile_size_px: int,
    overlap_px: int,
    snap_tolerance: float,
) -> ReadPlan:
    """Deepest level whose downsample does not overshoot target/slide um/px, read size there."""
    scale = snap_scale(target_mpp / mpp, snap_tolerance)
    if scale < 1.0 / 1.01:
        raise TooCoarseError(
            f"slide resolution {mpp:.4g} um/px is coarser than the target {target_mpp:g} um/px"
        )
    level = best_level(level_downsamples, scale)
    level_ds = float(level_downsamples[level])
    read_size = max(1, int(round(tile_size_px * scale / level_ds)))
    tile_level0 = max(1, int(round(tile_size_px * scale)))
    step_level0 = max(1, int(round((tile_size_px - overlap_px) * scale)))
    return ReadPlan(scale, level, level_ds, read_size, tile_level0, step_level0)


def _sat_at(sat: np.ndarray, edges: np.ndarray, axis: int) -> np.ndarray:
    """Linear interpolation of a summed-area table at fractional ``edges`` along ``axis``
    (exact area for a piecewise-constant mask)."""
    size = sat.shape[axis] - 1
    edges = np.clip(edges, 0.0, float(size))
    lo = np.minimum(np.floor(edges).astype(np.int64), max(size - 1, 0))
    frac = edges - lo
    a = np.take(sat, lo, axis=axis)
    b = np.take(sat, np.minimum(lo + 1, size), axis=axis)
    shape = [1, 1]
    shape[axis] = -1
    return a + (b - a) * frac.reshape(shape)


def tissue_fractions(
    tissue_mask: np.ndarray,
    xs_level0: np.ndarray,
    ys_level0: np.ndarray,
    tile_level0: float,
    downsample_x: float,
    downsample_y: float,
) -> np.ndarray:
    """(len(ys), len(xs)) share of each grid tile covered by tissue (area outside = none)."""
    sat = np.zeros((tissue_mask.shape[0] + 1, tissue_mask.shape[1] + 1), np.float64)
    np.cumsum(np.cumsum(tissue_mask, axis=0, dtype=np.float64), axis=1, out=sat[1:, 1:])
    x_edges = np.concatenate([xs_level0, xs_level0 + tile_level0]) / downsample_x
    y_edges = np.concatenate([ys_level0, ys_level0 + tile_level0]) / downsample_y
    cols = _sat_at(sat, x_edges, axis=1)  # (H+1, 2 nx)
    grid = _sat_at(cols, y_edges, axis=0)  # (2 ny, 2 nx)
    nx, ny = len(xs_level0), len(ys_level0)
    area = grid[ny:, nx:] - grid[:ny, nx:] - grid[ny:, :nx] + grid[:ny, :nx]
    tile_area = (tile_level0 / downsample_x) * (tile_level0 / downsample_y)
    return np.clip(area / tile_area, 0.0, 1.0)


def select_tiles(
    tissue_mask: np.ndarray,
    hole_mask: np.ndarray,
    width_level0: int,
    height_level0: int,
    plan: ReadPlan,
    min_tissue_fraction: float,
    downsample_x: float,
    downsample_y: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Grid tiles (row-major, origin (0, 0)) with enough tissue whose centre is not in a hole.

    Returns coords int64 (N, 2) level-0 (x, y) top-left, and their tissue fractions float32.
    """
    xs = np.arange(0, width_level0, plan.step_level0, dtype=np.int64)
    ys = np.arange(0, height_level0, plan.step_level0, dtype=np.int64)
    fraction = tissue_fractions(
        tissue_mask, xs, ys, float(plan.tile_size_level0), downsample_x, downsample_y
    )
    keep = (fraction >= min_tissue_fraction) & (fraction > 0)
    height, width = hole_mask.shape
    cx = np.floor((xs + plan.tile_size_level0 / 2) / downsample_x).astype(np.int64)
    cy = np.floor((ys + plan.tile_size_level0 / 2) / downsample_y).astype(np.int64)
    inside_x, inside_y = cx < width, cy < height
    in_hole = np.zeros_like(keep)
    if hole_mask.any():
        sub = hole_mask[np.ix_(cy[inside_y], cx[inside_x])] > 0
        in_hole[np.ix_(inside_y, inside_x)] = sub
    keep &= ~in_hole
    iy, ix = np.nonzero(keep)
    coords = np.stack([xs[ix], ys[iy]], axis=1).astype(np.int64).reshape(-1, 2)
    return coords, fraction[iy, ix].astype(np.float32)
