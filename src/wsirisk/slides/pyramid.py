"""Write pyramidal tiled TIFFs (JPEG tiles, Aperio-style description) that OpenSlide reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _downsample(rgb: np.ndarray, factor: int) -> np.ndarray:
    import cv2

    height, width = rgb.shape[:2]
    size = (max(1, width // factor), max(1, height // factor))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def write_pyramid_tiff(
    path: Path,
    rgb_level0: np.ndarray,
    mpp: float | None,
    *,
    n_levels: int = 3,
    level_factor: int = 4,
    tile_px: int = 256,
    quality: int = 90,
    objective_power: float | None = None,
    aperio: bool = True,
) -> Path:
    """Write ``rgb_level0`` (H, W, 3 uint8) as a tiled, JPEG-compressed pyramid.

    ``mpp`` (um/px at level 0) goes into the TIFF resolution tags and, when ``aperio``,
    into an Aperio-style ImageDescription (``MPP = ...|AppMag = ...``) so OpenSlide reports
    ``openslide.mpp-x``.  ``mpp=None`` writes neither (a slide without resolution).
    """
    import tifffile

    path = Path(path)
    if rgb_level0.ndim != 3 or rgb_level0.shape[2] != 3 or rgb_level0.dtype != np.uint8:
        raise ValueError("rgb_level0 must be (H, W, 3) uint8")
    height, width = rgb_level0.shape[:2]
    if objective_power is None and mpp:
        objective_power = round(10.0 / mpp)
    description = ""
    if aperio:
        fields = [
            f"Aperio Image Library v12.0.0 \r\n{width}x{height} ({tile_px}x{tile_px}) JPEG/RGB Q={quality}"
        ]
        if objective_power:
            fields.append(f"AppMag = {objective_power:g}")
        if mpp:
            fields.append(f"MPP = {mpp:.4f}")
        description = "|".join(fields)
    kwargs: dict = {}
    if mpp:
        px_per_cm = 1e4 / mpp
        kwargs = {"resolution": (px_per_cm, px_per_cm), "resolutionunit": "CENTIMETER"}
    levels = [rgb_level0]
    for _ in range(1, n_levels):
        nxt = _downsample(levels[-1], level_factor)
        if min(nxt.shape[:2]) < 16:
            break
        levels.append(nxt)
    with tifffile.TiffWriter(path, bigtiff=False) as tif:
        for index, level in enumerate(levels):
            level_kwargs = dict(kwargs)
            if mpp and index:
                scale = level0_px_per_cm = 1e4 / mpp
                scale = level0_px_per_cm * level.shape[1] / width
                level_kwargs["resolution"] = (scale, scale)
            tif.write(
                level,
                tile=(tile_px, tile_px),
                compression="jpeg",
                compressionargs={"level": quality},
                photometric="rgb",
                description=description if index == 0 else None,
                metadata=None,
                subfiletype=1 if index else 0,
                **level_kwargs,
            )
    return path
