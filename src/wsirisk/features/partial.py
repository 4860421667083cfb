"""The hidden, resumable store that extraction writes into before the final store exists.

``.<name>.partial`` beside the final store holds ``features`` float16 (N, D) and ``tile_ok``
uint8 (N,) indexed by tile (same order as the tiles store), chunked by ``chunk_tiles`` rows,
and attrs ``identity`` (what the result depends on) and ``n_done`` (tiles finished).  Each
chunk is written whole (zarr's local store writes files atomically), and ``n_done`` moves
only after the chunk is on disk, so a killed job resumes at ``n_done``.  A partial whose
identity differs, or that cannot be read, is discarded.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np

PARTIAL_FEATURES = "features"
PARTIAL_OK = "tile_ok"

log = logging.getLogger(__name__)


def partial_path(out_path: Path) -> Path:
    """Hidden sibling of the final store: ``dir/.<name>.partial``."""
    out_path = Path(out_path)
    return out_path.with_name(f".{out_path.name}.partial")


def _normalise(identity: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(identity, sort_keys=True))


class PartialStore:
    """Chunked, resumable per-tile features of one slide."""

    def __init__(self, path: Path, group: Any) -> None:
        self.path, self.group = Path(path), group
        self.features = group[PARTIAL_FEATURES]
        self.tile_ok = group[PARTIAL_OK]
        self.n_tiles = int(self.features.shape[0])
        self.chunk_tiles = int(self.features.chunks[0])

    @property
    def n_done(self) -> int:
        return int(self.group.attrs["n_done"])

    @classmethod
    def open_or_create(
        cls, out_path: Path, identity: dict[str, Any], n_tiles: int, dim: int, chunk_tiles: int
    ) -> PartialStore:
        """Reuse the partial of ``out_path`` if its identity matches, else start a new one."""
        import zarr

        path = partial_path(out_path)
        identity = _normalise(identity)
        if path.exists():
            try:
                group = zarr.open_group(str(path), mode="r+")
                store = cls(path, group)
                same = (
                    _normalise(dict(group.attrs["identity"])) == identity
                    and store.features.shape == (n_tiles, dim)
                    and store.chunk_tiles == chunk_tiles
                    and 0 <= store.n_done <= n_tiles
                )
                if same:
                    return store
                log.info("%s: different inputs or settings; starting over", path)
            except Exception as exc:  # noqa: BLE001 - unreadable partial: start over
                log.info("%s: unreadable (%s); starting over", path, exc)
            shutil.rmtree(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        group = zarr.open_group(str(path), mode="w", zarr_format=3)
        rows = max(1, chunk_tiles)
        group.create_array(
            PARTIAL_FEATURES, shape=(n_tiles, dim), chunks=(rows, dim), dtype="float16"
        )
        group.create_array(PARTIAL_OK, shape=(n_tiles,), chunks=(rows,), dtype="uint8")
        group.attrs.update({"identity": identity, "n_done": 0})
        return cls(path, group)

    def write_chunk(self, start: int, features_f16: np.ndarray, ok: np.ndarray) -> None:
        """Write tiles ``start..start+len`` (one whole chunk, or the last) then move n_done."""
        stop = start + len(features_f16)
        if start != self.n_done or start % self.chunk_tiles:
            raise RuntimeError(f"{self.path}: chunk at tile {start}, expected {self.n_done}")
        if stop - start != min(self.chunk_tiles, self.n_tiles - start):
            raise RuntimeError(f"{self.path}: chunk {start}:{stop} is not a whole chunk")
        self.features[start:stop] = features_f16.astype(np.float16, copy=False)
        self.tile_ok[start:stop] = ok.astype(np.uint8, copy=False)
        self.group.attrs["n_done"] = stop

    def read_all(self) -> tuple[np.ndarray, np.ndarray]:
        """(features float16 (N, D), ok bool (N,)) of a finished partial."""
        if self.n_done != self.n_tiles:
            raise RuntimeError(f"{self.path}: only {self.n_done}/{self.n_tiles} tiles done")
        return self.features[...], self.tile_ok[...].astype(bool)

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
