"""Tissue segmentation on a low-resolution image: HSV saturation, median, threshold, close,
contours with holes filtered by level-0 area (CLAM's segmentTissue, made level-independent)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from wsirisk.slides.options import SegmentationParams
from wsirisk.slides.read import rgba_to_rgb

LEVEL_TOLERANCE = 1.01  # a level whose downsample exceeds a target by < 1% still counts
STRIP_BUDGET_PX = 16_000_000  # pixels per read_region call when reading a big level in strips


class SlideTooLargeError(ValueError):
    """The segmentation read (no suitable pyramid level) exceeds max_seg_read_mpx."""


@dataclass(frozen=True)
class SegImage:
    """Low-resolution RGB of the whole slide: mask pixel (i, j) covers level-0
    [j * downsample_x, (j + 1) * downsample_x) x [i * downsample_y, (i + 1) * downsample_y)."""

    rgb: np.ndarray  # (H, W, 3) uint8
    level: int  # pyramid level read
    factor: int  # extra block-averaging factor applied to that level
    downsample_x: float  # level-0 px per mask px
    downsample_y: float


@dataclass(frozen=True)
class Segmentation:
    """Filtered tissue at mask resolution; contours are OpenCV (K, 1, 2) int32 in mask px."""

    tissue_mask: np.ndarray  # (H, W) uint8, 1 = tissue (kept pieces minus kept holes)
    hole_mask: np.ndarray  # (H, W) uint8, 1 = inside a kept hole
    contours: list[np.ndarray]
    holes: list[list[np.ndarray]]  # holes[k] belong to contours[k]
    threshold: int  # saturation threshold applied


def best_level(level_downsamples: tuple[float, ...] | list[float], target: float) -> int:
    """Deepest level whose downsample does not overshoot ``target`` (1% tolerance)."""
    level = 0
    for index, downsample in enumerate(level_downsamples):
        if downsample <= target * LEVEL_TOLERANCE and downsample >= level_downsamples[level]:
            level = index
    return level


def read_seg_image(
    slide: Any,
    target_downsample: float,
    max_read_mpx: float,
    strip_budget_px: int = STRIP_BUDGET_PX,
) -> SegImage:
    """Read the whole slide at about ``target_downsample`` (deepest suitable level, then an
    integer block average; big levels are read in strips so memory stays bounded)."""
    level = best_level(slide.level_downsamples, target_downsample)
    width, height = slide.level_dimensions[level]
    if width * height > max_read_mpx * 1e6:
        raise SlideTooLargeError(
            f"segmentation would read level {level} of {width}x{height} px "
            f"({width * height / 1e6:.0f} Mpx > max_seg_read_mpx {max_read_mpx:g}): "
            f"no pyramid level near downsample {target_downsample:g}"
        )
    level_ds = float(slide.level_downsamples[level])
    factor = max(1, int(math.floor(target_downsample * LEVEL_TOLERANCE / level_ds)))
    width0, height0 = slide.level_dimensions[0]
    out_w, out_h = math.ceil(width / factor), math.ceil(height / factor)
    rows = max(1, strip_budget_px // max(1, out_w * factor) // factor) * factor
    strips = []
    for row in range(0, out_h * factor, rows):
        n_rows = min(rows, out_h * factor - row)
        y_level0 = int(round(row * height0 / height))
        rgba = np.asarray(slide.read_region((0, y_level0), level, (out_w * factor, n_rows)))
        if factor > 1:  # averaging premultiplied RGBA, then compositing == the reverse order
            rgba = cv2.resize(rgba, (out_w, n_rows // factor), interpolation=cv2.INTER_AREA)
        strips.append(rgba_to_rgb(rgba))  # beyond the edge: transparent -> white
    rgb = strips[0] if len(strips) == 1 else np.concatenate(strips, axis=0)
    return SegImage(
        rgb=np.ascontiguousarray(rgb),
        level=level,
        factor=factor,
        downsample_x=factor * width0 / width,
        downsample_y=factor * height0 / height,
    )


def _binary(rgb: np.ndarray, params: SegmentationParams) -> tuple[np.ndarray, int]:
    saturation = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)[..., 1]
    if params.mthresh > 1:
        saturation = cv2.medianBlur(saturation, params.mthresh)
    threshold = params.sthresh
    if params.use_otsu:
        otsu, _ = cv2.threshold(saturation, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        threshold = max(int(otsu), params.sthresh)  # sthresh is a floor: blank slides stay blank
    _, binary = cv2.threshold(saturation, threshold, 255, cv2.THRESH_BINARY)
    if params.close_px > 0:
        kernel = np.ones((params.close_px, params.close_px), np.uint8)
        binary = cv2.morphologyEx(binary, cv2.MORPH_CLOSE, kernel)
    return binary, threshold


def segment_tissue(
    rgb: np.ndarray, params: SegmentationParams, downsample_x: float, downsample_y: float
) -> Segmentation:
    """Segment ``rgb`` (mask resolution); areas are compared in level-0 px."""
    binary, threshold = _binary(rgb, params)
    found, hierarchy = cv2.findContours(binary, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    level0_per_mask_px2 = downsample_x * downsample_y
    contours: list[np.ndarray] = []
    holes: list[list[np.ndarray]] = []
    if hierarchy is not None:
        parents = hierarchy[0][:, 3]
        areas = np.array([cv2.contourArea(c) for c in found]) * level0_per_mask_px2
        for index in np.flatnonzero(parents == -1):
            children = np.flatnonzero(parents == index)
            tissue_area = areas[index] - areas[children].sum()
            if tissue_area <= 0 or tissue_area <= params.min_tissue_area_level0:
                continue
            largest = children[np.argsort(-areas[children], kind="stable")][: params.max_n_holes]
            kept = [found[h] for h in largest if areas[h] > params.min_hole_area_level0]
            contours.append(found[index])
            holes.append(kept)
    height, width = binary.shape
    tissue = np.zeros((height, width), np.uint8)
    hole_mask = np.zeros((height, width), np.uint8)
    if contours:
        cv2.drawContours(tissue, contours, -1, 1, thickness=cv2.FILLED)
        flat = [h for group in holes for h in group]
        if flat:
            cv2.drawContours(hole_mask, flat, -1, 1, thickness=cv2.FILLED)
            cv2.drawContours(hole_mask, flat, -1, 0, thickness=1)  # hole borders are tissue px
            tissue[hole_mask > 0] = 0
    return Segmentation(tissue, hole_mask, contours, holes, threshold)
