"""Compressed JPEG tiles of a tiled TIFF/SVS level, as complete JPEG streams (no decoding here).

OpenSlide decodes such a tile by loading the level's shared ``JPEGTables`` into libjpeg, then the
tile's abbreviated stream, and forcing the JPEG colour space from the TIFF photometric tag (RGB ->
no colour transform, the Aperio case; YCbCr -> YCbCr).  :func:`tile_stream` builds the one
self-contained stream that makes any libjpeg-based decoder (libjpeg-turbo via simplejpeg,
torchvision, nvJPEG) do the same: ``SOI + APP14 Adobe(transform) + tables + tile``.  The Adobe
marker is how a plain JPEG stream says "RGB, no transform" (0) or "YCbCr" (1); a tile that
carries its own JFIF/Adobe marker which contradicts the photometric tag cannot be forced this
way and the level is refused (the caller falls back to OpenSlide).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SOI, EOI = b"\xff\xd8", b"\xff\xd9"
PHOTOMETRIC_RGB, PHOTOMETRIC_YCBCR = 2, 6
COMPRESSION_JPEG = 7
SUPPORTED_VENDORS = ("aperio", "generic-tiff")  # OpenSlide drivers whose tiles we reproduce


def adobe_marker(transform: int) -> bytes:
    """APP14 "Adobe" segment: transform 0 = RGB (no colour transform), 1 = YCbCr."""
    return b"\xff\xee\x00\x0eAdobe\x00\x64\x00\x00\x00\x00" + bytes([transform])


def header_markers(stream: bytes) -> list[tuple[int, bytes]]:
    """(marker, payload) of the segments before the scan (SOS) of a JPEG stream or tables."""
    out: list[tuple[int, bytes]] = []
    pos = 2 if stream[:2] == SOI else 0
    while pos + 4 <= len(stream):
        if stream[pos] != 0xFF:
            break
        marker = stream[pos + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # standalone markers
            pos += 2
            continue
        if marker == 0xD9:  # EOI
            break
        length = int.from_bytes(stream[pos + 2 : pos + 4], "big")
        out.append((marker, stream[pos + 4 : pos + 2 + length]))
        if marker == 0xDA:  # SOS: entropy-coded data follows
            break
        pos += 2 + length
    return out


def implied_transform(markers: list[tuple[int, bytes]]) -> int | None:
    """Colour transform a stream's own JFIF (1) / Adobe (its flag) marker imposes, else None."""
    for marker, payload in markers:
        if marker == 0xE0 and payload.startswith(b"JFIF\x00"):
            return 1
        if marker == 0xEE and payload.startswith(b"Adobe") and len(payload) >= 12:
            return int(payload[11])
    return None


class UnsupportedLevel(ValueError):
    """The level is not something the direct JPEG path can reproduce (reason in the message)."""


@dataclass(frozen=True)
class JpegLevel:
    """Geometry and compressed-tile index of one JPEG-tiled TIFF level."""

    path: Path
    page_index: int
    width_px: int
    height_px: int
    tile_w: int
    tile_h: int
    tiles_across: int
    tiles_down: int
    offsets: np.ndarray  # int64 (tiles_down * tiles_across,)
    bytecounts: np.ndarray  # int64
    prefix: bytes  # SOI + Adobe marker + table segments (no SOI/EOI of the tables)
    transform: int  # 0 RGB, 1 YCbCr

    def tile_index(self, row: int, col: int) -> int:
        return row * self.tiles_across + col

    def stream(self, raw: bytes) -> bytes:
        """Full JPEG stream of a raw TIFF tile (which starts with its own SOI)."""
        return self.prefix + raw[2:] if raw[:2] == SOI else self.prefix + raw


def find_level(path: Path, width_px: int, height_px: int) -> JpegLevel:
    """The tiled JPEG page of ``path`` with these dimensions; UnsupportedLevel says why not."""
    import tifffile

    path = Path(path)
    try:
        tif = tifffile.TiffFile(path)
    except Exception as exc:  # noqa: BLE001 - any parse error: not for the fast path
        raise UnsupportedLevel(f"tifffile cannot parse the file ({exc})") from exc
    with tif:
        pages = [p for p in tif.pages if (p.imagewidth, p.imagelength) == (width_px, height_px)]
        pages = [p for p in pages if p.is_tiled]
        if len(pages) != 1:
            raise UnsupportedLevel(f"{len(pages)} tiled pages of {width_px}x{height_px}")
        page = pages[0]
        return _level_of_page(path, page)


def _level_of_page(path: Path, page: Any) -> JpegLevel:
    checks = {
        "compression": (int(page.compression), COMPRESSION_JPEG),
        "samples per pixel": (int(page.samplesperpixel), 3),
        "bits per sample": (_bits(page.bitspersample), 8),
        "planar config": (int(page.planarconfig), 1),
    }
    for name, (got, want) in checks.items():
        if got != want:
            raise UnsupportedLevel(f"{name} {got} (fast path needs {want})")
    photometric = int(page.photometric)
    if photometric not in (PHOTOMETRIC_RGB, PHOTOMETRIC_YCBCR):
        raise UnsupportedLevel(f"photometric {photometric} (needs RGB or YCbCr)")
    if page.imagedepth != 1 or page.tiledepth != 1:
        raise UnsupportedLevel("3-D tiles")
    counts = np.asarray(page.databytecounts, dtype=np.int64)
    if len(counts) == 0 or int(counts.min()) <= 0:
        raise UnsupportedLevel("missing (zero-length) tiles; OpenSlide fills them its own way")
    transform = 0 if photometric == PHOTOMETRIC_RGB else 1
    tables = bytes(page.jpegtables or b"")
    table_segments = tables[2:] if tables[:2] == SOI else tables
    if table_segments.endswith(EOI):
        table_segments = table_segments[:-2]
    tile_w, tile_h = int(page.tilewidth), int(page.tilelength)
    across = -(-int(page.imagewidth) // tile_w)
    down = -(-int(page.imagelength) // tile_h)
    offsets = np.asarray(page.dataoffsets, dtype=np.int64)
    if len(offsets) != across * down:
        raise UnsupportedLevel(f"{len(offsets)} tiles, expected {across}x{down}")
    level = JpegLevel(
        Path(path), int(page.index), int(page.imagewidth), int(page.imagelength), tile_w, tile_h,
        across, down, offsets, counts, SOI + adobe_marker(transform) + table_segments, transform,
    )  # fmt: skip
    first = read_raw(path, level, 0)
    implied = implied_transform(header_markers(tables) + header_markers(first))
    if implied is not None and implied != transform:
        raise UnsupportedLevel(
            f"tiles carry a colour marker (transform {implied}) that contradicts "
            f"photometric {photometric}"
        )
    return level


def _bits(value: Any) -> int:
    values = set(np.atleast_1d(value).tolist())
    return int(values.pop()) if len(values) == 1 else -1


def read_raw(path: Path, level: JpegLevel, tile_no: int, fd: int | None = None) -> bytes:
    """The stored bytes of tile ``tile_no`` (short when the file is truncated)."""
    offset, size = int(level.offsets[tile_no]), int(level.bytecounts[tile_no])
    if fd is not None:
        return os.pread(fd, size, offset)
    with open(path, "rb") as handle:
        handle.seek(offset)
        return handle.read(size)


__all__ = [
    "SUPPORTED_VENDORS",
    "JpegLevel",
    "UnsupportedLevel",
    "adobe_marker",
    "find_level",
    "header_markers",
    "implied_transform",
    "read_raw",
]
