"""Small synthetic slides for tests and benchmarks (H&E-like tissue on near-white glass)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np

TISSUE_RGB = (200, 120, 185)  # eosin/haematoxylin-ish pink-purple (HSV saturation ~ 100)
GLASS_RGB = 243  # near-white background (saturation ~ 0)


def tissue_image(
    width_px: int,
    height_px: int,
    pieces: Sequence[tuple[float, float, float, float]],
    holes: Sequence[tuple[float, float, float]] = (),
    *,
    seed: int = 0,
) -> np.ndarray:
    """RGB uint8 (H, W, 3): filled ellipses ``pieces`` (cx, cy, rx, ry) minus circular
    ``holes`` (cx, cy, r), all in pixels, with stain noise; deterministic for a seed."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((height_px, width_px), np.uint8)
    for cx, cy, rx, ry in pieces:
        cv2.ellipse(mask, (round(cx), round(cy)), (round(rx), round(ry)), 0, 0, 360, 1, -1)
    for cx, cy, r in holes:
        cv2.circle(mask, (round(cx), round(cy)), round(r), 0, -1)
    image = np.full((height_px, width_px, 3), GLASS_RGB, np.int16)
    image[mask > 0] = TISSUE_RGB
    image += rng.integers(-6, 7, size=(height_px, width_px, 1), dtype=np.int16)
    return np.clip(image, 0, 255).astype(np.uint8)


def write_flat_tiff(
    path: Path,
    width_px: int,
    height_px: int,
    *,
    mpp: float | None = 0.25,
    rgb: tuple[int, int, int] = (GLASS_RGB, GLASS_RGB, GLASS_RGB),
    tile_px: int = 256,
) -> Path:
    """A single-level, tiled, JPEG TIFF of any size filled with one colour (Aperio-style
    description with MPP so OpenSlide opens it): every tile reuses one encoded JPEG, so a
    gigapixel image takes seconds and a few MB."""
    import imagecodecs
    import tifffile

    tile = np.empty((tile_px, tile_px, 3), np.uint8)
    tile[:] = rgb
    encoded = imagecodecs.jpeg8_encode(tile, level=80)
    n_tiles = -(-width_px // tile_px) * -(-height_px // tile_px)

    def tiles() -> Iterator[bytes]:
        for _ in range(n_tiles):
            yield encoded

    description = f"Aperio Image Library v12.0.0\r\n{width_px}x{height_px} ({tile_px}x{tile_px})"
    if mpp:
        description += f" JPEG/RGB Q=80|AppMag = {round(10 / mpp):g}|MPP = {mpp:.4f}"
    with tifffile.TiffWriter(path, bigtiff=True) as tif:
        tif.write(
            tiles(),
            shape=(height_px, width_px, 3),
            dtype=np.uint8,
            tile=(tile_px, tile_px),
            compression="jpeg",
            photometric="rgb",
            description=description,
            metadata=None,
        )
    return Path(path)
