"""Extraction throughput: the whole pipeline vs the model forward alone, same encoder and batch.

    .venv/bin/python bench/extract.py [--n-tiles 128] [--encoder resnet50_trunc] [--batch-size 32]
                                      [--num-workers 2] [--slide PATH --tiles TILES.zarr]

* pipeline: ``Extractor.extract_slide`` end to end (DataLoader workers reading JPEG tiles by
  coordinate from a pyramidal TIFF, resize, model, chunked zarr writes, final store);
* model: the same ``Extractor.embed`` on tiles already decoded into memory, measured
  before and after the pipeline (mean), so a drifting background load cancels out;
* loader: the DataLoader alone (no model), to show the I/O headroom;
* pipeline_wait_fraction: share of the pipeline's loop spent waiting for a batch (worker
  start-up and first batch included): measured in the same run, so immune to other load.

Without ``--slide`` a synthetic textured 20x slide with ``--n-tiles`` 256 px tiles is written
to a temp dir.  Prints a table, then one JSON line (pipeline_tiles_per_s, model_tiles_per_s,
ratio, ...).  Random weights by default, labelled as such in the output.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from wsirisk.features.dataset import TileDataset, make_loader
from wsirisk.features.encoders import build_encoder
from wsirisk.features.extract import ExtractOptions, Extractor, read_tiles_store
from wsirisk.features.synthetic import grid_coords, write_textured_slide, write_tiles_store


def _synthetic(root: Path, n_tiles: int, tile_px: int) -> tuple[Path, Path]:
    cols = 16
    rows = math.ceil(n_tiles / cols)
    slide = write_textured_slide(root / "bench.tiff", cols * tile_px, rows * tile_px, seed=0)
    coords = grid_coords(cols * tile_px, rows * tile_px, tile_px)[:n_tiles]
    tiles = write_tiles_store(
        root / "bench.zarr",
        coords,
        slide_path=slide,
        slide_id="bench",
        patient_id="bench",
        tile_size_px=tile_px,
    )
    return slide, tiles


def _model_tiles_per_s(extractor: Extractor, dataset: TileDataset, batch_size: int) -> float:
    tiles = torch.from_numpy(np.stack([dataset.read(i)[0] for i in range(len(dataset))]))
    extractor.embed(tiles[:batch_size])  # warm-up (allocator, oneDNN/cuDNN kernels)
    if extractor.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for first in range(0, len(tiles), batch_size):
        extractor.embed(tiles[first : first + batch_size]).cpu()
    return len(tiles) / (time.perf_counter() - start)


def _loader_tiles_per_s(dataset: TileDataset, batch_size: int, num_workers: int) -> float:
    start = time.perf_counter()
    count = sum(len(batch[0]) for batch in make_loader(dataset, batch_size, num_workers, False))
    return count / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-tiles", type=int, default=128)
    parser.add_argument("--tile-px", type=int, default=256)
    parser.add_argument("--encoder", default="resnet50_trunc")
    parser.add_argument("--weights", default="random")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (model)")
    parser.add_argument("--slide", type=Path, help="a real slide (with --tiles)")
    parser.add_argument("--tiles", type=Path, help="its tiles store")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    options = ExtractOptions(
        encoder=args.encoder,
        weights=args.weights,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        device=args.device,
    )
    encoder = build_encoder(options.encoder, options.weights)
    extractor = Extractor(encoder, options, progress=False)
    with tempfile.TemporaryDirectory(prefix="wsirisk-bench-") as tmp:
        root = Path(tmp)
        if args.slide:
            slide, tiles = args.slide, args.tiles
        else:
            slide, tiles = _synthetic(root, args.n_tiles, args.tile_px)
        tiles_input = read_tiles_store(tiles)
        dataset = TileDataset(
            slide, tiles_input.coords, tiles_input.geometry(encoder.input_size_px)
        )
        n_tiles = len(dataset)

        # model, pipeline, model: the mean of the two model runs cancels a drifting load
        model_before = _model_tiles_per_s(extractor, dataset, args.batch_size)
        start = time.perf_counter()
        extractor.extract_slide(slide, tiles, root / "features.zarr")
        pipeline_tps = n_tiles / (time.perf_counter() - start)
        timing = dict(extractor.last_timing)
        model_after = _model_tiles_per_s(extractor, dataset, args.batch_size)
        model_tps = (model_before + model_after) / 2
        loader_tps = _loader_tiles_per_s(dataset, args.batch_size, args.num_workers)

    result = {
        "encoder": encoder.name,
        "weights": encoder.weights.label,
        "random_init": encoder.weights.random_init,
        "device": extractor.device.type,
        "precision": extractor.run_attrs()["precision"],
        "torch_threads": torch.get_num_threads(),
        "batch_size": args.batch_size,
        "num_workers": args.num_workers,
        "n_tiles": n_tiles,
        "input_px": encoder.input_size_px,
        "pipeline_tiles_per_s": round(pipeline_tps, 2),
        "model_tiles_per_s": round(model_tps, 2),
        "model_tiles_per_s_before_after": [round(model_before, 2), round(model_after, 2)],
        "loader_tiles_per_s": round(loader_tps, 2),
        "pipeline_wait_fraction": round(timing["wait_s"] / max(timing["total_s"], 1e-9), 3),
        "ratio": round(pipeline_tps / model_tps, 3),
    }
    label = " (RANDOM weights)" if encoder.weights.random_init else ""
    print(f"encoder {encoder.name}{label}, batch {args.batch_size}, {args.num_workers} workers, "
          f"{n_tiles} tiles, {result['device']} {result['precision']}, "
          f"{result['torch_threads']} torch threads")  # fmt: skip
    print(f"  model forward (pre-loaded tiles): {model_tps:8.2f} tiles/s")
    print(f"  pipeline (read + model + store):  {pipeline_tps:8.2f} tiles/s")
    print(f"  loader only (no model):           {loader_tps:8.2f} tiles/s")
    print(f"  ratio pipeline / model:           {result['ratio']:8.3f}")
    print(f"  pipeline time waiting for tiles:  {result['pipeline_wait_fraction']:8.1%}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
