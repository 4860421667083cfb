"""Patch features: encoder registry, tile loader and resumable extraction (stage: extract).

Importing this package is light (no torch); torch and timm load with the submodules that
need them.  ``load_features`` reads a finished features store.
"""

from __future__ import annotations

from wsirisk.features.io import FeaturesStoreError, load_features

__all__ = ["FeaturesStoreError", "load_features"]
