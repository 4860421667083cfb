"""One stream of tile batches over several slides, so loader workers never wait between slides.

Each slide's remaining tiles are cut into units of work (a multiple of the batch size, up to
:data:`UNIT_TILES`); units are numbered across all slides in order and dealt round-robin to the
DataLoader workers.  A worker reads a unit batch by batch with one reader per slide (its cache
spans the unit, so a stored tile shared by neighbouring tiles is decoded once), and moves on to
the next slide's units while the main process is still embedding the current slide's last
batches.  Batches reach the main process in the loader's (deterministic) order; their tile
indices say where they belong, and the per-slide chunk buffer puts them back in tile order.
"""

from __future__ import annotations

import math
import traceback
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from wsirisk.features.dataset import PREFETCH_BATCHES, _serial_opencv, _worker_init
from wsirisk.features.readers import ReadSpec, TileReader, make_reader, units

UNIT_TILES = 1024  # longest unit of work: one worker, one reader cache


@dataclass(frozen=True)
class SlideWork:
    """Tiles ``start..N-1`` of one slide, read as ``spec`` says; ``key`` names it in batches."""

    key: int
    spec: ReadSpec
    start: int

    @property
    def n_tiles(self) -> int:
        return len(self.spec.coords)


def unit_tiles(n_remaining: int, batch_size: int, num_workers: int) -> int:
    """Units long enough for the reader cache, short enough that every worker gets two."""
    share = math.ceil(max(1, n_remaining) / (2 * max(1, num_workers)))
    return max(batch_size, min(UNIT_TILES, share))


class TileStream(IterableDataset):
    """Yields ``(key, indices int64, tiles uint8 NHWC | payload, ok bool, error str)``."""

    def __init__(self, works: list[SlideWork], batch_size: int, num_workers: int) -> None:
        self.works = {w.key: w for w in works}
        self.batch_size = batch_size
        self.units: list[tuple[int, int, int]] = []
        for work in works:
            size = unit_tiles(work.n_tiles - work.start, batch_size, num_workers)
            self.units += [(work.key, a, b) for a, b in units(work.n_tiles, work.start,
                                                                batch_size, size)]  # fmt: skip

    def __iter__(self) -> Any:
        info = get_worker_info()
        worker, n_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        reader: TileReader | None = None
        reader_key, failed = -1, set()
        try:
            for number, (key, first, stop) in enumerate(self.units):
                if number % n_workers != worker or key in failed:
                    continue
                if key != reader_key:
                    if reader is not None:
                        reader.close()
                    reader, reader_key = make_reader(self.works[key].spec), key
                try:
                    yield from self._unit(reader, key, first, stop)
                except Exception as exc:  # noqa: BLE001 - the slide fails, the stream goes on
                    failed.add(key)
                    where = self.works[key].spec.slide_path
                    text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
                    yield key, torch.zeros(0, dtype=torch.int64), None, None, f"{where}: {text}"
        finally:
            if reader is not None:
                reader.close()

    def _unit(self, reader: TileReader, key: int, first: int, stop: int) -> Any:
        indices = np.arange(first, stop, dtype=np.int64)
        reader.begin_unit(indices)
        for a in range(0, len(indices), self.batch_size):
            batch = indices[a : a + self.batch_size]
            data, ok = reader.read(batch)
            if isinstance(data, np.ndarray):
                data = torch.from_numpy(data)
            yield key, torch.from_numpy(batch), data, torch.from_numpy(ok), ""


def make_stream_loader(
    works: list[SlideWork], batch_size: int, num_workers: int, pin_memory: bool
) -> DataLoader:
    """DataLoader over a TileStream: items are whole batches (no collation), in a fixed order."""
    if num_workers > 0:
        _serial_opencv()
    return DataLoader(
        TileStream(works, batch_size, num_workers),
        batch_size=None,
        num_workers=num_workers,
        pin_memory=pin_memory,
        prefetch_factor=PREFETCH_BATCHES if num_workers > 0 else None,
        worker_init_fn=_worker_init if num_workers > 0 else None,
        persistent_workers=False,
    )


__all__ = ["UNIT_TILES", "SlideWork", "TileStream", "make_stream_loader", "unit_tiles"]
