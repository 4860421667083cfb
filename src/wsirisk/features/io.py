"""Read a finished features store (no torch needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from wsirisk.layout import ATTR_STATUS, FEAT_COORDS, FEAT_FEATURES
from wsirisk.store import open_group


class FeaturesStoreError(ValueError):
    """A features store that is incomplete or malformed."""


def load_features(path: Path) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Return ``(features float32 (N, D), coords int64 (N, 2), attrs)`` of a features store.

    Raises FeaturesStoreError naming ``path`` when the store is not marked complete or its
    arrays disagree; FileNotFoundError when it is missing.
    """
    path = Path(path)
    group = open_group(path, mode="r")
    attrs = dict(group.attrs)
    if attrs.get("complete") is not True:
        raise FeaturesStoreError(f"{path}: features store is not complete (attrs 'complete')")
    for key in (FEAT_FEATURES, FEAT_COORDS):
        if key not in group:
            raise FeaturesStoreError(f"{path}: missing array {key!r}")
    features = np.asarray(group[FEAT_FEATURES][...], dtype=np.float32)
    coords = np.asarray(group[FEAT_COORDS][...], dtype=np.int64)
    if features.ndim != 2 or coords.shape != (features.shape[0], 2):
        raise FeaturesStoreError(
            f"{path}: features {features.shape} and coords {coords.shape} do not match"
        )
    if features.shape[1] != int(attrs.get("dim", features.shape[1])):
        raise FeaturesStoreError(
            f"{path}: features have {features.shape[1]} columns but attrs dim={attrs['dim']}"
        )
    if ATTR_STATUS not in attrs:
        raise FeaturesStoreError(f"{path}: missing attribute {ATTR_STATUS!r}")
    return features, coords, attrs


def level0_mpp(attrs: dict[str, Any]) -> float | None:
    """Level-0 um/px of a features store's slide: its ``mpp`` attribute, else its tiles store's."""
    if attrs.get("mpp"):
        return float(attrs["mpp"])
    tiles = attrs.get("tiles_store")
    if tiles and Path(tiles).exists():
        mpp = dict(open_group(Path(tiles), mode="r").attrs).get("mpp")
        return float(mpp) if mpp else None
    return None


SLIDE_GAP_UM = 100_000.0  # gap between a patient's slides in patient_coords_um (100 mm)


def patient_coords_um(parts: list[tuple[np.ndarray, float | None]]) -> np.ndarray:
    """Patch positions (N, 2) float32 in micrometres for a patient's concatenated slides.

    ``parts`` holds, per slide in bag order, its level-0 ``coords`` (n, 2) and level-0 um/px
    (``mpp``; None counts as 0.5). Each slide's x is shifted past the previous slides' extent
    plus :data:`SLIDE_GAP_UM`, so spatial groupings (regions, orders) never join two slides.
    """
    out, offset_x = [], 0.0
    for coords, mpp in parts:
        um = np.asarray(coords, dtype=np.float64).reshape(-1, 2) * float(mpp or 0.5)
        if um.shape[0]:
            um = um - um.min(axis=0)
            um[:, 0] += offset_x
            offset_x = float(um[:, 0].max()) + SLIDE_GAP_UM
        out.append(um)
    if not out:
        return np.zeros((0, 2), np.float32)
    return np.concatenate(out, axis=0).astype(np.float32)
