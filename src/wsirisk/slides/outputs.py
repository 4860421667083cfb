"""Per-slide side outputs: tissue polygons as QuPath GeoJSON, and the QC thumbnail PNG."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from wsirisk.slides.segment import Segmentation
from wsirisk.store import atomic_path

THUMB_MIN_SIDE_PX = 512  # small masks are enlarged so contours and tiles stay visible
THUMB_MAX_SIDE_PX = 2048
TISSUE_RGB = (0, 200, 0)
HOLE_RGB = (0, 0, 255)
TILE_RGB = (255, 128, 0)


def _ring(contour: np.ndarray, downsample_x: float, downsample_y: float) -> list[list[float]]:
    """OpenCV contour (mask px) -> closed GeoJSON ring in level-0 px (pixel centres)."""
    pts = contour.reshape(-1, 2).astype(np.float64) + 0.5
    pts[:, 0] *= downsample_x
    pts[:, 1] *= downsample_y
    ring = [[round(float(x), 1), round(float(y), 1)] for x, y in pts]
    ring.append(ring[0])
    while len(ring) < 4:  # a valid linear ring has >= 4 positions
        ring.insert(1, ring[0])
    return ring


def to_geojson(
    seg: Segmentation | None, downsample_x: float, downsample_y: float, slide_id: str
) -> dict[str, Any]:
    """FeatureCollection of tissue polygons (holes as interior rings) that QuPath imports."""
    features: list[dict[str, Any]] = []
    if seg is not None:
        for index, (contour, holes) in enumerate(zip(seg.contours, seg.holes, strict=True)):
            rings = [_ring(contour, downsample_x, downsample_y)]
            rings += [_ring(h, downsample_x, downsample_y) for h in holes]
            area_level0 = cv2.contourArea(contour) - sum(cv2.contourArea(h) for h in holes)
            features.append(
                {
                    "type": "Feature",
                    "id": f"{slide_id}-tissue-{index}",
                    "geometry": {"type": "Polygon", "coordinates": rings},
                    "properties": {
                        "objectType": "annotation",
                        "name": f"tissue {index}",
                        "classification": {"name": "Tissue", "color": list(TISSUE_RGB)},
                        "area_level0_px": round(area_level0 * downsample_x * downsample_y),
                        "n_holes": len(holes),
                    },
                }
            )
    return {"type": "FeatureCollection", "features": features}


def write_geojson(path: Path, collection: dict[str, Any]) -> None:
    """Write a FeatureCollection atomically."""
    with atomic_path(Path(path)) as tmp:
        tmp.write_text(json.dumps(collection, separators=(",", ":")) + "\n")


def draw_thumbnail(
    rgb: np.ndarray,
    seg: Segmentation | None,
    coords: np.ndarray,
    tile_size_level0: int,
    downsample_x: float,
    downsample_y: float,
) -> np.ndarray:
    """Low-res slide with tissue contours (green), holes (blue) and kept tiles (orange)."""
    height, width = rgb.shape[:2]
    zoom = max(1.0, THUMB_MIN_SIDE_PX / max(height, width, 1))
    zoom = min(zoom, THUMB_MAX_SIDE_PX / max(height, width, 1))
    size = (max(1, round(width * zoom)), max(1, round(height * zoom)))
    interp = cv2.INTER_LINEAR if zoom > 1 else cv2.INTER_AREA
    canvas = np.ascontiguousarray(cv2.resize(rgb, size, interpolation=interp))
    sx, sy = zoom / downsample_x, zoom / downsample_y  # thumbnail px per level-0 px
    for x, y in np.asarray(coords).reshape(-1, 2):
        top_left = (int(x * sx), int(y * sy))
        bottom_right = (int((x + tile_size_level0) * sx) - 1, int((y + tile_size_level0) * sy) - 1)
        cv2.rectangle(canvas, top_left, bottom_right, TILE_RGB, 1)
    if seg is not None:
        thickness = max(1, round(zoom))

        def scaled(contours: list[np.ndarray]) -> list[np.ndarray]:
            return [((c.astype(np.float64) + 0.5) * zoom).astype(np.int32) for c in contours]

        cv2.drawContours(canvas, scaled(seg.contours), -1, TISSUE_RGB, thickness)
        flat = [h for group in seg.holes for h in group]
        cv2.drawContours(canvas, scaled(flat), -1, HOLE_RGB, thickness)
    return canvas


def placeholder_thumbnail(size_px: int = 64) -> np.ndarray:
    """Grey square with a red cross: the thumbnail of a slide that could not be read."""
    canvas = np.full((size_px, size_px, 3), 200, np.uint8)
    cv2.line(canvas, (0, 0), (size_px - 1, size_px - 1), (220, 0, 0), 2)
    cv2.line(canvas, (0, size_px - 1), (size_px - 1, 0), (220, 0, 0), 2)
    return canvas


def write_png(path: Path, rgb: np.ndarray) -> None:
    """Encode RGB as PNG and write it atomically."""
    ok, data = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:  # pragma: no cover - cv2 only fails on invalid arrays
        raise ValueError(f"{path}: PNG encoding failed")
    with atomic_path(Path(path)) as tmp:
        tmp.write_bytes(data.tobytes())
