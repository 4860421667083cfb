"""Feature extraction speed: tile readers, pipeline vs model, and the gap between slides.

    python bench/extract.py [--encoder resnet50_trunc] [--batch-size 32] [--num-workers 2]
                            [--rounds 3] [--pipeline-tiles 96] [--group-tiles 32] [--device auto]

Three measurements on synthetic Aperio-like slides (JPEG, 240 px stored tiles, quality 80,
``wsirisk.features.synthetic.write_repeated_slide``): a **40x case** (0.25 um/px; the tiling
stage reads 512 px at level 0 -> 256 px tiles) and a **20x case** (0.5 um/px; reads 256 px),
grid origin (0, 0) as the tiling stage makes it, then the encoder's resize (256 -> 224).

1. *Loader only, per CPU core*: each reader (``openslide`` per tile = today's path, ``region``,
   ``jpeg_full`` = direct decode without DCT scaling, ``jpeg`` = direct decode as chosen, with
   the 1/2 scaled decode on the 40x case, ``jpeg_tile`` = the same stopping at the tile size,
   what a worker does when the device resizes (``resize_on: device``, the default on CUDA, where
   it is the default reader's rate), and ``nvjpeg`` on CUDA) reads every tile of the case
   in this process, one thread, units and batches as the extraction stream uses them.  Readers
   alternate over ``--rounds`` rounds; rates are medians, speed-ups the median of the per-round
   ratios (so a load that drifts between rounds cancels).  The default reader is what
   ``features.reader: auto`` picks for the case.
   ``--loader-parallel 1,16``: the summed rate of N such processes at once (``jpeg_tile``), i.e.
   what the machine's cores can decode whatever the pipeline does.
2. *Pipeline vs model* on the default reader (40x case; ``--pipeline-cases 40x,20x`` adds the
   20x case, ``--pipeline-readers auto,jpeg:loader,nvjpeg`` more readers, each optionally
   ``:loader`` / ``:device`` for ``resize_on``): ``Extractor.extract_slides`` end to end
   (``--num-workers`` loader workers; reader choice, worker start and final store included)
   against the encoder alone on as many tiles (decoded beforehand); model and pipeline runs
   alternate (``--pipeline-rounds``) and each pipeline run is divided by the mean of the model
   runs around it: ``ratio`` is the median, ``ratio_steady`` the same from the first batch in
   to the last batch out.
3. *Gap between slides*: three 20x slides in one job (one stream) and the same three slides one
   call each (today's per-slide jobs): the time from a slide's last batch leaving the model to
   the next slide's first batch reaching it, alone and as a share of a slide's time.

Prints a table, then one JSON line.  Random weights by default, labelled as such.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from wsirisk.features.encoders import build_encoder
from wsirisk.features.extract import ExtractOptions, Extractor, SlideJob, read_tiles_store
from wsirisk.features.readers import ReadSpec, make_reader, plan_reader, units
from wsirisk.features.synthetic import write_repeated_slide, write_tiles_store

TILE_PX = 256
MODEL_TILES = 1024  # decoded tiles for the model-only timing (cycled up to the pipeline's count)
CASES = {"40x": (0.25, 512), "20x": (0.5, 256)}  # name: (level-0 um/px, read size at level 0)


def _slide(root: Path, name: str, case: str, n_tiles: int, seed: int = 0) -> tuple[Path, Path]:
    """An Aperio-like JPEG slide just large enough for ``n_tiles`` grid tiles (origin 0, the
    last column and row running past the edge as the tiling stage's do) and its tiles store."""
    mpp, read_px = CASES[case]
    cols = max(2, math.ceil(math.sqrt(n_tiles)))
    rows = math.ceil(n_tiles / cols)
    width, height = cols * read_px - read_px // 3, rows * read_px - read_px // 3
    slide = write_repeated_slide(root / f"{name}.svs", width, height, mpp, seed=seed)
    xs, ys = np.arange(0, width, read_px), np.arange(0, height, read_px)
    coords = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2)[:n_tiles]
    tiles = write_tiles_store(
        root / f"{name}.zarr", coords, slide_path=slide, slide_id=name, patient_id=name,
        tile_size_px=TILE_PX, read_size_px=read_px, mpp=mpp,
    )  # fmt: skip
    return slide, tiles


def _read_rate(spec: ReadSpec, batch_size: int, device: torch.device) -> float:
    """Tiles/s of one reader in this process (units and batches as the stream cuts them)."""
    reader = make_reader(spec)
    decoder = None
    if spec.reader == "nvjpeg":
        from wsirisk.features.devicedecode import DeviceDecoder

        decoder = DeviceDecoder(spec, device)
    n = len(spec.coords)
    start = time.perf_counter()
    for a, b in units(n, 0, batch_size, 1024):
        indices = np.arange(a, b)
        reader.begin_unit(indices)
        for s in range(a, b, batch_size):
            batch = indices[s - a : s - a + batch_size]
            data, ok = reader.read(batch)
            if decoder is not None:
                data, ok = decoder.decode(torch.from_numpy(batch), data, torch.from_numpy(ok))
    if device.type == "cuda":
        torch.cuda.synchronize()
    reader.close()
    return n / (time.perf_counter() - start)


def _loader_rates(
    slide: Path, tiles: Path, batch_size: int, rounds: int, device: torch.device
) -> tuple[dict[str, float], dict[str, float], str, str]:
    """Median tiles/s per reader, median speed-up over openslide, default reader and its note."""
    t = read_tiles_store(tiles)
    geometry = t.geometry(224)
    specs = {
        "openslide": plan_reader(slide, t.coords, geometry, "openslide"),
        "region": plan_reader(slide, t.coords, geometry, "region"),
        "jpeg_full": plan_reader(slide, t.coords, geometry, "jpeg", allow_scaled=False),
        "jpeg": plan_reader(slide, t.coords, geometry, "jpeg"),
    }
    specs["jpeg_tile"] = specs["jpeg"].at_tile_size()  # the workers' part when the device resizes
    if device.type == "cuda":
        specs["nvjpeg"] = plan_reader(slide, t.coords, geometry, "nvjpeg", device=device)
    default = plan_reader(slide, t.coords, geometry, "auto", device=device)
    default_key = "jpeg" if default.reader == "jpeg" else default.reader
    if default_key == "jpeg" and device.type == "cuda":  # resize_on: auto -> device on CUDA
        default_key = "jpeg_tile"
    for spec in specs.values():  # warm-up: imports, page cache, first-call costs
        _read_rate(replace(spec, coords=spec.coords[:8]), batch_size, device)
    rates: dict[str, list[float]] = {k: [] for k in specs}
    for _ in range(rounds):
        for key, spec in specs.items():
            rates[key].append(_read_rate(spec, batch_size, device))
    ref = rates["openslide"]
    speedups = {k: statistics.median(r / o for r, o in zip(v, ref, strict=True))
                for k, v in rates.items()}  # fmt: skip
    medians = {k: round(statistics.median(v), 1) for k, v in rates.items()}
    for key, spec in specs.items():  # a reader that fell back is measured as what it became
        if spec.reader != key.split("_")[0]:
            print(f"  note: {key} ran as {spec.describe()}")
    return medians, speedups, default_key, default.describe()


def _parallel_worker(args: tuple) -> float:
    spec, batch_size = args
    _read_rate(spec, batch_size, torch.device("cpu"))  # first round: page cache, imports
    return _read_rate(spec, batch_size, torch.device("cpu"))


def _parallel_rates(slide: Path, tiles: Path, batch_size: int, counts: list[int]) -> dict:
    """Summed tiles/s of N processes each running the CPU default path (jpeg to the tile size)
    at once: how many tiles/s this machine's CPUs can decode, whatever the worker count."""
    import multiprocessing as mp

    t = read_tiles_store(tiles)
    spec = plan_reader(slide, t.coords, t.geometry(224), "jpeg").at_tile_size()
    out = {}
    with mp.get_context("fork").Pool(max(counts)) as pool:
        for n in counts:
            rates = pool.map(_parallel_worker, [(spec, batch_size)] * n, chunksize=1)
            out[str(n)] = {"total": round(sum(rates), 1), "per_process": round(sum(rates) / n, 1)}
    return out


def _model_rate(
    extractor: Extractor, tiles_uint8: torch.Tensor, batch_size: int, n_tiles: int
) -> float:
    """The encoder alone on ``n_tiles`` tiles (the decoded ones, cycled), batches as in the run."""
    extractor.embed(tiles_uint8[:batch_size])  # warm-up (allocator, oneDNN/cuDNN kernels)
    if extractor.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    done = 0
    while done < n_tiles:
        first = done % len(tiles_uint8)
        batch = tiles_uint8[first : first + min(batch_size, n_tiles - done)]
        extractor.embed(batch).cpu()
        done += len(batch)
    return n_tiles / (time.perf_counter() - start)


def _pipeline(
    extractor: Extractor,
    slide: Path,
    tiles: Path,
    root: Path,
    n_pipe: int,
    decoded: torch.Tensor,
    batch_size: int,
    rounds: int,
) -> dict:
    """Pipeline runs on ``extractor.options.reader`` alternating with model-only runs."""
    t = read_tiles_store(tiles)
    spec = plan_reader(slide, t.coords, t.geometry(extractor.encoder.input_size_px),
                       extractor.options.reader, device=extractor.device)  # fmt: skip
    # model, pipeline, model, pipeline, ..., model: each pipeline run against the mean of
    # the model runs around it, so a load that drifts during the run cancels
    models = [_model_rate(extractor, decoded, batch_size, n_pipe)]
    pipelines, steadies, waits = [], [], []
    for k in range(rounds):
        o = extractor.options
        out = root / f"pipe-{slide.stem}-{o.reader}-{o.resize_on}-{k}.zarr"  # never "done"
        start = time.perf_counter()
        piped = extractor.extract_slides([SlideJob(slide, tiles, out)])[0]
        pipelines.append(n_pipe / (time.perf_counter() - start))
        timing = extractor.last_timing
        waits.append(timing["wait_s"] / max(timing["total_s"], 1e-9))
        span = piped.timing["last_batch"] - piped.timing["first_batch"]
        steadies.append(n_pipe / max(span, 1e-9))  # first batch in -> last batch out
        models.append(_model_rate(extractor, decoded, batch_size, n_pipe))
    around = [(a + b) / 2 for a, b in zip(models[:-1], models[1:], strict=True)]
    return {
        "spec": spec, "models": models, "pipelines": pipelines, "waits": waits,
        "resize_on": piped.attrs["resize_on"],  # as the store records it
        "ratio": statistics.median(p / m for p, m in zip(pipelines, around, strict=True)),
        "ratio_steady": statistics.median(p / m for p, m in zip(steadies, around, strict=True)),
        "pipeline": statistics.median(pipelines), "steady": statistics.median(steadies),
        "model": statistics.median(models),
    }  # fmt: skip


def _summary(run: dict) -> dict:
    return {"reader": run["spec"].describe(), "resize_on": run["resize_on"],
            "ratio": round(run["ratio"], 3), "ratio_steady": round(run["ratio_steady"], 3),
            "pipeline_tiles_per_s": round(run["pipeline"], 2),
            "pipeline_steady_tiles_per_s": round(run["steady"], 2),
            "model_tiles_per_s": round(run["model"], 2),
            "pipeline_wait_fraction": round(statistics.median(run["waits"]), 3)}  # fmt: skip


def _gaps(outcomes: list) -> tuple[list[float], list[float]]:
    """Gaps between consecutive slides (last batch out -> next first batch in) and slide times."""
    times = [o.timing for o in outcomes]
    gaps = [
        max(0.0, b["first_batch"] - a["last_batch"])
        for a, b in zip(times[:-1], times[1:], strict=True)
    ]
    spans = [t["last_batch"] - t["first_batch"] for t in times]
    return gaps, spans


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--encoder", default="resnet50_trunc")
    parser.add_argument("--weights", default="random")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (model)")
    parser.add_argument("--rounds", type=int, default=3, help="loader rounds per reader")
    parser.add_argument("--loader-tiles", type=int, default=128, help="tiles per loader case")
    parser.add_argument("--pipeline-tiles", type=int, default=96, help="40x tiles, pipeline")
    parser.add_argument("--pipeline-rounds", type=int, default=3, help="pipeline runs")
    parser.add_argument("--group-tiles", type=int, default=32, help="tiles per grouped slide")
    parser.add_argument("--n-slides", type=int, default=3, help="slides in the grouped job")
    parser.add_argument("--pipeline-readers", default="auto",
                        help="comma-separated features.reader values for the pipeline runs, "
                             "each optionally :loader or :device (features.resize_on); "
                             "the first is the one reported as ratio")  # fmt: skip
    parser.add_argument("--pipeline-cases", default="40x",
                        help="comma-separated cases (40x, 20x) for the pipeline runs; the first "
                             "is the one reported as ratio")  # fmt: skip
    parser.add_argument("--loader-parallel", default="",
                        help="comma-separated process counts: summed loader rate of N processes "
                             "at once on the 40x and 20x cases (e.g. 1,8,16)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    import cv2

    cv2.setNumThreads(1)  # loader rates per core
    options = ExtractOptions(
        encoder=args.encoder, weights=args.weights, batch_size=args.batch_size,
        num_workers=args.num_workers, device=args.device,
    )  # fmt: skip
    encoder = build_encoder(options.encoder, options.weights)
    extractor = Extractor(encoder, options, progress=False)
    device = extractor.device
    result: dict = {"encoder": encoder.name, "weights": encoder.weights.label,
                    "random_init": encoder.weights.random_init, "device": device.type,
                    "precision": extractor.run_attrs()["precision"],
                    "torch_threads": torch.get_num_threads(), "batch_size": args.batch_size,
                    "num_workers": args.num_workers, "cpu_count": os.cpu_count()}  # fmt: skip
    loader: dict[str, dict[str, float]] = {}
    speedup: dict[str, dict[str, float]] = {}
    defaults: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="wsirisk-bench-") as tmp:
        root = Path(tmp)
        paths = {name: _slide(root, name, name, args.loader_tiles) for name in CASES}
        for name, (slide, tiles) in paths.items():
            rates, ratios, default_key, note = _loader_rates(
                slide, tiles, args.batch_size, args.rounds, device
            )
            loader[name], speedup[name] = rates, ratios
            defaults[name] = f"{default_key}: {note}"
            result[f"speedup_vs_openslide_{name}"] = round(ratios[default_key], 2)
            result[f"n_tiles_{name}"] = len(read_tiles_store(tiles).coords)

        parallel: dict[str, dict] = {}
        counts = [int(c) for c in args.loader_parallel.split(",") if c.strip()]
        if counts:
            for name, (slide, tiles) in paths.items():
                parallel[name] = _parallel_rates(slide, tiles, args.batch_size, counts)

        # pipeline vs model on each requested reader (the first is the one reported), per case
        cases = [c.strip() for c in args.pipeline_cases.split(",") if c.strip()]
        by_case: dict[str, dict[str, dict]] = {}
        n_tiles_by_case: dict[str, int] = {}
        for case in cases:
            slide, tiles = _slide(root, f"pipe{case}", case, args.pipeline_tiles, seed=1)
            t = read_tiles_store(tiles)
            n_pipe = n_tiles_by_case[case] = len(t.coords)
            cpu_spec = plan_reader(slide, t.coords, t.geometry(encoder.input_size_px), "auto")
            reader = make_reader(cpu_spec)
            decoded, _ = reader.read(np.arange(min(n_pipe, MODEL_TILES)))
            reader.close()
            decoded = torch.from_numpy(decoded)
            by_case[case] = {}
            for variant in [r.strip() for r in args.pipeline_readers.split(",") if r.strip()]:
                requested, _, where = variant.partition(":")
                extractor.options = replace(options, reader=requested, resize_on=where or "auto")
                run = _pipeline(extractor, slide, tiles, root, n_pipe, decoded,
                                args.batch_size, args.pipeline_rounds)  # fmt: skip
                by_case[case][variant] = run
            extractor.options = options
        by_reader = by_case[cases[0]]
        first = next(iter(by_reader.values()))
        spec, pipeline, steady = first["spec"], first["pipeline"], first["steady"]
        model, ratio, ratio_steady = first["model"], first["ratio"], first["ratio_steady"]
        models, pipelines, waits = first["models"], first["pipelines"], first["waits"]
        n_pipe = n_tiles_by_case[cases[0]]

        # gap between slides: one job for all vs one call per slide
        group = [_slide(root, f"g{k}", "20x", args.group_tiles, seed=10 + k)
                 for k in range(args.n_slides)]  # fmt: skip
        jobs = [SlideJob(s, z, root / "grouped" / f"g{k}.zarr") for k, (s, z) in enumerate(group)]
        grouped_gaps, grouped_spans = _gaps(extractor.extract_slides(jobs))
        alone = [extractor.extract_slides([SlideJob(s, z, root / "alone" / f"g{k}.zarr")])[0]
                 for k, (s, z) in enumerate(group)]  # fmt: skip
        alone_gaps, alone_spans = _gaps(alone)

    gap = statistics.mean(grouped_gaps) if grouped_gaps else 0.0
    slide_s = statistics.mean(grouped_spans)
    result.update(
        loader_tiles_per_s_per_core=loader,
        loader_speedup_vs_openslide={k: {r: round(v, 2) for r, v in s.items()}
                                     for k, s in speedup.items()},  # fmt: skip
        default_reader=defaults,
        pipeline_tiles=n_pipe,
        pipeline_reader=spec.describe(),
        pipeline_tiles_per_s=round(pipeline, 2),
        pipeline_steady_tiles_per_s=round(steady, 2),
        model_tiles_per_s=round(model, 2),
        model_tiles_per_s_runs=[round(m, 2) for m in models],
        pipeline_tiles_per_s_runs=[round(p, 2) for p in pipelines],
        pipeline_wait_fraction=round(statistics.median(waits), 3),
        ratio=round(ratio, 3),
        ratio_steady=round(ratio_steady, 3),
        group_slides=args.n_slides,
        group_tiles_per_slide=args.group_tiles,
        gap_between_slides_s=round(gap, 4),
        gap_share_of_slide=round(gap / max(slide_s, 1e-9), 4),
        slide_seconds=round(slide_s, 3),
        gap_between_slides_s_one_call_per_slide=round(statistics.mean(alone_gaps), 4)
        if alone_gaps else None,
        pipeline_case=cases[0],
        pipeline_by_reader={r: _summary(v) for r, v in by_reader.items()},
        pipeline_by_case={c: {r: _summary(v) for r, v in runs.items()}
                          for c, runs in by_case.items()},  # fmt: skip
        loader_parallel_tiles_per_s=parallel,
        load_avg_before_after=[round(load_before[0], 2), round(os.getloadavg()[0], 2)],
    )  # fmt: skip
    label = " (RANDOM weights)" if encoder.weights.random_init else ""
    print(f"encoder {encoder.name}{label}, batch {args.batch_size}, {args.num_workers} workers, "
          f"{result['device']} {result['precision']}, {result['torch_threads']} torch threads")  # fmt: skip
    for name in CASES:
        print(f"  {name} loader tiles/s per core (speed-up vs openslide), default {defaults[name]}")
        for key, rate in loader[name].items():
            print(f"    {key:10s} {rate:8.1f}  ({speedup[name][key]:.2f}x)")
    for name, rates in parallel.items():
        print(
            f"  {name} loader, N processes at once (tiles/s total): "
            + ", ".join(f"{n}: {r['total']:.0f}" for n, r in rates.items())
        )
    for case, runs in by_case.items():
        for variant, run in runs.items():
            print(f"  pipeline {case} {variant:14s} resize on {run['resize_on']:6s} "
                  f"{run['pipeline']:8.1f} tiles/s, ratio {run['ratio']:.3f} "
                  f"(steady {run['ratio_steady']:.3f})")  # fmt: skip
    print(f"  model forward (pre-loaded tiles): {model:8.2f} tiles/s")
    print(f"  pipeline (read + model + store):  {pipeline:8.2f} tiles/s")
    print(f"  ratio pipeline / model:           {result['ratio']:8.3f} "
          f"(steady state {result['ratio_steady']:.3f})")  # fmt: skip
    print(f"  gap between slides, one job:      {gap:8.3f} s "
          f"({result['gap_share_of_slide']:.1%} of a {slide_s:.1f} s slide)")  # fmt: skip
    print(f"  gap, one call per slide:          "
          f"{result['gap_between_slides_s_one_call_per_slide'] or 0:8.3f} s")  # fmt: skip
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
