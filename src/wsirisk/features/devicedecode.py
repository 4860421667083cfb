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

from wsirisk.features.readers import (
    EncodedTiles,
    JpegReader,
    ReadSpec,
    _StoredTiles,
    decode_tile,
)

GATHER_TILES = 64  # output tiles gathered per indexing call (bounds the index tensors)


def area_weights(in_px: int, out_px: int) -> np.ndarray:
    """(out, in) float64 INTER_AREA weights: overlap of [i*s, (i+1)*s) with pixel j, over s."""
    scale = in_px / out_px
    weights = np.zeros((out_px, in_px), np.float64)
    for i in range(out_px):
        lo, hi = i * scale, (i + 1) * scale
        for j in range(int(np.floor(lo)), min(in_px, int(np.ceil(hi)))):
            weights[i, j] = (min(hi, j + 1) - max(lo, j)) / scale
    return weights


def _round_uint8(x: torch.Tensor) -> torch.Tensor:
    return torch.floor(x + 0.5).clamp_(0, 255).to(torch.uint8)


class DeviceResize:
    """uint8 (B, S, S, 3) -> uint8 (B, T, T, 3) with OpenCV's INTER_AREA / INTER_LINEAR."""

    def __init__(self, in_px: int, out_px: int, device: torch.device) -> None:
        self.in_px, self.out_px = in_px, out_px
        self.weights = None
        if out_px < in_px:
            w = torch.as_tensor(area_weights(in_px, out_px), dtype=torch.float32, device=device)
            self.weights = w

    def __call__(self, tiles: torch.Tensor) -> torch.Tensor:
        if self.in_px == self.out_px:
            return tiles
        x = tiles.permute(0, 3, 1, 2).float()  # B, 3, S, S
        if self.weights is not None:
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
    """Main-process half of the nvjpeg reader for one slide."""

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
        streams = [torch.as_tensor(s) for s in payload.streams]
        decoded = decode_streams(streams, self.device)
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
        white = torch.full(
            (level.tile_h, level.tile_w, 3), 255, dtype=torch.uint8, device=self.device
        )
        slot = {n: k for k, n in enumerate(good)}
        stack = torch.stack([*good.values(), white]) if good else white[None]
        lut = torch.full((level.tiles_down * level.tiles_across,), len(good), dtype=torch.int64)
        if slot:
            lut[torch.as_tensor(list(slot))] = torch.as_tensor(list(slot.values()))
        lut = lut.to(self.device)
        regions = []
        for a in range(0, len(xy), GATHER_TILES):
            regions.append(self._gather(stack, lut, xy[a : a + GATHER_TILES], len(good)))
        tiles = self.to_input(self.to_tile(torch.cat(regions)))
        tiles[~tile_ok.to(self.device)] = 0
        return tiles, tile_ok

    def _gather(
        self, stack: torch.Tensor, lut: torch.Tensor, xy: torch.Tensor, white: int
    ) -> torch.Tensor:
        """Regions (b, R, R, 3) cut from the stacked stored tiles (white outside the image)."""
        level, size = self.level, self.spec.geometry.read_size_px
        steps = torch.arange(size, device=self.device)
        xy = xy.to(self.device)
        cols = xy[:, 0:1] + steps  # b, R
        rows = xy[:, 1:2] + steps
        inside = (rows < level.height_px)[:, :, None] & (cols < level.width_px)[:, None, :]
        tr = (rows // level.tile_h).clamp_(max=level.tiles_down - 1)
        tc = (cols // level.tile_w).clamp_(max=level.tiles_across - 1)
        slot = lut[tr[:, :, None] * level.tiles_across + tc[:, None, :]]  # b, R, R
        slot = torch.where(inside, slot, torch.full_like(slot, white))
        py = (rows % level.tile_h)[:, :, None].expand_as(slot)
        px = (cols % level.tile_w)[:, None, :].expand_as(slot)
        return stack[slot, py, px]

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
