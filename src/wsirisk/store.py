"""Atomic artifact writing: build under a temp path, then rename into place.

Nothing half-written is ever found under an artifact's final name.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def temp_path(path: Path) -> Path:
    """Hidden sibling of ``path`` private to this process."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def commit(tmp: Path, path: Path) -> None:
    """Move a finished ``tmp`` onto ``path`` (replacing an old one)."""
    path = Path(path)
    if path.exists() and path.is_dir():
        old = path.with_name(f".{path.name}.old-{os.getpid()}")
        os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, path)


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temp path to write a file or directory to; rename it to ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    if tmp.exists():
        _remove(tmp)
    try:
        yield tmp
    except BaseException:
        if tmp.exists():
            _remove(tmp)
        raise
    commit(tmp, path)


@contextmanager
def atomic_group(path: Path, attrs: dict[str, Any] | None = None) -> Iterator[Any]:
    """Yield a fresh zarr v3 group at a temp path; it appears at ``path`` only when complete."""
    import zarr

    with atomic_path(path) as tmp:
        group = zarr.open_group(str(tmp), mode="w", zarr_format=3)
        if attrs:
            group.attrs.update(attrs)
        yield group


def open_group(path: Path, mode: str = "r") -> Any:
    """Open an existing zarr group, with an error naming the path if it is missing."""
    import zarr

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"artifact missing: {path}")
    return zarr.open_group(str(path), mode=mode)


def write_text(path: Path, text: str) -> None:
    """Write a text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically (sorted keys, indented)."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
