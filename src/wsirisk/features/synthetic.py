"""Synthetic slides and plain-grid tiles stores, for extraction tests and benchmarks.

A real pyramidal JPEG TIFF (written with wsirisk.slides.pyramid, read by OpenSlide) and a
tiles store with the same layout as the tiling stage's (``coords`` + read attributes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from wsirisk.layout import ATTR_REASON, ATTR_STATUS, SLIDE_COORDS
from wsirisk.slides.pyramid import write_pyramid_tiff
from wsirisk.store import atomic_group


def textured_rgb(width_px: int, height_px: int, seed: int = 0) -> np.ndarray:
    """(H, W, 3) uint8 tissue-like texture: smooth colour blobs plus fine noise."""
    import cv2

    rng = np.random.default_rng(seed)
    coarse = rng.integers(60, 230, size=(max(2, height_px // 32), max(2, width_px // 32), 3))
    base = cv2.resize(coarse.astype(np.uint8), (width_px, height_px), interpolation=cv2.INTER_CUBIC)
    noise = rng.integers(-25, 26, size=(height_px, width_px, 3))
    return np.clip(base.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def write_textured_slide(
    path: Path, width_px: int, height_px: int, mpp: float = 0.5, seed: int = 0
) -> Path:
    """Write a textured pyramidal TIFF of the given level-0 size."""
    return write_pyramid_tiff(Path(path), textured_rgb(width_px, height_px, seed), mpp)


def grid_coords(width_px: int, height_px: int, step_px: int) -> np.ndarray:
    """Level-0 (x, y) of every whole ``step_px`` tile, row-major, int64 (N, 2)."""
    ys, xs = np.mgrid[0 : height_px - step_px + 1 : step_px, 0 : width_px - step_px + 1 : step_px]
    return np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.int64)


def write_tiles_store(
    path: Path,
    coords: np.ndarray,
    *,
    slide_path: Path,
    slide_id: str,
    patient_id: str,
    tile_size_px: int,
    read_level: int = 0,
    read_size_px: int | None = None,
    status: str = "ok",
    reason: str = "",
    **extra: Any,
) -> Path:
    """Write a tiles store (tiling-stage layout) with the given coordinates and attrs."""
    coords = np.asarray(coords, dtype=np.int64).reshape(-1, 2)
    attrs = {
        ATTR_STATUS: status,
        ATTR_REASON: reason,
        "slide_id": slide_id,
        "patient_id": patient_id,
        "slide_path": str(slide_path),
        "read_level": read_level,
        "read_size_px": read_size_px or tile_size_px,
        "tile_size_px": tile_size_px,
        "n_tiles": len(coords),
        **extra,
    }
    with atomic_group(Path(path), attrs) as group:
        group.create_array(SLIDE_COORDS, data=coords, chunks=(max(1, len(coords)), 2))
    return Path(path)


def write_repeated_slide(
    path: Path,
    width_px: int,
    height_px: int,
    mpp: float,
    *,
    stored_px: int = 240,
    quality: int = 80,
    period_px: int = 1920,
    seed: int = 0,
) -> Path:
    """A single-level Aperio-style JPEG TIFF of any size, written in seconds.

    A ``period_px`` textured patch is cut into ``stored_px`` tiles and each is JPEG-encoded
    once (YCbCr 4:2:0, JFIF, ``quality``); the slide repeats them, so its stored tiles are real,
    independent JPEG streams (a reader decodes each) while the file takes no image in memory.
    ``period_px`` must be a multiple of ``stored_px``.
    """
    import imagecodecs
    import tifffile

    if period_px % stored_px:
        raise ValueError(f"period_px {period_px} is not a multiple of stored_px {stored_px}")
    texture = textured_rgb(period_px, period_px, seed=seed)
    per = period_px // stored_px
    encoded = [
        [imagecodecs.jpeg8_encode(texture[r * stored_px : (r + 1) * stored_px,
                                          c * stored_px : (c + 1) * stored_px], level=quality)
         for c in range(per)]
        for r in range(per)
    ]  # fmt: skip
    rows, cols = -(-height_px // stored_px), -(-width_px // stored_px)

    def tiles() -> Any:
        for r in range(rows):
            for c in range(cols):
                yield encoded[r % per][c % per]

    objective = round(10.0 / mpp)
    description = (
        f"Aperio Image Library v12.0.0\r\n{width_px}x{height_px} ({stored_px}x{stored_px}) "
        f"JPEG/YCbCr Q={quality}|AppMag = {objective:g}|MPP = {mpp:.4f}"
    )
    px_per_cm = 1e4 / mpp
    with tifffile.TiffWriter(path, bigtiff=True) as tif:
        tif.write(
            tiles(), shape=(height_px, width_px, 3), dtype=np.uint8,
            tile=(stored_px, stored_px), compression="jpeg", photometric="ycbcr",
            subsampling=(2, 2), description=description, metadata=None,
            resolution=(px_per_cm, px_per_cm), resolutionunit="CENTIMETER",
        )  # fmt: skip
    return Path(path)
