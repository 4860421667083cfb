"""Level-0 resolution (um/px) of a slide: override, OpenSlide, vendor keys, TIFF tags, objective."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

MPP_PLAUSIBLE = (0.05, 20.0)  # um/px; e.g. 72 dpi TIFF defaults (352.8 um/px) are rejected
OBJECTIVE_MPP_AT_10X = 1.0  # um/px of a 10x objective: 20x -> 0.5, 40x -> 0.25
OVERRIDE_HINT = (
    "set the slide's mpp_override column in the sample sheet (um/px at level 0, "
    "e.g. 0.25 for 40x, 0.5 for 20x), or pass --mpp-override"
)


class NoMppError(ValueError):
    """No usable resolution: the message lists every key tried and how to override."""


@dataclass(frozen=True)
class Resolution:
    """Level-0 um/px and where it came from (a property key, 'override', ...)."""

    mpp: float
    source: str


def _float(text: str) -> float | None:
    match = re.search(r"[-+]?\d*\.?\d+(?:[eE][-+]?\d+)?", text)
    return float(match.group()) if match else None


def _direct(text: str) -> float | None:
    return _float(text)


def _philips_mm(text: str) -> float | None:  # '"0.000243" "0.000243"' (mm)
    value = _float(text)
    return None if value is None else value * 1000.0


def _objective(text: str) -> float | None:
    power = _float(text)
    return None if not power or power <= 0 else OBJECTIVE_MPP_AT_10X * 10.0 / power


# (property key, parser to um/px), most reliable first
MPP_KEYS: tuple[tuple[str, Callable[[str], float | None]], ...] = (
    ("openslide.mpp-x", _direct),
    ("aperio.MPP", _direct),
    ("mirax.LAYER_0_LEVEL_0_SECTION.MICROMETER_PER_PIXEL_X", _direct),
    ("philips.DICOM_PIXEL_SPACING", _philips_mm),
)
OBJECTIVE_KEYS: tuple[str, ...] = (
    "openslide.objective-power",
    "aperio.AppMag",
    "hamamatsu.SourceLens",
    "mirax.GENERAL.OBJECTIVE_MAGNIFICATION",
)
_TIFF_UNIT_UM = {"centimeter": 1e4, "cm": 1e4, "inch": 25400.0, "in": 25400.0}


def _tiff_mpp(props: Mapping[str, str]) -> tuple[float | None, str]:
    xres = props.get("tiff.XResolution")
    if xres is None:
        return None, "absent"
    unit = props.get("tiff.ResolutionUnit", "").strip().lower()
    if unit not in _TIFF_UNIT_UM:
        return None, f"unusable unit {unit or 'none'!r}"
    value = _float(xres)
    if not value or value <= 0:
        return None, f"unusable value {xres!r}"
    return _TIFF_UNIT_UM[unit] / value, "ok"


def _plausible(mpp: float | None) -> bool:
    return mpp is not None and math.isfinite(mpp) and MPP_PLAUSIBLE[0] <= mpp <= MPP_PLAUSIBLE[1]


def _first_plausible(
    props: Mapping[str, str],
    keys: Iterable[tuple[str, Callable[[str], float | None]]],
    bad: str,
    tried: list[str],
) -> Resolution | None:
    """The first key whose parsed um/px is plausible; every other key tried goes to ``tried``
    with why (absent, or ``bad`` and its text)."""
    for key, parse in keys:
        text = props.get(key)
        if text is None:
            tried.append(f"{key} (absent)")
            continue
        mpp = parse(text)
        if _plausible(mpp):
            return Resolution(float(mpp), key)
        tried.append(f"{key} ({bad} {text!r})")
    return None


def find_mpp(
    props: Mapping[str, str], override: float | None = None, *, name: str = "slide"
) -> Resolution:
    """Resolve level-0 um/px; ``override`` (from the sample sheet) always wins.

    Raises NoMppError naming ``name``, each key tried with why it was unusable, and the fix.
    """
    if override is not None:
        if not (isinstance(override, int | float) and math.isfinite(override) and override > 0):
            raise ValueError(f"{name}: mpp override must be a positive number, got {override!r}")
        return Resolution(float(override), "override")
    tried: list[str] = []
    found = _first_plausible(props, MPP_KEYS, "implausible", tried)
    if found is not None:
        return found
    mpp, why = _tiff_mpp(props)
    if _plausible(mpp):
        return Resolution(float(mpp), "tiff.XResolution")
    tried.append(f"tiff.XResolution ({why if why != 'ok' else f'implausible {mpp:.4g} um/px'})")
    found = _first_plausible(props, [(k, _objective) for k in OBJECTIVE_KEYS], "unusable", tried)
    if found is not None:
        return found
    raise NoMppError(
        f"{name}: no resolution (um/px) found; tried {', '.join(tried)}; {OVERRIDE_HINT}"
    )
