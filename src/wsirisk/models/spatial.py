"""Spatial token orders and groupings from patch coordinates (micrometres).

Patch positions come from :func:`wsirisk.features.io.patient_coords_um`: level-0 top-left
corners in um, each slide shifted so its tissue starts at 0 and placed to the right of the
previous slide with a gap of 100 mm. Tiles of one slide lie on a grid (256 px at 20x = 128 um),
so the tiles of one grid column share their x exactly and those of one grid row share their y.

- :func:`slide_index`: which slide a patch belongs to, found from the gap between slides (a
  gap in x wider than :data:`SLIDE_SPLIT_UM`, half the 100 mm placement gap; no tissue on one
  glass slide has an empty band that wide).
- :func:`row_major_order`: slide by slide, top row first, each row left to right (sort by
  slide, then y, then x) - the order the tiler writes tiles in.
- :func:`column_major_order`: slide by slide, left column first, each column top to bottom
  (sort by slide, then x, then y) - the "top to bottom" reading of ME-Mamba's Fig. 1a.
- :func:`region_index`: square regions of ``region_um`` (SurvMamba: 4096 px at 20x = 2048 um)
  anchored at each slide's tissue origin, numbered in row-major order of the region grid.

All sorts are stable, so ties (identical positions) keep the bag order.
"""

from __future__ import annotations

import torch
from torch import Tensor

SLIDE_SPLIT_UM = 50_000.0  # half of wsirisk.features.io.SLIDE_GAP_UM (100 mm)
TILE_UM = 128.0  # 256 px at 20x (0.5 um/px)
REGION_UM = 2048.0  # SurvMamba's 4096 px regions at 20x


def _check(coords: Tensor) -> None:
    if coords.dim() != 2 or coords.shape[1] != 2:
        raise ValueError(f"coords must be (N, 2) micrometres, got {tuple(coords.shape)}")


def slide_index(coords: Tensor) -> Tensor:
    """Slide number (N,) int64 of each patch, 0 for the leftmost slide."""
    _check(coords)
    n = coords.shape[0]
    if n == 0:
        return torch.zeros(0, dtype=torch.long, device=coords.device)
    x = coords[:, 0].double()
    xs, order = torch.sort(x, stable=True)
    jumps = torch.cat([xs.new_zeros(1, dtype=torch.long), (xs.diff() > SLIDE_SPLIT_UM).long()])
    out = torch.empty(n, dtype=torch.long, device=coords.device)
    out[order] = jumps.cumsum(0)
    return out


def _lexsort(*keys: Tensor) -> Tensor:
    """Indices sorting by ``keys[0]``, ties broken by ``keys[1]``, ... (stable)."""
    order = torch.arange(keys[0].shape[0], device=keys[0].device)
    for key in reversed(keys):
        order = order[torch.argsort(key[order], stable=True)]
    return order


def row_major_order(coords: Tensor) -> Tensor:
    """Permutation (N,): slide by slide, rows top to bottom, each row left to right."""
    _check(coords)
    c = coords.double()
    return _lexsort(slide_index(coords), c[:, 1], c[:, 0])


def column_major_order(coords: Tensor) -> Tensor:
    """Permutation (N,): slide by slide, columns left to right, each column top to bottom."""
    _check(coords)
    c = coords.double()
    return _lexsort(slide_index(coords), c[:, 0], c[:, 1])


def region_index(coords: Tensor, region_um: float = REGION_UM) -> tuple[Tensor, int]:
    """``(region (N,) int64, n_regions)``: square regions of ``region_um`` per slide.

    A patch belongs to the region holding its top-left corner; the grid starts at the slide's
    tissue origin (its smallest x and y). Regions are numbered slide by slide in row-major order
    of the region grid; empty regions get no number.
    """
    _check(coords)
    if region_um <= 0:
        raise ValueError(f"region_um must be > 0, got {region_um}")
    n = coords.shape[0]
    if n == 0:
        return torch.zeros(0, dtype=torch.long, device=coords.device), 0
    slide = slide_index(coords)
    c = coords.double()
    n_slides = int(slide.max()) + 1
    origin = c.new_full((n_slides, 2), float("inf")).scatter_reduce(
        0, slide[:, None].expand(-1, 2), c, reduce="amin"
    )
    cell = torch.floor((c - origin[slide]) / region_um + 1e-6).long()  # (N, 2): rx, ry
    key = torch.stack([slide, cell[:, 1], cell[:, 0]], dim=1)
    _, region = torch.unique(key, dim=0, return_inverse=True)  # unique rows sort lexicographically
    return region, int(region.max()) + 1
