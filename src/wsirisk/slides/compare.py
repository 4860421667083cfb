"""Compare two tilings of a slide by the area they cover (e.g. ours vs CLAM's create_patches_fp)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np


def coverage(
    coords_level0: np.ndarray,
    tile_level0: int,
    width_level0: int,
    height_level0: int,
    cell_level0: int = 16,
) -> np.ndarray:
    """Boolean raster (cells of ``cell_level0`` px) of the slide area covered by any tile;
    tile corners are rounded to the nearest cell, area outside the slide is ignored."""
    n_y, n_x = -(-height_level0 // cell_level0), -(-width_level0 // cell_level0)
    diff = np.zeros((n_y + 1, n_x + 1), np.int32)
    coords = np.asarray(coords_level0, np.float64).reshape(-1, 2)
    x0 = np.clip(np.rint(coords[:, 0] / cell_level0), 0, n_x).astype(np.int64)
    y0 = np.clip(np.rint(coords[:, 1] / cell_level0), 0, n_y).astype(np.int64)
    x1 = np.clip(np.rint((coords[:, 0] + tile_level0) / cell_level0), 0, n_x).astype(np.int64)
    y1 = np.clip(np.rint((coords[:, 1] + tile_level0) / cell_level0), 0, n_y).astype(np.int64)
    np.add.at(diff, (y0, x0), 1)
    np.add.at(diff, (y0, x1), -1)
    np.add.at(diff, (y1, x0), -1)
    np.add.at(diff, (y1, x1), 1)
    return np.cumsum(np.cumsum(diff, axis=0), axis=1)[:n_y, :n_x] > 0


def coverage_iou(
    coords_a: np.ndarray,
    tile_a_level0: int,
    coords_b: np.ndarray,
    tile_b_level0: int,
    width_level0: int,
    height_level0: int,
    cell_level0: int = 16,
    within: np.ndarray | None = None,
) -> float:
    """Intersection over union of the slide areas covered by two sets of tiles; with
    ``within`` (a raster like :func:`coverage`'s, e.g. :func:`mask_raster`), only that area
    counts ("tissue covered by A vs tissue covered by B")."""
    a = coverage(coords_a, tile_a_level0, width_level0, height_level0, cell_level0)
    b = coverage(coords_b, tile_b_level0, width_level0, height_level0, cell_level0)
    if within is not None:
        if within.shape != a.shape:
            raise ValueError(f"within has shape {within.shape}, expected {a.shape}")
        a, b = a & within, b & within
    union = np.count_nonzero(a | b)
    return float(np.count_nonzero(a & b) / union) if union else 1.0


def mask_raster(
    mask: np.ndarray,
    downsample_x: float,
    downsample_y: float,
    width_level0: int,
    height_level0: int,
    cell_level0: int = 16,
) -> np.ndarray:
    """A low-res mask (e.g. the store's tissue_mask) sampled on :func:`coverage`'s cells."""
    n_y, n_x = -(-height_level0 // cell_level0), -(-width_level0 // cell_level0)
    if mask.size == 0:
        return np.zeros((n_y, n_x), bool)
    rows = ((np.arange(n_y) + 0.5) * cell_level0 / downsample_y).astype(np.int64)
    cols = ((np.arange(n_x) + 0.5) * cell_level0 / downsample_x).astype(np.int64)
    rows = np.clip(rows, 0, mask.shape[0] - 1)
    cols = np.clip(cols, 0, mask.shape[1] - 1)
    return mask[np.ix_(rows, cols)] > 0


def read_coords_csv(path: Path) -> np.ndarray:
    """CLAM reference coordinates: a CSV with header ``x,y`` -> int64 (N, 2)."""
    path = Path(path)
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header != ["x", "y"]:
            raise ValueError(f"{path}: expected header 'x,y', got {header!r}")
        rows = [(int(x), int(y)) for x, y in reader]
    return np.asarray(rows, np.int64).reshape(-1, 2)
