"""Tile readers for feature extraction, chosen per slide; all return the encoder's input tiles.

Every reader turns a tile's level-0 (x, y) into the same pixels as the tiling stage's
definition (``read_size_px`` read at ``read_level``, INTER_AREA to ``tile_size_px``, then the
encoder's resize), and reports per tile whether it decoded:

* ``openslide``: one OpenSlide ``read_region`` per tile (the reference; works for every format);
* ``region``: one OpenSlide ``read_region`` per block of neighbouring tiles, cut into tiles, so
  each stored tile of the file is decoded about once (same pixels as ``openslide``);
* ``jpeg``: JPEG-tiled TIFF/SVS decoded directly (compressed tiles via tifffile, libjpeg-turbo
  via simplejpeg), each stored tile once per unit of work; when the read size is 2, 4 or 8 times
  the tile size the tiles are decoded DCT-domain scaled (no full decode, no resize pass);
* ``nvjpeg``: workers only gather the compressed bytes; the main process decodes them on the
  GPU (torchvision / nvJPEG) and assembles and resizes the tiles there
  (:mod:`wsirisk.features.devicedecode`).

:func:`plan_reader` picks one per slide (``features.reader: auto``: jpeg, else openslide; nvjpeg
only when asked for) and proves the fast path on the slide itself before using it (its
decoded tiles must equal OpenSlide's); anything it cannot prove falls back with a logged reason.
A stored tile that does not decode fails exactly the output tiles that overlap it, as with
OpenSlide; those come back as zeros with ``ok=False`` and are skipped and counted downstream.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from wsirisk.features.dataset import TileGeometry, resize_to_input
from wsirisk.features.jpegtiff import (
    SUPPORTED_VENDORS,
    JpegLevel,
    UnsupportedLevel,
    find_level,
    read_raw,
)
from wsirisk.slides.read import open_slide, read_tile, rgba_to_rgb

log = logging.getLogger("wsirisk.readers")

READERS = ("openslide", "region", "jpeg", "nvjpeg")
READER_CHOICES = ("auto", *READERS)
BLOCK_MAX_PX = 2048  # longest side of one region read (read-level px)
BLOCK_MAX_AREA = 4 * 2**20  # pixels of one region read (16 MiB as RGBA)
BLOCK_MIN_FILL = 0.7  # merge a row of tiles into a block while tiles cover >= 70 % of it
OPENSLIDE_CACHE_BYTES = 256 * 2**20  # region reader: decoded tiles shared between blocks
SELF_CHECK_MAX_MEAN_DIFF = 0.5  # fast decode vs OpenSlide on the same stored tiles
DEVICE_CHECK_MAX_MEAN_DIFF = 2.0  # GPU path vs CPU path (resize rounding)


@dataclass(frozen=True)
class ReadSpec:
    """How one slide's tiles are read (built in the main process, picklable for workers)."""

    reader: str
    slide_path: Path
    coords: np.ndarray  # int64 (N, 2) level-0 (x, y)
    geometry: TileGeometry
    downsample: int = 1  # integral downsample of read_level (region / jpeg / nvjpeg)
    level: JpegLevel | None = None  # jpeg / nvjpeg
    scale: int = 1  # jpeg: DCT-domain scale denominator (1, 2, 4, 8)
    note: str = ""  # why this reader (fallback reason, scaled decode, ...)

    def describe(self) -> str:
        return f"{self.reader} ({self.note})" if self.note else self.reader

    def at_tile_size(self) -> ReadSpec:
        """The same reads, handed over at the tile size (the device resizes to the input)."""
        g = self.geometry
        return replace(self, geometry=replace(g, input_size_px=g.tile_size_px))


# ----------------------------------------------------------------------------- readers


class TileReader:
    """Reads tiles of one slide by absolute index; one instance per worker process."""

    def __init__(self, spec: ReadSpec) -> None:
        self.spec = spec
        g = spec.geometry
        self.input_px = g.input_size_px
        self.level_xy = spec.coords // max(1, spec.downsample)  # read-level (x, y)

    _unit: frozenset[int] = frozenset()

    def begin_unit(self, indices: np.ndarray) -> None:
        """Called with every index of a unit of work before its batches are read."""
        self._unit = frozenset(indices.tolist())

    def _ensure_unit(self, indices: np.ndarray) -> None:
        """Batches outside the announced unit (direct use, benchmarks) form their own unit."""
        if not self._unit.issuperset(indices.tolist()):
            self.begin_unit(indices)

    def read(self, indices: np.ndarray) -> tuple[Any, np.ndarray]:
        """(uint8 (n, S, S, 3) tiles, or a payload for the main process; ok bool (n,))."""
        raise NotImplementedError

    def close(self) -> None:
        """Release file handles."""

    def _blank(self) -> np.ndarray:
        return np.zeros((self.input_px, self.input_px, 3), np.uint8)

    def _finish(self, region: np.ndarray, size_px: int) -> np.ndarray:
        """Region at read size (or at tile size when already scaled) -> encoder input tile."""
        g = self.spec.geometry
        if size_px != g.tile_size_px:
            import cv2

            region = cv2.resize(
                region, (g.tile_size_px, g.tile_size_px), interpolation=cv2.INTER_AREA
            )
        return np.ascontiguousarray(resize_to_input(region, g))


class OpenSlideReader(TileReader):
    """One OpenSlide ``read_region`` per tile (today's reader, the reference)."""

    def __init__(self, spec: ReadSpec) -> None:
        super().__init__(spec)
        self._slide: Any = None
        self._pid = -1

    def handle(self) -> Any:
        if self._slide is None or self._pid != os.getpid():
            self._slide, self._pid = open_slide(self.spec.slide_path), os.getpid()
        return self._slide

    def read_one(self, index: int) -> tuple[np.ndarray, bool]:
        import openslide

        g = self.spec.geometry
        x, y = self.spec.coords[index]
        try:
            rgb = read_tile(self.handle(), x, y, g.read_level, g.read_size_px, g.tile_size_px)
        except openslide.OpenSlideError:
            self._slide = None  # an OpenSlide handle stays in error state: reopen
            return self._blank(), False
        return np.ascontiguousarray(resize_to_input(rgb, g)), True

    def read(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = np.empty((len(indices), self.input_px, self.input_px, 3), np.uint8)
        ok = np.zeros(len(indices), bool)
        for k, index in enumerate(indices):
            out[k], ok[k] = self.read_one(int(index))
        return out, ok

    def close(self) -> None:
        if self._slide is not None and self._pid == os.getpid():
            self._slide.close()
        self._slide = None


def read_region_rgb(slide: Any, xy_level0: tuple[int, int], level: int, size: tuple[int, int]):
    """``slide.read_region`` as RGB on white, without the PIL round trip of large regions.

    Same OpenSlide call and the same ARGB -> RGBA conversion as openslide-python's public
    ``read_region`` (so the same pixels), into a NumPy buffer; the public call is used when
    openslide-python's internals differ from the ones this was written against (1.4).
    """
    w, h = int(size[0]), int(size[1])
    try:
        from ctypes import POINTER, c_uint32

        from openslide import lowlevel

        raw, convert, handle = lowlevel._read_region, lowlevel._convert.argb2rgba, slide._osr
    except (ImportError, AttributeError):
        return rgba_to_rgb(np.asarray(slide.read_region(xy_level0, level, (w, h))))
    buf = np.empty((h, w), np.uint32)
    raw(handle, buf.ctypes.data_as(POINTER(c_uint32)), int(xy_level0[0]), int(xy_level0[1]),
        int(level), w, h)  # fmt: skip
    convert(buf)
    return rgba_to_rgb(buf.view(np.uint8).reshape(h, w, 4))


@dataclass
class _Block:
    x: int  # read-level px
    y: int
    w: int
    h: int
    remaining: int  # tiles of the unit not yet cut from it
    image: np.ndarray | None = None
    failed: bool = False


def plan_blocks(
    xy: np.ndarray, size_px: int, max_px: int = BLOCK_MAX_PX, max_area: int = BLOCK_MAX_AREA
) -> tuple[list[tuple[int, int, int, int]], np.ndarray]:
    """Group tiles (read-level top-left ``xy`` (n, 2), square ``size_px``) into blocks.

    Tiles on one row whose regions touch form runs; a run joins the block above it while the
    tiles fill >= BLOCK_MIN_FILL of the merged box and the box stays within the size limits.
    Returns the blocks as (x, y, w, h) and each tile's block number.
    """
    n = len(xy)
    block_of = np.full(n, -1, np.int64)
    order = np.lexsort((xy[:, 0], xy[:, 1]))
    runs: list[list[int]] = []
    for i in order:
        x, y = int(xy[i, 0]), int(xy[i, 1])
        if runs:
            last = runs[-1][-1]
            lx, ly = int(xy[last, 0]), int(xy[last, 1])
            width = x + size_px - int(xy[runs[-1][0], 0])
            if ly == y and x <= lx + size_px and width <= max_px:
                runs[-1].append(i)
                continue
        runs.append([i])
    boxes: list[list[int]] = []  # x0, y0, x1, y1, n_tiles
    open_boxes: list[int] = []  # blocks whose last row is the previous row
    row_y: int | None = None
    next_open: list[int] = []
    for run in runs:
        x0, y0 = int(xy[run[0], 0]), int(xy[run[0], 1])
        x1, y1 = int(xy[run[-1], 0]) + size_px, y0 + size_px
        if row_y != y0:
            open_boxes = next_open if row_y is not None and y0 <= row_y + size_px else []
            next_open, row_y = [], y0
        target = -1
        for b in open_boxes:
            bx0, by0, bx1, by1, count = boxes[b]
            ux0, uy0, ux1, uy1 = min(bx0, x0), min(by0, y0), max(bx1, x1), max(by1, y1)
            area = (ux1 - ux0) * (uy1 - uy0)
            fill = (count + len(run)) * size_px * size_px / area
            fits = ux1 - ux0 <= max_px and uy1 - uy0 <= max_px and area <= max_area
            if fits and fill >= BLOCK_MIN_FILL and min(bx1, x1) > max(bx0, x0):
                target = b
                break
        if target < 0:
            boxes.append([x0, y0, x1, y1, len(run)])
            target = len(boxes) - 1
        else:
            box = boxes[target]
            box[:4] = [min(box[0], x0), min(box[1], y0), max(box[2], x1), max(box[3], y1)]
            box[4] += len(run)
            open_boxes.remove(target)
        next_open.append(target)
        block_of[run] = target
    return [(b[0], b[1], b[2] - b[0], b[3] - b[1]) for b in boxes], block_of


class RegionReader(OpenSlideReader):
    """One OpenSlide read per block of neighbouring tiles; pixels equal the per-tile reader's."""

    def __init__(self, spec: ReadSpec) -> None:
        super().__init__(spec)
        self._blocks: list[_Block] = []
        self._block_of: dict[int, int] = {}

    def handle(self) -> Any:
        fresh = self._slide is None or self._pid != os.getpid()
        slide = super().handle()
        if fresh and hasattr(slide, "set_cache"):
            import openslide

            slide.set_cache(openslide.OpenSlideCache(OPENSLIDE_CACHE_BYTES))
        return slide

    def begin_unit(self, indices: np.ndarray) -> None:
        super().begin_unit(indices)
        size = self.spec.geometry.read_size_px
        boxes, block_of = plan_blocks(self.level_xy[indices], size)
        self._blocks = [_Block(x, y, w, h, 0) for x, y, w, h in boxes]
        self._block_of = {}
        for index, b in zip(indices.tolist(), block_of.tolist(), strict=True):
            self._block_of[index] = b
            self._blocks[b].remaining += 1

    def _block_image(self, block: _Block) -> np.ndarray | None:
        import openslide

        if block.image is None and not block.failed:
            ds = self.spec.downsample
            try:
                block.image = read_region_rgb(
                    self.handle(),
                    (block.x * ds, block.y * ds),
                    self.spec.geometry.read_level,
                    (block.w, block.h),
                )
            except openslide.OpenSlideError:
                self._slide = None
                block.failed = True  # its tiles are read one by one (exact failures)
        return block.image

    def read(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self._ensure_unit(indices)
        size = self.spec.geometry.read_size_px
        out = np.empty((len(indices), self.input_px, self.input_px, 3), np.uint8)
        ok = np.ones(len(indices), bool)
        for k, index in enumerate(indices.tolist()):
            block = self._blocks[self._block_of[index]]
            image = self._block_image(block)
            if image is None:
                out[k], ok[k] = self.read_one(index)
            else:
                x, y = self.level_xy[index] - (block.x, block.y)
                out[k] = self._finish(image[y : y + size, x : x + size], size)
            block.remaining -= 1
            if block.remaining <= 0:
                block.image = None
        return out, ok


class _StoredTiles:
    """Which stored tiles (row, col) of a level an output region overlaps, at a scale."""

    def __init__(self, level: JpegLevel, scale: int) -> None:
        self.level, self.scale = level, scale
        self.tw, self.th = level.tile_w // scale, level.tile_h // scale
        self.width = -(-level.width_px // scale)  # pixels at least partly inside the image
        self.height = -(-level.height_px // scale)

    def span(self, ax: int, ay: int, size: int) -> tuple[int, int, int, int] | None:
        """Inclusive (r0, r1, c0, c1) of stored tiles under [ax, ax+size) x [ay, ay+size)."""
        x0, y0 = max(ax, 0), max(ay, 0)
        x1, y1 = min(ax + size, self.width), min(ay + size, self.height)
        if x1 <= x0 or y1 <= y0:
            return None
        return y0 // self.th, (y1 - 1) // self.th, x0 // self.tw, (x1 - 1) // self.tw

    def tile_numbers(self, ax: int, ay: int, size: int) -> list[int]:
        span = self.span(ax, ay, size)
        if span is None:
            return []
        r0, r1, c0, c1 = span
        across = self.level.tiles_across
        return [r * across + c for r in range(r0, r1 + 1) for c in range(c0, c1 + 1)]

    def paste(self, out: np.ndarray, ax: int, ay: int, tiles: dict[int, np.ndarray]) -> None:
        """Copy the decoded stored tiles into ``out`` (region at (ax, ay)); rest stays as is."""
        size = out.shape[0]
        span = self.span(ax, ay, size)
        if span is None:
            return
        r0, r1, c0, c1 = span
        x_end, y_end = min(ax + size, self.width), min(ay + size, self.height)
        across, tw, th = self.level.tiles_across, self.tw, self.th
        for r in range(r0, r1 + 1):
            sy0, sy1 = max(ay, r * th), min(y_end, (r + 1) * th)
            for c in range(c0, c1 + 1):
                sx0, sx1 = max(ax, c * tw), min(x_end, (c + 1) * tw)
                tile = tiles[r * across + c]
                out[sy0 - ay : sy1 - ay, sx0 - ax : sx1 - ax] = tile[
                    sy0 - r * th : sy1 - r * th, sx0 - c * tw : sx1 - c * tw
                ]


class _ByteSource:
    """Per-process file descriptor for pread of compressed tiles."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fd, self._pid = -1, -1

    def read(self, level: JpegLevel, tile_no: int) -> bytes:
        if self._fd < 0 or self._pid != os.getpid():
            self._fd, self._pid = os.open(self.path, os.O_RDONLY), os.getpid()
        return read_raw(self.path, level, tile_no, fd=self._fd)

    def close(self) -> None:
        if self._fd >= 0 and self._pid == os.getpid():
            os.close(self._fd)
        self._fd = -1


def decode_tile(stream: bytes, level: JpegLevel, scale: int) -> np.ndarray:
    """One complete JPEG stream -> (th/scale, tw/scale, 3) RGB; ValueError when it is corrupt.

    libjpeg-turbo defaults (accurate integer IDCT, fancy upsampling) as OpenSlide uses them, and
    warnings (corrupt data) while decoding scanlines are errors, as in OpenSlide.
    """
    import simplejpeg

    th, tw = level.tile_h // scale, level.tile_w // scale
    options = {"colorspace": "RGB", "fastdct": False, "fastupsample": False,
               "min_height": th, "min_width": tw, "min_factor": scale}  # fmt: skip
    try:
        rgb = simplejpeg.decode_jpeg(stream, strict=True, **options)
    except ValueError as exc:
        # Junk between the scan's last MCU and EOI only warns once every scanline is out;
        # OpenSlide stops reading at the last scanline and never sees it.  Same here.
        if "extraneous bytes before marker 0xd9" not in str(exc):
            raise
        rgb = simplejpeg.decode_jpeg(stream, strict=False, **options)
    if rgb.shape != (th, tw, 3):
        raise ValueError(f"decoded {rgb.shape}, expected {(th, tw, 3)}")
    return rgb


class JpegReader(TileReader):
    """Stored JPEG tiles decoded directly, each once per unit (dropped after its last use)."""

    def __init__(self, spec: ReadSpec) -> None:
        super().__init__(spec)
        if spec.level is None:
            raise ValueError("jpeg reader needs a JPEG level")
        self.level = spec.level
        self.grid = _StoredTiles(spec.level, spec.scale)
        self.bytes = _ByteSource(spec.slide_path)
        self.size = spec.geometry.read_size_px // spec.scale  # region size in decoded px
        self._cache: dict[int, np.ndarray | None] = {}  # None: failed to decode
        self._uses: dict[int, int] = {}

    def _numbers(self, index: int) -> list[int]:
        x, y = self.level_xy[index] // self.spec.scale
        return self.grid.tile_numbers(int(x), int(y), self.size)

    def begin_unit(self, indices: np.ndarray) -> None:
        super().begin_unit(indices)
        self._cache.clear()
        self._uses = {}
        for index in indices.tolist():
            for n in self._numbers(index):
                self._uses[n] = self._uses.get(n, 0) + 1

    def _tile(self, n: int) -> np.ndarray | None:
        if n not in self._cache:
            try:
                raw = self.bytes.read(self.level, n)
                self._cache[n] = decode_tile(self.level.stream(raw), self.level, self.spec.scale)
            except (ValueError, RuntimeError, OSError):
                self._cache[n] = None
        return self._cache[n]

    def _release(self, numbers: list[int]) -> None:
        for n in numbers:
            left = self._uses.get(n, 0) - 1
            if left <= 0:
                self._uses.pop(n, None)
                self._cache.pop(n, None)
            else:
                self._uses[n] = left

    def read(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self._ensure_unit(indices)
        out = np.empty((len(indices), self.input_px, self.input_px, 3), np.uint8)
        ok = np.ones(len(indices), bool)
        region = np.empty((self.size, self.size, 3), np.uint8)
        for k, index in enumerate(indices.tolist()):
            numbers = self._numbers(index)
            tiles = {n: self._tile(n) for n in numbers}
            if any(t is None for t in tiles.values()):
                out[k], ok[k] = self._blank(), False
            else:
                region.fill(255)  # outside the image: white, as OpenSlide's transparent
                x, y = self.level_xy[index] // self.spec.scale
                self.grid.paste(region, int(x), int(y), tiles)  # type: ignore[arg-type]
                out[k] = self._finish(region, self.size)
            self._release(numbers)
        return out, ok

    def close(self) -> None:
        self.bytes.close()
        self._cache.clear()


@dataclass
class EncodedTiles:
    """What an nvjpeg worker hands the main process for one batch (decoded there)."""

    streams: list[np.ndarray]  # complete JPEG streams (uint8) of the stored tiles needed
    numbers: np.ndarray  # int64 (U,) their tile numbers
    readable: np.ndarray  # bool (U,) bytes could be read


class NvjpegReader(JpegReader):
    """Workers gather compressed stored tiles; decoding happens on the GPU (main process)."""

    def read(self, indices: np.ndarray) -> tuple[Any, np.ndarray]:
        numbers = sorted({n for index in indices.tolist() for n in self._numbers(index)})
        streams, readable = [], np.ones(len(numbers), bool)
        for k, n in enumerate(numbers):
            try:
                raw = self.bytes.read(self.level, n)
            except OSError:
                raw, readable[k] = b"", False
            streams.append(np.frombuffer(bytearray(self.level.stream(raw)), np.uint8))
        payload = EncodedTiles(streams, np.asarray(numbers, np.int64), readable)
        return payload, np.ones(len(indices), bool)


def make_reader(spec: ReadSpec) -> TileReader:
    """The worker-side reader of a spec."""
    classes = {
        "openslide": OpenSlideReader,
        "region": RegionReader,
        "jpeg": JpegReader,
        "nvjpeg": NvjpegReader,
    }
    return classes[spec.reader](spec)


# ----------------------------------------------------------------------------- choice


class _Refused(Exception):
    """A reader that cannot be used for this slide (the message says why)."""


def _integral_downsample(slide: Any, level: int, coords: np.ndarray) -> int:
    if level >= slide.level_count:
        raise _Refused(f"read level {level} does not exist")
    ds = float(slide.level_downsamples[level])
    rounded = round(ds)
    if abs(ds - rounded) > 1e-9 or rounded < 1:
        raise _Refused(f"level {level} downsample {ds:g} is not an integer")
    if len(coords) and np.any(coords % rounded):
        raise _Refused(f"tile coordinates are not multiples of the level downsample {rounded}")
    return int(rounded)


def _scale_for(geometry: TileGeometry, level: JpegLevel, level_xy: np.ndarray) -> int:
    ratio = geometry.read_size_px / geometry.tile_size_px
    for scale in (2, 4, 8):
        if ratio == scale and level.tile_w % scale == 0 and level.tile_h % scale == 0:
            if not np.any(level_xy % scale):
                return scale
    return 1


def _sample_tiles(level: JpegLevel, level_xy: np.ndarray, size: int) -> list[int]:
    grid = _StoredTiles(level, 1)
    picks = sorted({0, len(level_xy) // 2, len(level_xy) - 1}) if len(level_xy) else []
    numbers: list[int] = []
    for i in picks:
        found = grid.tile_numbers(int(level_xy[i, 0]), int(level_xy[i, 1]), size)
        numbers += [n for n in found[:2] if n not in numbers]
    return numbers or [0]


def _self_check(slide: Any, spec: ReadSpec) -> None:
    """Decoded stored tiles must equal OpenSlide's pixels for the same rectangle."""
    import openslide

    level = spec.level
    assert level is not None
    source = _ByteSource(spec.slide_path)
    compared = 0
    try:
        for n in _sample_tiles(level, spec.coords // spec.downsample, spec.geometry.read_size_px):
            row, col = divmod(n, level.tiles_across)
            w = min(level.tile_w, level.width_px - col * level.tile_w)
            h = min(level.tile_h, level.height_px - row * level.tile_h)
            try:
                ours = decode_tile(level.stream(source.read(level, n)), level, 1)[:h, :w]
            except (ValueError, RuntimeError, OSError):
                ours = None
            try:
                ds = spec.downsample
                region = slide.read_region(
                    (col * level.tile_w * ds, row * level.tile_h * ds),
                    spec.geometry.read_level,
                    (w, h),
                )
                theirs = rgba_to_rgb(np.asarray(region))
            except openslide.OpenSlideError:
                theirs = None
                slide = open_slide(spec.slide_path)
            if ours is None and theirs is None:
                continue  # a corrupt tile both fail on
            if ours is None or theirs is None:
                who = "the direct decode" if ours is None else "OpenSlide"
                raise _Refused(f"stored tile {n}: only {who} failed to decode it")
            diff = float(np.abs(ours.astype(np.int16) - theirs).mean())
            if diff > SELF_CHECK_MAX_MEAN_DIFF:
                raise _Refused(f"stored tile {n} differs from OpenSlide (mean |diff| {diff:.2f})")
            compared += 1
    finally:
        source.close()
    if not compared:
        raise _Refused("no sample tile decoded to compare with OpenSlide")


def _jpeg_spec(slide: Any, base: ReadSpec) -> ReadSpec:
    try:
        import simplejpeg  # noqa: F401
        import tifffile  # noqa: F401
    except ImportError as exc:
        raise _Refused(f"{exc.name} is not installed (pip install {exc.name})") from exc
    vendor = slide.properties.get("openslide.vendor")
    if vendor not in SUPPORTED_VENDORS:
        raise _Refused(f"OpenSlide vendor {vendor!r} (direct decode proven for aperio/TIFF)")
    width, height = slide.level_dimensions[base.geometry.read_level]
    try:
        level = find_level(base.slide_path, width, height)
    except UnsupportedLevel as exc:
        raise _Refused(str(exc)) from exc
    spec = replace(base, reader="jpeg", level=level)
    _self_check(slide, spec)
    return spec


def _with_scale(spec: ReadSpec, allow_scaled: bool) -> ReadSpec:
    assert spec.level is not None
    scale = _scale_for(spec.geometry, spec.level, spec.coords // spec.downsample)
    if scale > 1 and allow_scaled:
        return replace(spec, scale=scale, note=f"DCT-domain 1/{scale} decode")
    return replace(spec, scale=1, note="full decode")


def _nvjpeg_spec(jpeg: ReadSpec, device: Any) -> ReadSpec:
    if getattr(device, "type", str(device)) != "cuda":
        raise _Refused("nvjpeg needs the encoder on CUDA")
    from wsirisk.features.devicedecode import DeviceDecoder

    spec = replace(jpeg, reader="nvjpeg", scale=1, note="nvJPEG on " + str(device))
    try:
        diff = DeviceDecoder(spec, device).check_against_cpu()
    except Exception as exc:  # noqa: BLE001 - any CUDA/nvJPEG problem: not proven
        raise _Refused(f"GPU decode failed its check ({type(exc).__name__}: {exc})") from exc
    if diff > DEVICE_CHECK_MAX_MEAN_DIFF:
        raise _Refused(f"GPU decode differs from the CPU decode (mean |diff| {diff:.2f})")
    return spec


def plan_reader(
    slide_path: Path,
    coords: np.ndarray,
    geometry: TileGeometry,
    requested: str = "auto",
    device: Any = "cpu",
    allow_scaled: bool = True,
) -> ReadSpec:
    """Choose this slide's reader: ``requested``, or the fastest one proven to give its pixels.

    ``auto`` tries jpeg, then openslide, on CPU and CUDA alike; an explicit choice that cannot
    serve this slide falls back down the same chain (``nvjpeg`` to jpeg, ``region`` to
    openslide).  ``nvjpeg`` is never picked by ``auto``: measured on an H100 with 16 CPU cores,
    its pipeline was slower than jpeg's (the decode is serialised in torchvision and its host
    side runs in the main process), and nvJPEG decodes the RGB-coded JPEG tiles of Aperio
    slides as YCbCr (its self-check refuses them); see docs/benchmarks-gpu.md.
    ``region`` is never picked by ``auto``: measured, it is no faster than one read per tile
    (OpenSlide's own tile cache already decodes each stored tile about once; its per-pixel
    painting and conversion dominate), see docs/benchmarks-extract.md.  Every fallback is
    logged with its reason, which also goes into ``ReadSpec.note`` (and the store's attrs).
    """
    if requested not in READER_CHOICES:
        raise ValueError(f"features.reader must be one of {READER_CHOICES}, got {requested!r}")
    coords = np.ascontiguousarray(coords, dtype=np.int64).reshape(-1, 2)
    base = ReadSpec("openslide", Path(slide_path), coords, geometry)
    if requested == "openslide":
        return base
    chain = {"auto": ["jpeg"], "nvjpeg": ["nvjpeg", "jpeg"]}.get(requested, [requested])
    reasons: list[str] = []
    slide = open_slide(slide_path)
    try:
        try:
            ds = _integral_downsample(slide, geometry.read_level, coords)
        except _Refused as exc:
            reasons.append(f"{'/'.join(chain)}: {exc}")
            chain = []
        jpeg: ReadSpec | None = None
        for name in chain:
            try:
                if name == "region":
                    spec = replace(base, reader="region", downsample=ds)
                elif name == "jpeg":
                    jpeg = jpeg or _jpeg_spec(slide, replace(base, downsample=ds))
                    spec = _with_scale(jpeg, allow_scaled)
                elif name == "nvjpeg":
                    jpeg = jpeg or _jpeg_spec(slide, replace(base, downsample=ds))
                    spec = _nvjpeg_spec(jpeg, device)
                else:
                    continue
            except _Refused as exc:
                reasons.append(f"{name}: {exc}")
                continue
            return _noted(spec, requested, reasons, slide_path)
    finally:
        slide.close()
    return _noted(base, requested, reasons, slide_path)


def _noted(spec: ReadSpec, requested: str, reasons: list[str], slide_path: Path) -> ReadSpec:
    if not reasons:
        return spec
    why = "; ".join(reasons)
    level = logging.INFO if requested == "auto" else logging.WARNING
    log.log(level, "%s: reader %s, falling back to %s: %s", slide_path, requested,
            spec.reader, why)  # fmt: skip
    note = f"{spec.note}; " if spec.note else ""
    return replace(spec, note=f"{note}fallback from {requested}: {why}")


def units(n_tiles: int, start: int, batch_size: int, unit_tiles: int) -> list[tuple[int, int]]:
    """[start, n_tiles) cut into units of ``unit_tiles`` (a multiple of ``batch_size``)."""
    unit = max(batch_size, math.ceil(unit_tiles / batch_size) * batch_size)
    return [(a, min(a + unit, n_tiles)) for a in range(start, n_tiles, unit)]


__all__ = [
    "READERS",
    "READER_CHOICES",
    "EncodedTiles",
    "ReadSpec",
    "TileReader",
    "make_reader",
    "plan_blocks",
    "plan_reader",
    "units",
]
