"""Open slides and read tiles: the one reader shared by tiling, feature extraction and reports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


class SlideOpenError(RuntimeError):
    """A file that OpenSlide cannot open as a slide (corrupt, truncated, unsupported)."""


def open_slide(path: Path) -> Any:
    """Open ``path`` with OpenSlide, raising SlideOpenError that names the file."""
    import openslide

    path = Path(path)
    if not path.is_file():
        raise SlideOpenError(f"{path}: no such file")
    try:
        return openslide.OpenSlide(str(path))
    except (openslide.OpenSlideError, openslide.OpenSlideUnsupportedFormatError) as exc:
        raise SlideOpenError(
            f"{path}: cannot open as a slide ({type(exc).__name__}: {exc})"
        ) from exc


def rgba_to_rgb(rgba: np.ndarray) -> np.ndarray:
    """Composite an RGBA array (OpenSlide's premultiplied output) on white.

    Opaque input (the usual case) is a plain channel copy; transparent pixels (outside the
    scanned area) become white: out = min(rgb + 255 - alpha, 255), all in uint8.
    """
    rgba = np.asarray(rgba)
    rgb = np.ascontiguousarray(rgba[..., :3])
    alpha = rgba[..., 3]
    if alpha.size and int(alpha.min()) == 255:
        return rgb
    inverse = (255 - alpha)[..., None]  # premultiplied: transparent -> white
    rgb += np.minimum(inverse, 255 - rgb)
    return rgb


def read_tile(
    slide: Any, x_level0: int, y_level0: int, level: int, read_size_px: int, tile_size_px: int
) -> np.ndarray:
    """Read a square region whose top-left is (x_level0, y_level0) in level-0 pixels.

    ``read_size_px`` pixels are read at ``level`` and resized (INTER_AREA) to ``tile_size_px``:
    a 40x slide tiled at 20x reads 512 px at level 0 and returns 256 px.
    Returns (tile_size_px, tile_size_px, 3) uint8 RGB.
    """
    region = slide.read_region(
        (int(x_level0), int(y_level0)), int(level), (read_size_px, read_size_px)
    )
    rgb = rgba_to_rgb(np.asarray(region))
    if read_size_px != tile_size_px:
        import cv2

        rgb = cv2.resize(rgb, (tile_size_px, tile_size_px), interpolation=cv2.INTER_AREA)
    return rgb
