"""Synthetic H&E-like slides at 0.5 um/px: tissue islands, stroma, nuclei, a planted pattern.

The planted pattern (dense clusters of large dark blue-black blobs on a lavender ground) is
painted on a chosen set of tissue tiles of the 256 px grid anchored at (0, 0), so that tiles
of the tiling stage either contain it (mostly) or not.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SYNTH_MPP = 0.5  # um/px of the synthesized tissue (20x)
TILE_PX = 256  # tile side at SYNTH_MPP
MASK_DOWNSAMPLE = 8  # low-frequency fields (island shapes, pattern) are built at 1/8
TISSUE_TILE_MIN_FRACTION = 0.5  # a tile is "tissue" when at least half of it is tissue
PATTERN_TILE_MIN_FRACTION = 0.5  # a tissue tile is "pattern" when half of it carries it
CANVAS_TISSUE_SHARE = 0.5  # expected share of canvas tiles that are tissue tiles

BACKGROUND_RGB = (243.0, 242.0, 245.0)
STROMA_RGB = (226.0, 150.0, 190.0)
NUCLEUS_RGB = (92.0, 48.0, 135.0)
PATTERN_GROUND_RGB = (150.0, 118.0, 196.0)
PATTERN_BLOB_RGB = (22.0, 20.0, 62.0)


@dataclass
class SyntheticSlide:
    """One synthesized slide at SYNTH_MPP and its ground truth on the 256 px tile grid."""

    rgb: np.ndarray  # (H, W, 3) uint8, H and W multiples of TILE_PX
    tissue_fraction: np.ndarray  # (rows, cols) share of each tile covered by tissue
    pattern_fraction: np.ndarray  # (rows, cols) share of each tile covered by the pattern

    @property
    def tissue_tiles(self) -> np.ndarray:
        return self.tissue_fraction >= TISSUE_TILE_MIN_FRACTION

    @property
    def pattern_tiles(self) -> np.ndarray:
        return self.tissue_tiles & (self.pattern_fraction >= PATTERN_TILE_MIN_FRACTION)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cell_px: int) -> np.ndarray:
    """Zero-mean, unit-std noise with features ~``cell_px`` wide, at ``shape``."""
    import cv2

    coarse = rng.standard_normal((shape[0] // cell_px + 2, shape[1] // cell_px + 2))
    field = cv2.resize(
        coarse.astype(np.float32), (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC
    )
    return (field - field.mean()) / (field.std() + 1e-6)


def _tile_means(mask_small: np.ndarray) -> np.ndarray:
    """Mean of a 1/MASK_DOWNSAMPLE mask over each TILE_PX tile -> (rows, cols)."""
    cell = TILE_PX // MASK_DOWNSAMPLE
    rows, cols = mask_small.shape[0] // cell, mask_small.shape[1] // cell
    return (
        mask_small[: rows * cell, : cols * cell].reshape(rows, cell, cols, cell).mean(axis=(1, 3))
    )


def island_mask(rng: np.random.Generator, rows: int, cols: int, target_tiles: int) -> np.ndarray:
    """Float {0,1} tissue mask at 1/MASK_DOWNSAMPLE for a (rows x cols)-tile canvas.

    One to three irregular ellipses with noisy borders, scaled so that about
    ``target_tiles`` tiles are tissue tiles.
    """
    height, width = rows * TILE_PX // MASK_DOWNSAMPLE, cols * TILE_PX // MASK_DOWNSAMPLE
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    n_islands = int(rng.integers(1, 4))
    centres = rng.uniform(0.3, 0.7, size=(n_islands, 2)) * (height, width)
    axes = rng.uniform(0.5, 1.0, size=(n_islands, 2))
    angles = rng.uniform(0, np.pi, size=n_islands)
    border = _smooth_noise(rng, (height, width), cell_px=max(4, min(height, width) // 6))
    scale, mask = 0.3 * min(height, width), np.zeros((height, width), np.float32)
    for _ in range(6):  # adjust the island size towards the target tile count
        distance = np.full((height, width), np.inf, np.float32)
        for (cy, cx), (ay, ax), angle in zip(centres, axes, angles, strict=True):
            dy, dx = yy - cy, xx - cx
            u = dx * np.cos(angle) + dy * np.sin(angle)
            v = -dx * np.sin(angle) + dy * np.cos(angle)
            distance = np.minimum(distance, np.hypot(u / (ax * scale), v / (ay * scale)))
        mask = (distance + 0.18 * border < 1.0).astype(np.float32)
        margin = max(2, TILE_PX // MASK_DOWNSAMPLE // 4)
        mask[:margin], mask[-margin:], mask[:, :margin], mask[:, -margin:] = 0, 0, 0, 0
        n_tiles = int((_tile_means(mask) >= TISSUE_TILE_MIN_FRACTION).sum())
        if abs(n_tiles - target_tiles) <= max(1, target_tiles // 10):
            break
        scale *= float(np.sqrt(max(target_tiles, 1) / max(n_tiles, 1)))
    return mask


def pattern_mask(
    rng: np.random.Generator, tissue_small: np.ndarray, n_pattern_tiles: int
) -> np.ndarray:
    """Float [0,1] pattern mask at 1/MASK_DOWNSAMPLE: a blob centred on each chosen tissue tile."""
    cell = TILE_PX // MASK_DOWNSAMPLE
    tissue_tiles = np.argwhere(_tile_means(tissue_small) >= TISSUE_TILE_MIN_FRACTION)
    mask = np.zeros_like(tissue_small)
    if n_pattern_tiles <= 0 or len(tissue_tiles) == 0:
        return mask
    chosen = rng.choice(
        len(tissue_tiles), size=min(n_pattern_tiles, len(tissue_tiles)), replace=False
    )
    yy, xx = np.mgrid[0 : 2 * cell, 0 : 2 * cell].astype(np.float32)
    for row, col in tissue_tiles[np.sort(chosen)]:
        cy, cx = cell * (row + 0.5), cell * (col + 0.5)
        radius = cell * rng.uniform(0.6, 0.72)
        y0, x0 = int(cy - cell), int(cx - cell)
        disc = np.hypot(yy + y0 - cy, xx + x0 - cx) < radius
        ys = slice(max(y0, 0), min(y0 + 2 * cell, mask.shape[0]))
        xs = slice(max(x0, 0), min(x0 + 2 * cell, mask.shape[1]))
        sub = disc[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0]
        mask[ys, xs] = np.maximum(mask[ys, xs], sub)
    return mask * tissue_small


def _draw_blobs(
    rng: np.random.Generator,
    layer: np.ndarray,
    region_small: np.ndarray,
    per_px: float,
    radius_px: tuple[float, float],
    clustered: bool,
) -> None:
    """Draw filled ellipses (intensity 150..255) into full-resolution ``layer``.

    Centres fall where the 1/MASK_DOWNSAMPLE boolean ``region_small`` holds; ``per_px`` is the
    number of blobs per full-resolution pixel of that region.
    """
    import cv2

    ys, xs = np.nonzero(region_small)
    count = int(len(ys) * MASK_DOWNSAMPLE**2 * per_px)
    if count == 0:
        return
    pick = rng.integers(0, len(ys), size=count)
    cy = (ys[pick] + rng.random(count)) * MASK_DOWNSAMPLE
    cx = (xs[pick] + rng.random(count)) * MASK_DOWNSAMPLE
    if clustered:  # pull blobs towards a few cluster centres
        n_clusters = max(1, count // 8)
        owner = rng.integers(0, n_clusters, size=count)
        cy = cy[owner] + rng.normal(0, 9, count)
        cx = cx[owner] + rng.normal(0, 9, count)
    major = rng.uniform(*radius_px, size=count)
    minor = major * rng.uniform(0.6, 1.0, size=count)
    angle = rng.uniform(0, 180, size=count)
    value = rng.integers(150, 256, size=count)
    for i in range(count):
        cv2.ellipse(
            layer,
            (int(cx[i]), int(cy[i])),
            (max(1, int(major[i])), max(1, int(minor[i]))),
            float(angle[i]),
            0,
            360,
            int(value[i]),
            -1,
            lineType=cv2.LINE_AA,
        )


def _upsample(field_small: np.ndarray, height: int, width: int) -> np.ndarray:
    import cv2

    return cv2.resize(field_small, (width, height), interpolation=cv2.INTER_LINEAR)


def _texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """1 + low-frequency shading + directional fibres, (H, W) float32 around 1."""
    import cv2

    shading = _smooth_noise(rng, (height // 4, width // 4), cell_px=24)
    fibres = rng.standard_normal((height // 2, width // 2), dtype=np.float32)
    kernel = np.zeros((15, 15), np.float32)
    kernel[7, :] = 1.0 / 15
    rotation = cv2.getRotationMatrix2D((7, 7), float(rng.uniform(0, 180)), 1.0)
    fibres = cv2.filter2D(fibres, -1, cv2.warpAffine(kernel, rotation, (15, 15)))
    fibres *= 0.07 / (fibres.std() + 1e-6)
    texture = _upsample(0.05 * shading, height, width)
    texture += _upsample(fibres, height, width)
    texture += 1.0
    return texture


def render_he(
    rng: np.random.Generator, tissue_small: np.ndarray, pattern_small: np.ndarray
) -> np.ndarray:
    """Paint an H&E-like RGB image (uint8) at full resolution from 1/8 masks.

    Each pixel is a mix of five colours (stroma, pattern ground, nucleus, pattern blob,
    background) whose per-pixel weights are computed on single-channel planes.
    """
    import cv2

    height = tissue_small.shape[0] * MASK_DOWNSAMPLE
    width = tissue_small.shape[1] * MASK_DOWNSAMPLE
    pattern = _upsample(pattern_small, height, width)
    edge = cv2.GaussianBlur(_upsample(tissue_small, height, width), (0, 0), 1.5)
    texture = _texture(rng, height, width)
    nuclei = np.zeros((height, width), np.uint8)
    normal_small = (tissue_small > 0.5) & (pattern_small < 0.5)
    _draw_blobs(rng, nuclei, normal_small, 1 / 260, (2.5, 5.0), False)
    blobs = np.zeros((height, width), np.uint8)
    _draw_blobs(rng, blobs, pattern_small > 0.5, 1 / 110, (5.0, 10.0), True)
    nucleus_alpha = cv2.GaussianBlur(nuclei, (3, 3), 0).astype(np.float32) / 255.0
    blob_alpha = cv2.GaussianBlur(blobs, (3, 3), 0).astype(np.float32) / 255.0

    # image = background + sum_k weight_k * (colour_k - background), one cv2.transform
    weights = np.empty((height, width, 4), np.float32)
    keep = (1.0 - nucleus_alpha) * (1.0 - blob_alpha) * edge * texture
    weights[..., 0] = keep * (1.0 - pattern)  # stroma
    weights[..., 1] = keep * pattern  # pattern ground
    weights[..., 2] = nucleus_alpha * (1.0 - blob_alpha) * edge  # nuclei
    weights[..., 3] = blob_alpha * edge  # pattern blobs
    stroma = np.asarray(STROMA_RGB) + rng.normal(0, 6, 3)  # per-slide stain jitter
    background = np.asarray(BACKGROUND_RGB)
    colours = np.stack([stroma, PATTERN_GROUND_RGB, NUCLEUS_RGB, PATTERN_BLOB_RGB]) - background
    matrix = np.concatenate([colours.T, background[:, None]], axis=1).astype(np.float32)
    image = cv2.transform(weights, matrix)
    image += 2.5 * rng.standard_normal((height, width, 1), dtype=np.float32)
    np.clip(image, 0, 255, out=image)
    return image.astype(np.uint8)


def synth_slide(
    rng: np.random.Generator, target_tiles: int, pattern_share: float
) -> SyntheticSlide:
    """A slide with about ``target_tiles`` tissue tiles, ``pattern_share`` of them patterned."""
    n_canvas = max(4, int(round(target_tiles / CANVAS_TISSUE_SHARE)))
    aspect = float(rng.uniform(0.75, 1.33))
    rows = max(2, int(round(np.sqrt(n_canvas / aspect))))
    cols = max(2, int(np.ceil(n_canvas / rows)))
    tissue_small = island_mask(rng, rows, cols, target_tiles)
    n_tissue = int((_tile_means(tissue_small) >= TISSUE_TILE_MIN_FRACTION).sum())
    n_pattern = int(round(pattern_share * n_tissue))
    pattern_small = pattern_mask(rng, tissue_small, n_pattern)
    rgb = render_he(rng, tissue_small, pattern_small)
    return SyntheticSlide(rgb, _tile_means(tissue_small), _tile_means(pattern_small))
