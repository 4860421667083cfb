"""Tiles by coordinate as a torch Dataset; each DataLoader worker opens its own slide handle."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from wsirisk.slides.read import open_slide, read_tile


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


def _resize(rgb: np.ndarray, geometry: TileGeometry) -> np.ndarray:
    if geometry.resize == "none":
        return rgb
    import cv2

    flag = cv2.INTER_AREA if geometry.resize == "cv2.INTER_AREA" else cv2.INTER_LINEAR
    size = (geometry.input_size_px, geometry.input_size_px)
    return cv2.resize(rgb, size, interpolation=flag)


class TileDataset(Dataset):
    """Item ``i`` -> (tile index, uint8 (S, S, 3) tensor, decoded ok) for tiles ``start..N-1``.

    A tile whose JPEG data OpenSlide cannot decode comes back as zeros with ``ok=False``;
    the slide handle is then reopened (OpenSlide handles stay in error state after an error).
    """

    def __init__(
        self, slide_path: Path, coords: np.ndarray, geometry: TileGeometry, start: int = 0
    ) -> None:
        self.slide_path = Path(slide_path)
        self.coords = np.ascontiguousarray(coords, dtype=np.int64)
        self.geometry = geometry
        self.start = int(start)
        self._slide: Any = None
        self._pid = -1

    def __len__(self) -> int:
        return max(0, len(self.coords) - self.start)

    def _handle(self) -> Any:
        if self._slide is None or self._pid != os.getpid():
            self._slide, self._pid = open_slide(self.slide_path), os.getpid()
        return self._slide

    def read(self, index: int) -> tuple[np.ndarray, bool]:
        """Tile ``index`` (absolute) resized to the encoder input, and whether it decoded."""
        import openslide

        g = self.geometry
        x, y = self.coords[index]
        try:
            rgb = read_tile(self._handle(), x, y, g.read_level, g.read_size_px, g.tile_size_px)
        except openslide.OpenSlideError:
            self._slide = None  # reopen on the next read
            return np.zeros((g.input_size_px, g.input_size_px, 3), np.uint8), False
        return np.ascontiguousarray(_resize(rgb, g)), True

    def __getitem__(self, item: int) -> tuple[int, torch.Tensor, bool]:
        index = self.start + int(item)
        rgb, ok = self.read(index)
        return index, torch.from_numpy(rgb), ok


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


def make_loader(
    dataset: TileDataset, batch_size: int, num_workers: int, pin_memory: bool
) -> DataLoader:
    """In-order batches (index, uint8 NHWC, ok); workers prefetch so I/O overlaps the model."""
    if num_workers > 0:
        _serial_opencv()
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=pin_memory,
        prefetch_factor=PREFETCH_BATCHES if num_workers > 0 else None,
        worker_init_fn=_worker_init if num_workers > 0 else None,
        persistent_workers=False,
    )
