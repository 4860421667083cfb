"""Tiling options: the `slides` config section, segmentation presets, validation and hashing.

Area thresholds are in level-0 pixels so that results do not depend on the pyramid level
read for segmentation.  The ``tcga`` preset mirrors CLAM's ``presets/tcga.csv`` (sthresh 8,
mthresh 7, close 4, no Otsu, a_t 16, a_h 4, max_n_holes 8, with CLAM's reference patch of
512 x 512 level-0 px: a_t 16 -> 16 * 512**2 level-0 px); ``biopsy`` mirrors
``presets/bwh_biopsy.csv`` (sthresh 15, mthresh 11, close 2, a_t 1, a_h 1, max_n_holes 2).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, fields
from typing import Any

TILER_VERSION = "wsirisk-tiler-1"  # bump when the algorithm changes (enters params_hash)
CLAM_REF_PATCH_AREA_LEVEL0 = 512 * 512  # CLAM's a_t / a_h unit, in level-0 px

PRESETS: dict[str, dict[str, Any]] = {
    "tcga": {
        "seg_downsample": 64,
        "sthresh": 8,
        "mthresh": 7,
        "close_px": 4,
        "use_otsu": False,
        "min_tissue_area_level0": 16 * CLAM_REF_PATCH_AREA_LEVEL0,
        "min_hole_area_level0": 4 * CLAM_REF_PATCH_AREA_LEVEL0,
        "max_n_holes": 8,
        "max_seg_read_mpx": 256.0,
    },
    "biopsy": {
        "seg_downsample": 64,
        "sthresh": 15,
        "mthresh": 11,
        "close_px": 2,
        "use_otsu": False,
        "min_tissue_area_level0": 1 * CLAM_REF_PATCH_AREA_LEVEL0,
        "min_hole_area_level0": 1 * CLAM_REF_PATCH_AREA_LEVEL0,
        "max_n_holes": 2,
        "max_seg_read_mpx": 256.0,
    },
}


class OptionsError(ValueError):
    """Invalid tiling options; the message names the offending key."""


@dataclass(frozen=True)
class SegmentationParams:
    """Tissue segmentation parameters (mask px = pixels of the low-resolution tissue mask)."""

    seg_downsample: float  # target level-0 px per mask px (capped so a tile spans >= 8 mask px)
    sthresh: int  # saturation threshold 0..255 (a floor when use_otsu)
    mthresh: int  # median blur kernel, odd, mask px
    close_px: int  # morphological closing kernel, mask px (0 = none)
    use_otsu: bool
    min_tissue_area_level0: float  # drop tissue pieces (minus their holes) not larger than this
    min_hole_area_level0: float  # drop holes not larger than this
    max_n_holes: int  # keep at most this many (largest) holes per tissue piece
    max_seg_read_mpx: float  # refuse (skip) a slide whose segmentation read exceeds this


@dataclass(frozen=True)
class TilingOptions:
    """The resolved `slides` section."""

    preset: str
    target_mpp: float  # um/px of the output tiles
    tile_size_px: int  # tile side at target_mpp
    overlap_px: int  # overlap between neighbouring tiles at target_mpp
    min_tissue_fraction: float  # keep a tile when this share of it is tissue (0 < f <= 1)
    scale_snap_tolerance: float  # snap target/slide mpp ratios within this to a power of two
    segmentation: SegmentationParams

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (nested segmentation)."""
        return asdict(self)


_TOP_DEFAULTS: dict[str, Any] = {
    "preset": "tcga",
    "target_mpp": 0.5,
    "tile_size_px": 256,
    "overlap_px": 0,
    "min_tissue_fraction": 0.5,
    "scale_snap_tolerance": 0.05,
    "segmentation": {},
}


def _number(key: str, value: Any, *, integer: bool = False) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise OptionsError(f"slides.{key} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise OptionsError(f"slides.{key} must be finite, got {value!r}")
    if integer:
        if float(value) != int(value):
            raise OptionsError(f"slides.{key} must be an integer, got {value!r}")
        return int(value)
    return float(value)


def _check(key: str, ok: bool, what: str, value: Any) -> None:
    if not ok:
        raise OptionsError(f"slides.{key} must be {what}, got {value!r}")


def _segmentation(preset: str, overrides: Any) -> SegmentationParams:
    if not isinstance(overrides, dict):
        raise OptionsError(f"slides.segmentation must be a mapping, got {overrides!r}")
    merged = dict(PRESETS[preset])
    for key, value in overrides.items():
        if key not in merged:
            known = ", ".join(sorted(merged))
            raise OptionsError(f"slides.segmentation.{key}: unknown key (known: {known})")
        merged[key] = value
    name = "segmentation."
    out: dict[str, Any] = {}
    for field in fields(SegmentationParams):
        key, value = field.name, merged[field.name]
        if key == "use_otsu":
            _check(name + key, isinstance(value, bool), "true or false", value)
            out[key] = value
            continue
        integer = key in {"sthresh", "mthresh", "close_px", "max_n_holes"}
        out[key] = _number(name + key, value, integer=integer)
    _check(name + "seg_downsample", out["seg_downsample"] >= 1, ">= 1", out["seg_downsample"])
    _check(name + "sthresh", 0 <= out["sthresh"] <= 254, "in 0..254", out["sthresh"])
    mthresh = out["mthresh"]
    _check(name + "mthresh", mthresh >= 1 and mthresh % 2 == 1, "an odd integer >= 1", mthresh)
    _check(name + "close_px", out["close_px"] >= 0, ">= 0", out["close_px"])
    for key in ("min_tissue_area_level0", "min_hole_area_level0"):
        _check(name + key, out[key] >= 0, ">= 0", out[key])
    _check(name + "max_n_holes", out["max_n_holes"] >= 0, ">= 0", out["max_n_holes"])
    _check(name + "max_seg_read_mpx", out["max_seg_read_mpx"] > 0, "> 0", out["max_seg_read_mpx"])
    return SegmentationParams(**out)


def parse_options(raw: dict[str, Any] | None) -> TilingOptions:
    """Validate the `slides` config section (missing keys take defaults; unknown keys fail)."""
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise OptionsError(f"slides options must be a mapping, got {type(raw).__name__}")
    for key in raw:
        if key not in _TOP_DEFAULTS:
            known = ", ".join(sorted(_TOP_DEFAULTS))
            raise OptionsError(f"slides.{key}: unknown key (known: {known})")
    merged = {**_TOP_DEFAULTS, **raw}
    preset = merged["preset"]
    if preset not in PRESETS:
        raise OptionsError(
            f"slides.preset must be one of {', '.join(sorted(PRESETS))}, got {preset!r}"
        )
    target_mpp = _number("target_mpp", merged["target_mpp"])
    _check("target_mpp", 0.01 <= target_mpp <= 100, "in 0.01..100 um/px", target_mpp)
    tile = _number("tile_size_px", merged["tile_size_px"], integer=True)
    _check("tile_size_px", 8 <= tile <= 8192, "in 8..8192", tile)
    overlap = _number("overlap_px", merged["overlap_px"], integer=True)
    _check("overlap_px", 0 <= overlap < tile, f"in 0..{tile - 1} (< tile_size_px)", overlap)
    fraction = _number("min_tissue_fraction", merged["min_tissue_fraction"])
    _check("min_tissue_fraction", 0 < fraction <= 1, "in (0, 1]", fraction)
    snap = _number("scale_snap_tolerance", merged["scale_snap_tolerance"])
    _check("scale_snap_tolerance", 0 <= snap < 0.5, "in [0, 0.5)", snap)
    return TilingOptions(
        preset=preset,
        target_mpp=target_mpp,
        tile_size_px=tile,
        overlap_px=overlap,
        min_tissue_fraction=fraction,
        scale_snap_tolerance=snap,
        segmentation=_segmentation(preset, merged["segmentation"]),
    )


def parse_options_json(text: str) -> TilingOptions:
    """Parse ``--options`` (a JSON object string)."""
    try:
        raw = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        raise OptionsError(f"--options is not valid JSON: {exc}") from exc
    return parse_options(raw)


def params_hash(options: TilingOptions, mpp_override: float | None) -> str:
    """Short sha256 of everything that determines a slide's tiles (besides the slide)."""
    payload = {"version": TILER_VERSION, "options": options.to_dict(), "mpp_override": mpp_override}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
