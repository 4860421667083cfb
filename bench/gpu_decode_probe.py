"""Where the nvjpeg reader's main-process time goes, and which JPEG streams nvJPEG decodes fast.

    python bench/gpu_decode_probe.py [--device cuda] [--slide CMU-1-Small-Region.svs ...]

On a synthetic 40x slide (YCbCr 4:2:0 stored tiles, as ``bench/extract.py`` writes them) and on
any real slides named (read at level 0, 256 px): one batch's compressed stored tiles (as an nvjpeg worker sends them) are
decoded with ``torchvision.io.decode_jpeg(..., device=...)`` and, for comparison, with
libjpeg-turbo in this thread; ``DeviceDecoder.decode`` is timed whole and by part; and the same
decode is run from 1, 2 and 4 threads at once (torchvision serialises its nvJPEG calls).  Ends with
one JSON line.  A diagnostic for docs/benchmarks-gpu.md, not a target.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from extract import _slide  # noqa: E402

from wsirisk.features.dataset import TileGeometry  # noqa: E402
from wsirisk.features.devicedecode import DeviceDecoder, decode_streams  # noqa: E402
from wsirisk.features.extract import read_tiles_store  # noqa: E402
from wsirisk.features.readers import (  # noqa: E402
    NvjpegReader,
    decode_tile,
    plan_reader,
)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _median_s(fn, repeats: int, device: torch.device) -> float:
    fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _sampling(stream: bytes) -> list[str]:
    """Per-component HxV sampling factors from the stream's SOF segment (walking the markers)."""
    i = 2
    while i + 4 <= len(stream) and stream[i] == 0xFF:
        marker, length = stream[i + 1], int.from_bytes(stream[i + 2 : i + 4], "big")
        if marker in (0xC0, 0xC1, 0xC2):
            seg = stream[i + 4 : i + 2 + length]
            return [f"{seg[7 + 3 * k] >> 4}x{seg[7 + 3 * k] & 15}" for k in range(seg[5])]
        i += 2 + length
    return []


def _nvjpeg(slide: Path, coords: np.ndarray, geometry: TileGeometry, device: torch.device):
    """The slide's nvjpeg spec (on the CPU: the jpeg spec relabelled, to test this script)."""
    if device.type == "cuda":
        return plan_reader(slide, coords, geometry, "nvjpeg", device=device)
    spec = plan_reader(slide, coords, geometry, "jpeg", allow_scaled=False)
    return replace(spec, reader="nvjpeg", scale=1) if spec.reader == "jpeg" else spec


def _probe_spec(spec, name: str, n_tiles: int, device: torch.device, repeats: int) -> dict:
    """Rates for one slide's nvjpeg spec (first ``n_tiles`` tiles as one batch)."""
    indices = np.arange(min(n_tiles, len(spec.coords)), dtype=np.int64)
    worker = NvjpegReader(spec)
    payload, _ = worker.read(indices)
    worker.close()
    level = spec.level
    streams = [torch.as_tensor(s) for s in payload.streams]
    n_streams = len(streams)
    px = level.tile_w * level.tile_h
    out: dict = {"slide": name, "tiles": len(indices), "stored_tiles": n_streams,
                 "stored_px": [level.tile_w, level.tile_h], "transform": level.transform}  # fmt: skip
    out["sampling"] = _sampling(bytes(payload.streams[0].tobytes()))
    t = _median_s(lambda: decode_streams(streams, device), repeats, device)
    out["device_decode_jpegs_per_s"] = round(n_streams / t, 1)
    out["device_decode_mpx_per_s"] = round(n_streams * px / t / 1e6, 1)
    cpu = [bytes(s.tobytes()) for s in payload.streams]
    t = _median_s(lambda: [decode_tile(s, level, 1) for s in cpu], max(1, repeats // 2),
                  torch.device("cpu"))  # fmt: skip
    out["libjpeg_one_thread_jpegs_per_s"] = round(n_streams / t, 1)
    decoder = DeviceDecoder(spec, device)
    tind = torch.from_numpy(indices)
    t_all = _median_s(lambda: decoder.decode(tind, payload), repeats, device)
    out["decoder_tiles_per_s"] = round(len(indices) / t_all, 1)
    out["decoder_share_in_decode_streams"] = round(
        (n_streams / out["device_decode_jpegs_per_s"]) / t_all, 3
    )
    for threads in (2, 4):
        with ThreadPoolExecutor(threads) as pool:

            def run(pool=pool, threads=threads) -> None:
                futures = [pool.submit(decoder.decode, tind, payload) for _ in range(threads)]
                for f in futures:
                    f.result()

            t = _median_s(run, repeats, device)
        out[f"decoder_tiles_per_s_{threads}_threads"] = round(threads * len(indices) / t, 1)
    out["mean_abs_diff_vs_cpu_jpeg"] = round(decoder.check_against_cpu(16), 4)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tiles", type=int, default=256, help="tiles per probed batch")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--slide", action="append", default=[], help="real slides (20x reads)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    results = []
    with tempfile.TemporaryDirectory(prefix="wsirisk-probe-") as tmp:
        root = Path(tmp)
        for case in ("40x", "20x"):
            slide, tiles = _slide(root, f"syn{case}", case, 4096, seed=3)
            t = read_tiles_store(tiles)
            spec = _nvjpeg(slide, t.coords, t.geometry(224), device)
            print(f"synthetic {case}: {spec.describe()}", flush=True)
            if spec.reader == "nvjpeg":
                results.append(_probe_spec(spec, f"synthetic {case}", args.tiles, device,
                                           args.repeats))  # fmt: skip
                print(json.dumps(results[-1]), flush=True)
        for path in args.slide:
            import openslide

            slide = openslide.OpenSlide(path)
            w, h = slide.dimensions
            slide.close()
            xs, ys = np.arange(0, w - 256, 256), np.arange(0, h - 256, 256)
            coords = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2)
            spec = _nvjpeg(Path(path), coords, TileGeometry(0, 256, 256, 224), device)
            print(f"{Path(path).name}: {spec.describe()} {spec.note or ''}", flush=True)
            if spec.reader == "nvjpeg":
                results.append(_probe_spec(spec, Path(path).name, args.tiles, device,
                                           args.repeats))  # fmt: skip
                print(json.dumps(results[-1]), flush=True)
    print(json.dumps({"device": device.type, "probes": results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
