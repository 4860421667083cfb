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
