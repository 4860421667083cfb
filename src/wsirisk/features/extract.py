"""`wsirisk extract`: patch features of one or more slides with one loaded encoder.

    wsirisk extract --slide S.svs --tiles S.zarr --out F.zarr [--slide ... --tiles ... --out ...]
                    --options '{"encoder": "resnet50_trunc", "weights": "random", ...}'
                    [--manifest batch.tsv]

``--options`` is the config's ``features`` section.  Per slide the result is a zarr v3 store
(``features`` float16 (N, D), ``coords`` int64 (N, 2), attrs: status, reason, slide_id,
patient_id, encoder, dim, weights, weights_sha256, transform, n_tiles, n_tiles_failed,
random_init, reader, reader_note, identity, complete).  Work goes to a resumable hidden partial
(wsirisk.features.partial) and the final store appears atomically when every tile is done.

Several slides in one call share the encoder and one stream of tile batches
(wsirisk.features.stream): the next slide's tiles are read while the current one finishes, and
each slide's store is still written and resumed on its own.  A slide whose store is already
complete with the same identity (tiles, slide file, encoder, weights, transform, device,
precision, reader) is skipped.  ``--manifest`` writes one TSV row per slide at the end
(:data:`MANIFEST_COLUMNS`); a slide that raised is a row with status ``error`` (its partial kept
for a later resume) and the others finish; the command then exits 0 with a manifest (the cohort
goes on without that slide; delete the manifest to retry it) and 1 without one.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import sys
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wsirisk.features.dataset import TileGeometry
from wsirisk.features.encoders import Encoder, build_encoder
from wsirisk.features.partial import PartialStore
from wsirisk.features.readers import READER_CHOICES, ReadSpec, plan_reader
from wsirisk.features.stream import SlideWork, make_stream_loader
from wsirisk.layout import ATTR_REASON, ATTR_STATUS, FEAT_COORDS, FEAT_FEATURES, SLIDE_COORDS
from wsirisk.slides.read import open_slide
from wsirisk.store import atomic_group, open_group, write_text

log = logging.getLogger("wsirisk.extract")

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
# nvjpeg batches decoded ahead of the model, each on a side thread (and CUDA stream) of its own:
# the decode of the next batches overlaps the model and each other's host-side work
# (measured on an H100: 1 -> 2 threads, 1.4x the decoder's rate; docs/benchmarks-gpu.md)
DECODE_AHEAD = 2
FINAL_CHUNK_ROWS = 4096
IN_FLIGHT = 2  # batches whose features are still on their way back when the next one starts
# Where the tile -> encoder-input resize runs. On CUDA the loader workers stop at the tile size
# and the GPU resizes (the same INTER_AREA / INTER_LINEAR weights, rounded to uint8): OpenCV's
# INTER_AREA at 256 -> 224 costs about as much CPU as decoding the tile (docs/benchmarks-gpu.md)
RESIZE_ON = ("auto", "loader", "device")


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
    reader: str = "auto"  # auto | openslide | region | jpeg | nvjpeg (wsirisk.features.readers)
    resize_on: str = "auto"  # tile -> encoder-input resize: auto (device on CUDA) | loader | device
    slides_per_job: int = 16  # slides per extraction job (the workflow's batches; unused here)

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
        for key in ("batch_size", "chunk_tiles", "slides_per_job"):
            value = getattr(self, key)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{where}: {key} must be a positive integer, got {value!r}")
        if not isinstance(self.num_workers, int) or self.num_workers < 0:
            raise ValueError(f"{where}: num_workers must be >= 0, got {self.num_workers!r}")
        if self.precision not in {"auto", *PRECISIONS}:
            raise ValueError(
                f"{where}: precision must be auto|fp32|bf16|fp16, got {self.precision!r}"
            )
        if self.reader not in READER_CHOICES:
            raise ValueError(f"{where}: reader must be one of {'|'.join(READER_CHOICES)}, "
                             f"got {self.reader!r}")  # fmt: skip
        if self.resize_on not in RESIZE_ON:
            raise ValueError(f"{where}: resize_on must be one of {'|'.join(RESIZE_ON)}, "
                             f"got {self.resize_on!r}")  # fmt: skip
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


@dataclass(frozen=True)
class SlideJob:
    """One ``--slide/--tiles/--out`` triple."""

    slide: Path
    tiles: Path
    out: Path


@dataclass
class SlideOutcome:
    """What happened to one slide of a job (one manifest row)."""

    job: SlideJob
    action: str  # extracted | resumed | done (already complete) | empty | error
    attrs: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    seconds: float = 0.0
    timing: dict[str, float] = field(default_factory=dict)  # first/last batch (perf_counter)

    def row(self) -> dict[str, Any]:
        a = self.attrs
        return {
            "slide_id": a.get("slide_id", ""),
            "patient_id": a.get("patient_id", ""),
            "store": str(self.job.out),
            "status": "error" if self.error else a.get(ATTR_STATUS, ""),
            "reason": self.error or a.get(ATTR_REASON, ""),
            "n_tiles": a.get("n_tiles", ""),
            "n_tiles_failed": a.get("n_tiles_failed", ""),
            "reader": a.get("reader", ""),
            "seconds": f"{self.seconds:.2f}",
            "action": self.action,
        }


MANIFEST_COLUMNS = (
    "slide_id", "patient_id", "store", "status", "reason", "n_tiles", "n_tiles_failed",
    "reader", "seconds", "action",
)  # fmt: skip


def write_manifest(path: Path, outcomes: list[SlideOutcome]) -> None:
    """One TSV row per slide (atomic); tabs/newlines inside a value become spaces."""

    def clean(value: Any) -> str:
        return " ".join(str(value).split())

    lines = ["\t".join(MANIFEST_COLUMNS)]
    lines += ["\t".join(clean(o.row()[c]) for c in MANIFEST_COLUMNS) for o in outcomes]
    write_text(Path(path), "\n".join(lines) + "\n")


@dataclass
class _Active:
    """A slide being extracted: its partial store, reorder buffer and reader."""

    key: int
    job: SlideJob
    tiles: TilesInput
    attrs: dict[str, Any]
    spec: ReadSpec
    partial: PartialStore
    buffer: _ChunkBuffer
    resumed: bool
    started: float
    decoder: Any = None  # DeviceDecoder of an nvjpeg slide
    resize: Any = None  # DeviceResize (tile -> encoder input) when it runs on the device
    error: str = ""
    first_batch: float | None = None
    last_batch: float | None = None


class Extractor:
    """One loaded encoder applied to slides; features are identical whatever the batching."""

    def __init__(self, encoder: Encoder, options: ExtractOptions, progress: bool = True) -> None:
        self.options = options
        self.device = resolve_device(options.device)
        self.amp_dtype = autocast_dtype(encoder, self.device, options.precision)
        self.encoder = encoder.to(self.device)
        self.progress = progress
        self.last_timing: dict[str, float] = {}  # wait_s / total_s of the last stream's loop
        self.allow_scaled = True  # DCT-domain scaled decode where it applies (benchmarks flip it)
        self._copy_stream: Any = None  # CUDA: host -> device copies (see _upload)

    def run_attrs(self) -> dict[str, Any]:
        return {
            "device": self.device.type,
            "precision": "fp32" if self.amp_dtype is None else str(self.amp_dtype).split(".")[-1],
        }

    def _resize_on_device(self) -> bool:
        """Whether the tile -> encoder-input resize runs on the model's device (``resize_on``)."""
        where = self.options.resize_on
        return where == "device" or (where == "auto" and self.device.type == "cuda")

    def embed(self, tiles_uint8_nhwc: torch.Tensor, resize: Any = None) -> torch.Tensor:
        """(B, H, W, 3) uint8 (any device) -> (B, D) float32 on the model's device.

        ``resize`` (a :class:`~wsirisk.features.devicedecode.DeviceResize`) first brings tiles
        to the encoder's input size on the device.
        """
        x = self._upload(tiles_uint8_nhwc)
        context = (
            torch.autocast(self.device.type, dtype=self.amp_dtype)
            if self.amp_dtype is not None
            else contextlib.nullcontext()
        )
        with torch.inference_mode():
            if resize is not None:
                x = resize(x)
            with context:
                return self.encoder(x)

    def _upload(self, tiles: torch.Tensor) -> torch.Tensor:
        """Host tiles to the device; on CUDA on a copy stream, so that the next batch's copy
        overlaps this batch's model (the compute stream waits for it)."""
        if self.device.type != "cuda" or tiles.device.type != "cpu":
            return tiles.to(self.device)
        if self._copy_stream is None:
            self._copy_stream = torch.cuda.Stream(self.device)
        compute = torch.cuda.current_stream(self.device)
        with torch.cuda.stream(self._copy_stream):
            x = tiles.to(self.device, non_blocking=True)
        compute.wait_stream(self._copy_stream)
        x.record_stream(compute)  # the allocator keeps x until the compute stream is done
        return x

    def _to_host(self, features: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """float16 features on the host; on CUDA an asynchronous copy and its event."""
        half = features.to(torch.float16)
        if self.device.type != "cuda":
            return half.cpu(), None
        host = torch.empty(half.shape, dtype=torch.float16, pin_memory=True)
        host.copy_(half, non_blocking=True)
        done = torch.cuda.Event()
        done.record()
        return host, done

    def extract_slide(self, slide_path: Path, tiles_path: Path, out_path: Path) -> dict[str, Any]:
        """Features of one slide into ``out_path``; resumes a matching partial.  Returns attrs.

        Errors (missing slide, bad tiles store) are raised, naming the file.
        """
        outcome = self.extract_slides([SlideJob(Path(slide_path), Path(tiles_path),
                                                Path(out_path))], raise_errors=True)[0]  # fmt: skip
        return outcome.attrs

    def extract_slides(
        self, jobs: list[SlideJob], raise_errors: bool = False
    ) -> list[SlideOutcome]:
        """Extract every job with one stream of batches; outcomes in job order.

        With ``raise_errors`` the first error propagates; otherwise a slide that fails becomes
        an ``error`` outcome (its partial kept for a resume) and the others go on.
        """
        outcomes: dict[int, SlideOutcome] = {}
        active: dict[int, _Active] = {}
        for key, job in enumerate(jobs):
            started = time.perf_counter()
            try:
                prepared = self._prepare(key, job, started)
            except Exception as exc:
                if raise_errors:
                    raise
                log.error("%s: %s", job.slide, exc)
                prepared = SlideOutcome(job, "error", error=f"{type(exc).__name__}: {exc}")
            if isinstance(prepared, SlideOutcome):
                prepared.seconds = time.perf_counter() - started
                outcomes[key] = prepared
            else:
                active[key] = prepared
        if active:
            self._stream(active, outcomes, raise_errors)
        return [outcomes[key] for key in range(len(jobs))]

    def _prepare(self, key: int, job: SlideJob, started: float) -> _Active | SlideOutcome:
        tiles = read_tiles_store(job.tiles)
        enc = self.encoder
        if not tiles.ok:
            attrs = _base_attrs(tiles, enc, None)
            if attrs[ATTR_STATUS] == "ok":
                attrs[ATTR_REASON] = "no tiles"
            attrs.update(n_tiles=0, n_tiles_failed=0, n_tiles_input=0, **self.run_attrs())
            empty = np.zeros((0, enc.dim), np.float16)
            _write_final(job.out, attrs, empty, np.zeros((0, 2), np.int64))
            log.info("%s: %s (%s); empty features store", job.out, attrs[ATTR_STATUS],
                     attrs[ATTR_REASON])  # fmt: skip
            return SlideOutcome(job, "empty", attrs)
        open_slide(job.slide).close()  # fail early, naming the file
        geometry = tiles.geometry(enc.input_size_px)
        spec = plan_reader(job.slide, tiles.coords, geometry, self.options.reader, self.device,
                           allow_scaled=self.allow_scaled)  # fmt: skip
        resize = None
        if spec.reader != "nvjpeg" and geometry.resize != "none" and self._resize_on_device():
            from wsirisk.features.devicedecode import DeviceResize

            # workers deliver tiles at the tile size; the device brings them to the input size
            resize = DeviceResize(geometry.tile_size_px, geometry.input_size_px, self.device)
            spec = spec.at_tile_size()
        attrs = _base_attrs(tiles, enc, geometry)
        on_device = resize is not None or spec.reader == "nvjpeg"
        attrs.update(reader=spec.reader, reader_note=spec.note,
                     resize_on="device" if on_device else "loader")  # fmt: skip
        identity = {
            "tiles_sha256": tiles.sha256(),
            "slide_file": [Path(job.slide).name, Path(job.slide).stat().st_size],
            **{k: attrs[k] for k in ("encoder", "weights_sha256", "params_sha256", "transform")},
            **self.run_attrs(),
            "reader": [spec.reader, spec.scale],
        }
        if resize is not None:  # rounding may differ by one grey level: never mix the two
            identity["resize_on"] = "device"
        attrs["identity"] = identity
        done = _complete_attrs(job.out)
        if done is not None and _same(done.get("identity"), identity):
            log.info("%s: complete with the same inputs and settings; skipped", job.out)
            return SlideOutcome(job, "done", done)
        n_tiles = len(tiles.coords)
        partial = PartialStore.open_or_create(
            job.out, identity, n_tiles, enc.dim, self.options.chunk_tiles
        )
        if partial.n_done:
            log.info("resuming %s at tile %d/%d", job.out, partial.n_done, n_tiles)
        decoder = None
        if spec.reader == "nvjpeg":
            from wsirisk.features.devicedecode import DeviceDecoder

            decoder = DeviceDecoder(spec, self.device)
        return _Active(key, job, tiles, attrs, spec, partial, _ChunkBuffer(partial),
                       partial.n_done > 0, started, decoder, resize)  # fmt: skip

    def _stream(
        self, active: dict[int, _Active], outcomes: dict[int, SlideOutcome], raise_errors: bool
    ) -> None:
        """Run the encoder over every active slide's remaining tiles; finalize each when done."""
        works = [SlideWork(a.key, a.spec, a.partial.n_done) for a in active.values()]
        remaining = sum(w.n_tiles - w.start for w in works)
        finisher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wsirisk-finalize")
        pending: dict[int, Future] = {}
        for a in active.values():
            if a.buffer.complete:
                pending[a.key] = finisher.submit(self._finalize, a)
        loader = make_stream_loader(
            works, self.options.batch_size, self.options.num_workers,
            pin_memory=self.device.type == "cuda",
        )  # fmt: skip
        timing = {"wait_s": 0.0, "total_s": 0.0}
        started = time.perf_counter()
        bar = _progress(remaining, 0, "extract", self.progress and remaining > 0)
        in_flight: deque = deque()

        def store(a: _Active, indices: Any, host: torch.Tensor, done: Any, ok: Any) -> None:
            if done is not None:
                done.synchronize()
            a.buffer.add(int(indices[0]), host.numpy(), ok.cpu().numpy())
            a.last_batch = time.perf_counter()
            bar.update(len(indices))
            if a.buffer.complete:
                pending[a.key] = finisher.submit(self._finalize, a)

        try:
            with bar:
                decoders = {k: a.decoder for k, a in active.items() if a.decoder is not None}
                batches = _decode_ahead(loader if remaining else [], decoders, DECODE_AHEAD)
                for key, indices, data, ok, error in _timed(batches, timing):
                    a = active[key]
                    if a.error:
                        continue
                    if error:
                        a.error = error
                        log.error("%s", error)
                        if raise_errors:
                            raise RuntimeError(error)
                        continue
                    a.first_batch = a.first_batch or time.perf_counter()
                    features = self.embed(data, a.resize)
                    if features.shape[1] != a.partial.features.shape[1]:
                        raise RuntimeError(
                            f"encoder {a.attrs['encoder']} gave {features.shape[1]}-d features, "
                            f"expected {a.partial.features.shape[1]}"
                        )
                    # queue the copy back and go on: the GPU gets the next batch before this
                    # one's features are waited for (IN_FLIGHT batches in flight)
                    in_flight.append((a, indices, *self._to_host(features), ok))
                    while len(in_flight) > IN_FLIGHT:
                        store(*in_flight.popleft())
                while in_flight:
                    store(*in_flight.popleft())
        finally:
            timing["total_s"] = time.perf_counter() - started
            self.last_timing = timing
            finisher.shutdown(wait=True)
        for key, a in active.items():
            future = pending.get(key)
            if future is None:
                reason = a.error or "stream ended before every tile was read"
                outcomes[key] = SlideOutcome(a.job, "error", a.attrs, error=reason)
            else:
                try:
                    outcomes[key] = future.result()
                except Exception as exc:
                    if raise_errors:
                        raise
                    log.error("%s: %s", a.job.out, exc)
                    outcomes[key] = SlideOutcome(a.job, "error", a.attrs, error=str(exc))
            outcomes[key].seconds = time.perf_counter() - a.started
            outcomes[key].timing = {"first_batch": a.first_batch or 0.0,
                                    "last_batch": a.last_batch or 0.0}  # fmt: skip
        log.info("%d tiles in %.1f s (%.0f%% of it waiting for tiles)", remaining,
                 timing["total_s"], 100 * timing["wait_s"] / max(timing["total_s"], 1e-9))  # fmt: skip

    def _finalize(self, a: _Active) -> SlideOutcome:
        """Write the final store from the finished partial (runs beside the model)."""
        features, ok = a.partial.read_all()
        n_tiles = len(a.tiles.coords)
        n_failed = int((~ok).sum())
        attrs = dict(a.attrs)
        attrs.update(
            n_tiles=int(ok.sum()), n_tiles_failed=n_failed, n_tiles_input=n_tiles,
            **self.run_attrs(),
        )  # fmt: skip
        if n_failed == n_tiles:
            attrs.update(
                {ATTR_STATUS: "failed", ATTR_REASON: f"all {n_tiles} tiles failed to decode"}
            )
        elif n_failed:
            attrs[ATTR_REASON] = f"{n_failed} of {n_tiles} tiles failed to decode (skipped)"
        _write_final(a.job.out, attrs, features[ok], a.tiles.coords[ok])
        a.partial.remove()
        seconds = time.perf_counter() - a.started
        log.info("%s: %d tiles (%d failed) in %.1f s, reader %s -> %s", attrs.get("slide_id"),
                 n_tiles, n_failed, seconds, a.spec.describe(), a.job.out)  # fmt: skip
        return SlideOutcome(a.job, "resumed" if a.resumed else "extracted", attrs)


def _complete_attrs(path: Path) -> dict[str, Any] | None:
    """Attributes of a complete features store at ``path``, else None."""
    if not (Path(path) / "zarr.json").exists():
        return None
    try:
        attrs = dict(open_group(path, mode="r").attrs)
    except Exception:  # noqa: BLE001 - unreadable: not complete
        return None
    return attrs if attrs.get("complete") is True else None


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _decode_ahead(batches: Any, decoders: dict[int, Any], depth: int) -> Any:
    """The loader's batches in order, nvjpeg payloads decoded up to ``depth`` batches ahead.

    A batch whose decode raises becomes that slide's error (the other slides go on).
    """
    if not decoders:
        yield from batches
        return
    local = threading.local()

    def decode(decoder: Any, indices: torch.Tensor, data: Any, ok: Any) -> tuple[Any, Any]:
        if decoder.device.type != "cuda":
            return decoder.decode(indices, data, ok)
        stream = getattr(local, "stream", None)
        if stream is None:
            stream = local.stream = torch.cuda.Stream(decoder.device)
        with torch.cuda.stream(stream):
            out = decoder.decode(indices, data, ok)
        stream.synchronize()  # the tiles are complete before another stream reads them
        return out

    pending: deque = deque()

    def finish() -> tuple:
        key, indices, future, error = pending.popleft()
        if error:
            return key, indices, None, None, error
        try:
            data, ok = future.result()
        except Exception as exc:  # noqa: BLE001 - this slide fails, the others go on
            path = decoders[key].spec.slide_path
            return key, indices, None, None, f"{path}: GPU decode failed: {exc}"
        return key, indices, data, ok, ""

    with ThreadPoolExecutor(max(1, depth), thread_name_prefix="wsirisk-decode") as pool:
        for key, indices, data, ok, error in batches:
            decoder = decoders.get(key)
            if decoder is None or error:
                future: Future = Future()
                future.set_result((data, ok))
            else:
                future = pool.submit(decode, decoder, indices, data, ok)
            pending.append((key, indices, future, error))
            while len(pending) > depth:
                yield finish()
        while pending:
            yield finish()


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
    """Per-batch results put back in tile order; each chunk goes to the partial once whole."""

    def __init__(self, partial: PartialStore) -> None:
        self.partial = partial
        self.next_tile = partial.n_done  # first tile not yet written
        self.features: list[np.ndarray] = []
        self.ok: list[np.ndarray] = []
        self.n_held = 0
        self.waiting: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # arrived ahead of order

    @property
    def complete(self) -> bool:
        return self.next_tile >= self.partial.n_tiles

    def add(self, first_tile: int, features_f16: np.ndarray, ok: np.ndarray) -> None:
        if first_tile < self.next_tile + self.n_held or first_tile in self.waiting:
            raise RuntimeError(f"tile order broken: tile {first_tile} arrived twice")
        self.waiting[first_tile] = (features_f16, ok)
        while (expected := self.next_tile + self.n_held) in self.waiting:
            features, flags = self.waiting.pop(expected)
            self.features.append(features)
            self.ok.append(flags)
            self.n_held += len(features)
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
    parser.add_argument(
        "--manifest", type=Path, default=None,
        help="TSV written at the end: one row per slide (status, reader, seconds, ...)",
    )  # fmt: skip


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
    """Load the encoder once, then extract every (slide, tiles, out) triple in one stream."""
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
    jobs = [SlideJob(s, t, o) for s, t, o in zip(args.slide, args.tiles, args.out, strict=True)]
    outcomes = extractor.extract_slides(jobs)
    for outcome in outcomes:
        row = outcome.row()
        log.info("%s: %s (%s), %s tiles (%s failed), reader %s -> %s", row["slide_id"] or
                 outcome.job.slide, row["status"], outcome.action, row["n_tiles"],
                 row["n_tiles_failed"], row["reader"], row["store"])  # fmt: skip
    if args.manifest is not None:
        write_manifest(args.manifest, outcomes)
    errors = [o for o in outcomes if o.error]
    for outcome in errors:
        print(f"wsirisk extract: {outcome.job.slide}: {outcome.error}", file=sys.stderr)
    # In a batch job (--manifest) a slide that failed is a manifest row (status "error") and the
    # other slides' stores stand: the cohort goes on without it (training skips it, the report
    # lists it). Alone, a failure is the command's failure.
    return 1 if errors and args.manifest is None else 0


__all__ = [
    "MANIFEST_COLUMNS",
    "ExtractOptions",
    "Extractor",
    "SlideJob",
    "SlideOutcome",
    "build_parser",
    "load_extractor",
    "parse_options",
    "read_tiles_store",
    "run",
    "write_manifest",
]
