"""Tile geometry, the encoder-input resize, and loader-worker set-up shared by the readers.

The readers themselves are in :mod:`wsirisk.features.readers`, the DataLoader over them in
:mod:`wsirisk.features.stream`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TileGeometry:
    """How the tiling stage read tiles (tiles-store attrs) and the encoder's input size."""

    read_level: int
    read_size_px: int
    tile_size_px: int
    input_size_px: int

    @property
    def resize(self) -> str:
        """Interpolation from tile to encoder input: none, area (shrink) or linear (enlarge)."""
        if self.input_size_px == self.tile_size_px:
            return "none"
        return "cv2.INTER_AREA" if self.input_size_px < self.tile_size_px else "cv2.INTER_LINEAR"


def resize_to_input(rgb: np.ndarray, geometry: TileGeometry) -> np.ndarray:
    if geometry.resize == "none":
        return rgb
    import cv2

    flag = cv2.INTER_AREA if geometry.resize == "cv2.INTER_AREA" else cv2.INTER_LINEAR
    size = (geometry.input_size_px, geometry.input_size_px)
    return cv2.resize(rgb, size, interpolation=flag)


def _serial_opencv() -> None:
    """One OpenCV thread, set in the parent *before* workers fork.

    Reconfiguring OpenCV's thread pool inside a forked worker can deadlock (the copied
    condition variable still counts the parent's pool threads as waiters); with one thread
    set beforehand, workers never touch the pool.  Workers resize small tiles, and several
    of them run at once, so threads inside OpenCV buy nothing here.
    """
    import cv2

    cv2.setNumThreads(1)


WORKER_NICENESS = 10
PREFETCH_BATCHES = 2  # per worker; batches live in /dev/shm (64 MiB in a default container)


def _worker_init(_worker_id: int) -> None:
    """Lower the worker's CPU priority: the model's threads run first, readers fill the gaps.

    On a small CPU, a reader that preempts one model thread stalls all of them at the next
    barrier; prefetching hides the readers' own latency, so they can afford to wait.
    """
    try:
        os.nice(WORKER_NICENESS)
    except OSError:  # pragma: no cover - not permitted: run at normal priority
        pass
