"""Decode, assemble and resize tiles on the encoder's device (nvJPEG on CUDA).

The ``nvjpeg`` reader's workers send each batch's compressed stored tiles
(:class:`wsirisk.features.readers.EncodedTiles`); here they are decoded in one batched call
(``torchvision.io.decode_jpeg(..., device=...)``), gathered into the read-size regions with one
indexing operation, and resized with the same weights as the CPU path: INTER_AREA as two
matrix products (each output pixel the area-weighted mean of the input pixels it covers, as
OpenCV defines it), INTER_LINEAR as half-pixel bilinear.  Values are rounded to uint8 after
each resize, as on the CPU.  The same code runs on the CPU (tests compare it with the CPU
readers); on CUDA the CPU only reads bytes.

A batch whose decode fails is decoded stream by stream; a stream the device decoder rejects is
decoded by the CPU path (libjpeg-turbo, OpenSlide's rules), and only if that fails too are the
output tiles overlapping it returned as zeros with ``ok=False`` (as every reader does).  The
device decoder accepts some streams libjpeg only warns about (corrupt data that OpenSlide
counts as a failure); those decode to whatever nvJPEG makes of them.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.nn.functional as F

from wsirisk.features.jpegtiff import JpegLevel
from wsirisk.features.readers import (
    EncodedTiles,
    JpegReader,
    ReadSpec,
    _StoredTiles,
    decode_tile,
)

CANVAS_MAX_PX = 96 * 2**20  # pixels of one assembly canvas (a batch is cut into groups)


def area_weights(in_px: int, out_px: int) -> np.ndarray:
    """(out, in) float64 INTER_AREA weights: overlap of [i*s, (i+1)*s) with pixel j, over s."""
    scale = in_px / out_px
    weights = np.zeros((out_px, in_px), np.float64)
    for i in range(out_px):
        lo, hi = i * scale, (i + 1) * scale
        for j in range(int(np.floor(lo)), min(in_px, int(np.ceil(hi)))):
            weights[i, j] = (min(hi, j + 1) - max(lo, j)) / scale
    return weights


def _groups(xy: torch.Tensor, size: int, level: JpegLevel) -> list[tuple[int, int]]:
    """Consecutive runs of regions whose stored-tile bounding box fits one canvas."""
    out, start = [], 0
    lo = hi = None
    tw, th = level.tile_w, level.tile_h
    for k, (x, y) in enumerate(xy.tolist()):
        box = (x // tw, y // th, -(-(x + size) // tw), -(-(y + size) // th))
        if lo is None:
            lo, hi = box[:2], box[2:]
            continue
        nlo = (min(lo[0], box[0]), min(lo[1], box[1]))
        nhi = (max(hi[0], box[2]), max(hi[1], box[3]))
        if (nhi[0] - nlo[0]) * tw * (nhi[1] - nlo[1]) * th > CANVAS_MAX_PX:
            out.append((start, k))
            start, lo, hi = k, box[:2], box[2:]
        else:
            lo, hi = nlo, nhi
    if len(xy):
        out.append((start, len(xy)))
    return out


def _round_uint8(x: torch.Tensor) -> torch.Tensor:
    return torch.floor(x + 0.5).clamp_(0, 255).to(torch.uint8)


class DeviceResize:
    """uint8 (B, S, S, 3) -> uint8 (B, T, T, 3) with OpenCV's INTER_AREA / INTER_LINEAR."""

    def __init__(self, in_px: int, out_px: int, device: torch.device) -> None:
        self.in_px, self.out_px = in_px, out_px
        self.pool = in_px // out_px if out_px < in_px and in_px % out_px == 0 else 0
        self.weights = None  # INTER_AREA at a non-integer ratio: two matrix products
        if out_px < in_px and not self.pool:
            w = torch.as_tensor(area_weights(in_px, out_px), dtype=torch.float32, device=device)
            self.weights = w

    def __call__(self, tiles: torch.Tensor) -> torch.Tensor:
        if self.in_px == self.out_px:
            return tiles
        x = tiles.permute(0, 3, 1, 2).float()  # B, 3, S, S
        if self.pool:
            x = F.avg_pool2d(x, self.pool)  # INTER_AREA at an integer ratio: k x k means
        elif self.weights is not None:
            x = torch.matmul(torch.matmul(self.weights, x), self.weights.T)
        else:
            size = (self.out_px, self.out_px)
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        return _round_uint8(x).permute(0, 2, 3, 1).contiguous()


def decode_streams(streams: list[torch.Tensor], device: torch.device) -> list[torch.Tensor | None]:
    """Batched JPEG decode to (H, W, 3) uint8 on ``device``; None for a stream that fails."""
    from torchvision.io import ImageReadMode, decode_jpeg

    def run(batch: list[torch.Tensor]) -> list[torch.Tensor]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torchvision's decoder deprecation notice
            out = decode_jpeg(batch, mode=ImageReadMode.RGB, device=device)
        return [t.permute(1, 2, 0) for t in out]

    if not streams:
        return []
    try:
        return list(run(streams))
    except RuntimeError:
        out: list[torch.Tensor | None] = []
        for stream in streams:
            try:
                out.append(run([stream])[0])
            except RuntimeError:
                out.append(None)
        return out


class DeviceDecoder:
    """Main-process half of the nvjpeg reader for one slide.

    Thread-safe: :func:`decode` keeps no state between calls, so several batches may be decoded
    at once (the extractor decodes ahead of the model on side threads).
    """

    def __init__(self, spec: ReadSpec, device: torch.device | str) -> None:
        if spec.level is None:
            raise ValueError("device decode needs a JPEG level")
        self.spec, self.level = spec, spec.level
        self.device = torch.device(device)
        self.grid = _StoredTiles(spec.level, 1)
        g = spec.geometry
        self.to_tile = DeviceResize(g.read_size_px, g.tile_size_px, self.device)
        self.to_input = DeviceResize(g.tile_size_px, g.input_size_px, self.device)
        self.level_xy = torch.as_tensor(spec.coords // spec.downsample, dtype=torch.int64)

    def decode(
        self, indices: torch.Tensor, payload: EncodedTiles, ok: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(encoder-input uint8 (B, S, S, 3) on the device, ok bool (B,))."""
        level, size = self.level, self.spec.geometry.read_size_px
        decoded = decode_streams([torch.as_tensor(s) for s in payload.streams], self.device)
        for k, tile in enumerate(decoded):
            if tile is None and payload.readable[k]:  # the CPU decoder has the last word
                try:
                    rgb = decode_tile(np.asarray(payload.streams[k]).tobytes(), level, 1)
                    decoded[k] = torch.from_numpy(rgb).to(self.device)
                except ValueError:
                    pass
        numbers = np.asarray(payload.numbers).tolist()
        good = {n: t for n, t, r in zip(numbers, decoded, payload.readable, strict=True)
                if t is not None and bool(r) and tuple(t.shape) == (level.tile_h, level.tile_w, 3)}  # fmt: skip
        xy = self.level_xy[indices.cpu()]
        tile_ok = torch.tensor(
            [all(n in good for n in self.grid.tile_numbers(int(x), int(y), size))
             for x, y in xy.tolist()], dtype=torch.bool,
        )  # fmt: skip
        regions = torch.cat([self._cut(good, xy[a:b]) for a, b in _groups(xy, size, level)])
        tiles = self.to_input(self.to_tile(regions))
        tiles[~tile_ok.to(self.device)] = 0
        return tiles, tile_ok

    def _cut(self, good: dict[int, torch.Tensor], xy: torch.Tensor) -> torch.Tensor:
        """Regions (b, R, R, 3) cut from one canvas of the stored tiles they cover.

        The canvas is white where a stored tile is missing or failed (those output tiles are
        marked not ok) and outside the image, as OpenSlide paints it.
        """
        level, size = self.level, self.spec.geometry.read_size_px
        tw, th, across = level.tile_w, level.tile_h, level.tiles_across
        c0, r0 = int(xy[:, 0].min()) // tw, int(xy[:, 1].min()) // th
        c1 = -(-(int(xy[:, 0].max()) + size) // tw)
        r1 = -(-(int(xy[:, 1].max()) + size) // th)
        canvas = torch.full((r1 - r0, th, c1 - c0, tw, 3), 255, dtype=torch.uint8,
                            device=self.device)  # fmt: skip
        inside = [(n, t) for n, t in good.items()
                  if r0 <= n // across < r1 and c0 <= n % across < c1]  # fmt: skip
        if inside:
            rows = torch.tensor([n // across - r0 for n, _ in inside], device=self.device)
            cols = torch.tensor([n % across - c0 for n, _ in inside], device=self.device)
            canvas[rows, :, cols] = torch.stack([t for _, t in inside])
        canvas = canvas.view((r1 - r0) * th, (c1 - c0) * tw, 3)
        x_end, y_end = level.width_px - c0 * tw, level.height_px - r0 * th
        if x_end < canvas.shape[1]:
            canvas[:, max(0, x_end) :] = 255
        if y_end < canvas.shape[0]:
            canvas[max(0, y_end) :] = 255
        x0, y0 = c0 * tw, r0 * th
        return torch.stack([canvas[y - y0 : y - y0 + size, x - x0 : x - x0 + size]
                            for x, y in xy.tolist()])  # fmt: skip

    def check_against_cpu(self, n_tiles: int = 4) -> float:
        """Mean |difference| between this path and the CPU jpeg reader on the first tiles."""
        from dataclasses import replace

        from wsirisk.features.readers import NvjpegReader

        indices = np.arange(min(n_tiles, len(self.spec.coords)), dtype=np.int64)
        worker = NvjpegReader(self.spec)
        cpu = JpegReader(replace(self.spec, reader="jpeg", scale=1))
        try:
            payload, _ = worker.read(indices)
            ours, ok = self.decode(torch.from_numpy(indices), payload)
            theirs, ok_cpu = cpu.read(indices)
        finally:
            worker.close()
            cpu.close()
        if not np.array_equal(ok.numpy(), ok_cpu):
            return float("inf")
        both = ok.numpy()
        if not both.any():
            return 0.0
        diff = ours.cpu().numpy()[both].astype(np.int16) - theirs[both]
        return float(np.abs(diff).mean())


__all__ = ["DeviceDecoder", "DeviceResize", "area_weights", "decode_streams"]
