"""`wsirisk extract`: patch features of one or more slides with one loaded encoder.

    wsirisk extract --slide S.svs --tiles S.zarr --out F.zarr [--slide ... --tiles ... --out ...]
                    --options '{"encoder": "resnet50_trunc", "weights": "random", ...}'

``--options`` is the config's ``features`` section.  Per slide the result is a zarr v3 store
(``features`` float16 (N, D), ``coords`` int64 (N, 2), attrs: status, reason, slide_id,
patient_id, encoder, dim, weights, weights_sha256, transform, n_tiles, n_tiles_failed,
random_init, complete).  Work goes to a resumable hidden partial (wsirisk.features.partial)
and the final store appears atomically when every tile is done.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import sys
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wsirisk.features.dataset import TileDataset, TileGeometry, make_loader
from wsirisk.features.encoders import Encoder, build_encoder
from wsirisk.features.partial import PartialStore
from wsirisk.layout import ATTR_REASON, ATTR_STATUS, FEAT_COORDS, FEAT_FEATURES, SLIDE_COORDS
from wsirisk.slides.read import open_slide
from wsirisk.store import atomic_group, open_group

log = logging.getLogger("wsirisk.extract")

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
FINAL_CHUNK_ROWS = 4096


@dataclass(frozen=True)
class ExtractOptions:
    """The config's ``features`` section (unknown keys are an error)."""

    encoder: str = "resnet50_trunc"
    weights: str | None = "random"
    batch_size: int = 32
    num_workers: int = 2
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = (
        "auto"  # auto (CUDA: the encoder's autocast dtype; CPU: fp32) | fp32 | bf16 | fp16
    )
    chunk_tiles: int = 256  # tiles per resumable chunk
    weights_map: str | None = None
    seed: int = 0  # random init seed
    input_size_px: int | None = None  # override the encoder's input size
    threads: int | None = None  # torch threads of the main (model) process

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "features options") -> ExtractOptions:
        if not isinstance(data, dict):
            raise ValueError(f"{where}: expected a mapping, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {unknown}; known: {sorted(known)}")
        options = cls(**data)
        options.validate(where)
        return options

    def validate(self, where: str) -> None:
        for key in ("batch_size", "chunk_tiles"):
            value = getattr(self, key)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{where}: {key} must be a positive integer, got {value!r}")
        if not isinstance(self.num_workers, int) or self.num_workers < 0:
            raise ValueError(f"{where}: num_workers must be >= 0, got {self.num_workers!r}")
        if self.precision not in {"auto", *PRECISIONS}:
            raise ValueError(
                f"{where}: precision must be auto|fp32|bf16|fp16, got {self.precision!r}"
            )
        if not (self.device in {"auto", "cpu", "cuda"} or str(self.device).startswith("cuda:")):
            raise ValueError(f"{where}: device must be auto|cpu|cuda[:N], got {self.device!r}")


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda when available else cpu; asking for CUDA without one is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"features.device={name!r} but torch sees no CUDA device")
    return device


def autocast_dtype(encoder: Encoder, device: torch.device, precision: str) -> torch.dtype | None:
    """Compute dtype under autocast, or None for fp32 (the default on CPU)."""
    if precision == "auto":
        return getattr(torch, encoder.spec.cuda_amp_dtype) if device.type == "cuda" else None
    return PRECISIONS[precision]


@dataclass(frozen=True)
class TilesInput:
    """What extraction needs from a tiles store."""

    path: Path
    attrs: dict[str, Any]
    coords: np.ndarray  # int64 (N, 2) level-0 (x, y)

    @property
    def ok(self) -> bool:
        return self.attrs.get(ATTR_STATUS) == "ok" and len(self.coords) > 0

    def geometry(self, input_size_px: int) -> TileGeometry:
        return TileGeometry(
            int(self.attrs["read_level"]),
            int(self.attrs["read_size_px"]),
            int(self.attrs["tile_size_px"]),
            input_size_px,
        )

    def sha256(self) -> str:
        """Digest of the coordinates and read geometry (the partial's identity)."""
        digest = hashlib.sha256(np.ascontiguousarray(self.coords, dtype="<i8").tobytes())
        keys = ("slide_id", "read_level", "read_size_px", "tile_size_px")
        digest.update(json.dumps({k: self.attrs.get(k) for k in keys}, sort_keys=True).encode())
        return digest.hexdigest()


def read_tiles_store(path: Path) -> TilesInput:
    """Open a tiles store; errors name the file and the missing/bad key."""
    path = Path(path)
    group = open_group(path, mode="r")
    attrs = dict(group.attrs)
    if ATTR_STATUS not in attrs:
        raise ValueError(f"{path}: tiles store has no {ATTR_STATUS!r} attribute")
    if attrs[ATTR_STATUS] != "ok":
        return TilesInput(path, attrs, np.zeros((0, 2), np.int64))
    for key in ("read_level", "read_size_px", "tile_size_px"):
        if not isinstance(attrs.get(key), int) or attrs[key] < 0:
            raise ValueError(f"{path}: tiles store attribute {key!r} missing or not an int")
    if SLIDE_COORDS not in group:
        raise ValueError(f"{path}: tiles store has no {SLIDE_COORDS!r} array")
    coords = np.asarray(group[SLIDE_COORDS][...])
    if coords.ndim != 2 or coords.shape[1] != 2 or not np.issubdtype(coords.dtype, np.integer):
        raise ValueError(f"{path}: {SLIDE_COORDS!r} must be integer (N, 2), got {coords.shape}")
    return TilesInput(path, attrs, coords.astype(np.int64))


def _base_attrs(tiles: TilesInput, encoder: Encoder, geometry: TileGeometry | None) -> dict:
    transform = encoder.transform()
    if geometry is not None:
        transform = {**transform, "tile_size_px": geometry.tile_size_px, "resize": geometry.resize}
    return {
        ATTR_STATUS: tiles.attrs.get(ATTR_STATUS),
        ATTR_REASON: tiles.attrs.get(ATTR_REASON, ""),
        "slide_id": tiles.attrs.get("slide_id"),
        "patient_id": tiles.attrs.get("patient_id"),
        "tiles_store": str(tiles.path),
        "mpp": tiles.attrs.get("mpp"),  # level-0 um/px of the slide (coords are level-0 px)
        **encoder.attrs(),
        "transform": transform,
    }


def _write_final(
    out_path: Path, attrs: dict[str, Any], features_f16: np.ndarray, coords: np.ndarray
) -> None:
    rows = max(1, min(FINAL_CHUNK_ROWS, len(features_f16)))
    dim = features_f16.shape[1]
    with atomic_group(out_path, {**attrs, "complete": True}) as group:
        group.create_array(
            FEAT_FEATURES, shape=features_f16.shape, chunks=(rows, dim), dtype="float16"
        )
        group.create_array(FEAT_COORDS, shape=coords.shape, chunks=(rows, 2), dtype="int64")
        if len(features_f16):
            group[FEAT_FEATURES][...] = features_f16
            group[FEAT_COORDS][...] = coords


def _progress(total: int, initial: int, desc: str, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(
        total=total, initial=initial, desc=desc, unit="tile", mininterval=2.0, disable=not enabled
    )


class Extractor:
    """One loaded encoder applied to slides; features are identical whatever the batching."""

    def __init__(self, encoder: Encoder, options: ExtractOptions, progress: bool = True) -> None:
        self.options = options
        self.device = resolve_device(options.device)
        self.amp_dtype = autocast_dtype(encoder, self.device, options.precision)
        self.encoder = encoder.to(self.device)
        self.progress = progress
        self.last_timing: dict[str, float] = {}  # wait_s / total_s of the last slide's loop

    def run_attrs(self) -> dict[str, Any]:
        return {
            "device": self.device.type,
            "precision": "fp32" if self.amp_dtype is None else str(self.amp_dtype).split(".")[-1],
        }

    def embed(self, tiles_uint8_nhwc: torch.Tensor) -> torch.Tensor:
        """(B, H, W, 3) uint8 (any device) -> (B, D) float32 on the model's device."""
        x = tiles_uint8_nhwc.to(self.device, non_blocking=True)
        context = (
            torch.autocast(self.device.type, dtype=self.amp_dtype)
            if self.amp_dtype is not None
            else contextlib.nullcontext()
        )
        with torch.inference_mode(), context:
            return self.encoder(x)

    def extract_slide(self, slide_path: Path, tiles_path: Path, out_path: Path) -> dict[str, Any]:
        """Features of one slide into ``out_path``; resumes a matching partial.  Returns attrs."""
        tiles = read_tiles_store(tiles_path)
        enc = self.encoder
        if not tiles.ok:
            attrs = _base_attrs(tiles, enc, None)
            if attrs[ATTR_STATUS] == "ok":
                attrs[ATTR_REASON] = "no tiles"
            attrs.update(n_tiles=0, n_tiles_failed=0, n_tiles_input=0, **self.run_attrs())
            empty = np.zeros((0, enc.dim), np.float16)
            _write_final(out_path, attrs, empty, np.zeros((0, 2), np.int64))
            log.info(
                "%s: %s (%s); empty features store",
                out_path,
                attrs[ATTR_STATUS],
                attrs[ATTR_REASON],
            )
            return attrs
        open_slide(slide_path).close()  # fail early, naming the file
        geometry = tiles.geometry(enc.input_size_px)
        attrs = _base_attrs(tiles, enc, geometry)
        n_tiles = len(tiles.coords)
        identity = {
            "tiles_sha256": tiles.sha256(),
            "slide_file": [Path(slide_path).name, Path(slide_path).stat().st_size],
            **{k: attrs[k] for k in ("encoder", "weights_sha256", "params_sha256", "transform")},
            **self.run_attrs(),
        }
        partial = PartialStore.open_or_create(
            out_path, identity, n_tiles, enc.dim, self.options.chunk_tiles
        )
        if partial.n_done:
            log.info("resuming %s at tile %d/%d", out_path, partial.n_done, n_tiles)
        self._fill(partial, TileDataset(slide_path, tiles.coords, geometry, partial.n_done), attrs)
        features, ok = partial.read_all()
        n_failed = int((~ok).sum())
        attrs.update(
            n_tiles=int(ok.sum()),
            n_tiles_failed=n_failed,
            n_tiles_input=n_tiles,
            **self.run_attrs(),
        )
        if n_failed == n_tiles:
            attrs.update(
                {ATTR_STATUS: "failed", ATTR_REASON: f"all {n_tiles} tiles failed to decode"}
            )
        elif n_failed:
            attrs[ATTR_REASON] = f"{n_failed} of {n_tiles} tiles failed to decode (skipped)"
        _write_final(out_path, attrs, features[ok], tiles.coords[ok])
        partial.remove()
        return attrs

    def _fill(self, partial: PartialStore, dataset: TileDataset, attrs: dict[str, Any]) -> None:
        """Run the encoder over the remaining tiles, writing whole chunks as they complete."""
        if len(dataset) == 0:
            return
        loader = make_loader(
            dataset,
            self.options.batch_size,
            self.options.num_workers,
            pin_memory=self.device.type == "cuda",
        )
        buffer = _ChunkBuffer(partial)
        bar = _progress(partial.n_tiles, partial.n_done, str(attrs.get("slide_id")), self.progress)
        timing = {"wait_s": 0.0, "total_s": 0.0}
        started = time.perf_counter()
        with bar:
            for indices, tiles_uint8, ok in _timed(loader, timing):
                features = self.embed(tiles_uint8)
                if features.shape[1] != partial.features.shape[1]:
                    raise RuntimeError(
                        f"encoder {attrs['encoder']} gave {features.shape[1]}-d features, "
                        f"expected {partial.features.shape[1]}"
                    )
                buffer.add(int(indices[0]), features.to(torch.float16).cpu().numpy(), ok.numpy())
                bar.update(len(indices))
        timing["total_s"] = time.perf_counter() - started
        self.last_timing = timing
        log.info(
            "%s: %d tiles in %.1f s (%.1f tiles/s, %.0f%% of it waiting for tiles)",
            attrs.get("slide_id"),
            len(dataset),
            timing["total_s"],
            len(dataset) / max(timing["total_s"], 1e-9),
            100 * timing["wait_s"] / max(timing["total_s"], 1e-9),
        )


def _timed(loader: Any, timing: dict[str, float]) -> Any:
    """Yield the loader's batches, adding the time spent waiting for each to timing["wait_s"]."""
    iterator = iter(loader)
    while True:
        start = time.perf_counter()
        try:
            batch = next(iterator)
        except StopIteration:
            return
        finally:
            timing["wait_s"] += time.perf_counter() - start
        yield batch


class _ChunkBuffer:
    """Per-batch results in tile order; each chunk goes to the partial once it is whole."""

    def __init__(self, partial: PartialStore) -> None:
        self.partial = partial
        self.next_tile = partial.n_done  # first tile not yet written
        self.features: list[np.ndarray] = []
        self.ok: list[np.ndarray] = []
        self.n_held = 0

    def add(self, first_tile: int, features_f16: np.ndarray, ok: np.ndarray) -> None:
        if first_tile != self.next_tile + self.n_held:
            raise RuntimeError(f"tile order broken: got tile {first_tile}")
        self.features.append(features_f16)
        self.ok.append(ok)
        self.n_held += len(features_f16)
        size = min(self.partial.chunk_tiles, self.partial.n_tiles - self.next_tile)
        while 0 < size <= self.n_held:
            features, flags = np.concatenate(self.features), np.concatenate(self.ok)
            self.partial.write_chunk(self.next_tile, features[:size], flags[:size])
            self.features, self.ok = [features[size:]], [flags[size:]]
            self.next_tile += size
            self.n_held -= size
            size = min(self.partial.chunk_tiles, self.partial.n_tiles - self.next_tile)


def build_parser(parser: argparse.ArgumentParser) -> None:
    """Options of ``wsirisk extract``."""
    parser.add_argument("--slide", action="append", required=True, type=Path, help="slide file")
    parser.add_argument("--tiles", action="append", required=True, type=Path, help="tiles store")
    parser.add_argument("--out", action="append", required=True, type=Path, help="features store")
    parser.add_argument(
        "--options", required=True, help="the config's `features` section as a JSON object"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads (model)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def load_extractor(options: ExtractOptions, progress: bool = True) -> Extractor:
    """Build the configured encoder (warning when its weights are random) and its Extractor."""
    encoder = build_encoder(
        options.encoder,
        options.weights,
        weights_map=options.weights_map,
        seed=options.seed,
        input_size_px=options.input_size_px,
    )
    if encoder.weights.random_init:
        log.warning("encoder %s uses RANDOM weights (features.weights: random)", encoder.name)
    return Extractor(encoder, options, progress=progress)


def parse_options(text: str) -> ExtractOptions:
    """``--options`` JSON -> ExtractOptions, with errors naming --options."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--options: not valid JSON ({exc})") from exc
    return ExtractOptions.from_dict(data, where="--options")


def run(args: argparse.Namespace) -> int:
    """Load the encoder once, then extract every (slide, tiles, out) triple in order."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not len(args.slide) == len(args.tiles) == len(args.out):
        print(
            f"wsirisk extract: --slide/--tiles/--out must repeat the same number of times "
            f"(got {len(args.slide)}/{len(args.tiles)}/{len(args.out)})",
            file=sys.stderr,
        )
        return 2
    options = parse_options(args.options)
    threads = args.threads if args.threads is not None else options.threads
    if threads:
        torch.set_num_threads(int(threads))
    extractor = load_extractor(options, progress=not args.no_progress)
    for slide, tiles, out in zip(args.slide, args.tiles, args.out, strict=True):
        attrs = extractor.extract_slide(slide, tiles, out)
        log.info(
            "%s: %s, %d tiles (%d failed) -> %s",
            attrs.get("slide_id"),
            attrs[ATTR_STATUS],
            attrs["n_tiles"],
            attrs["n_tiles_failed"],
            out,
        )
    return 0


__all__ = [
    "ExtractOptions",
    "Extractor",
    "build_parser",
    "load_extractor",
    "parse_options",
    "read_tiles_store",
    "run",
]
