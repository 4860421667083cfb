"""Benchmark: time and peak memory of one training step vs the number of patches.

For each model and patch count, a fresh subprocess builds the model (seed 0, training mode),
makes random 1024-d patch features on a square grid of 128 um tiles (their ``coords``, so
ME-Mamba's spatial orders and SurvMamba's 2048 um regions are exercised) plus six genomic
groups, runs one warm-up step on 256 patches, then times one training step (forward, NLL + aux loss, backward; best of
``--repeats``, with the process CPU time alongside, since the machine may be shared). Peak
memory comes from a second subprocess: its peak RSS (``VmHWM``, reset after the warm-up) minus
its RSS just before the step, run with ``MALLOC_MMAP_THRESHOLD_=65536`` so that glibc returns
freed tensors to the OS and RSS tracks live tensor memory (not used for timing: every
medium-sized allocation then costs page faults).

Models: ME-Mamba, SurvMamba ("survmamba") and the attention baselines - "transmil" (TransMIL over every patch + SNN,
the patch-level self-attention model of the kind in the paper's Fig. 3, used for the ratios)
and "mcat" (genomic-query co-attention: its attention is 6 x N, so it is cheap in memory).

    python bench/scaling.py                                  # 1k, 10k, 20k patches, 1 thread
    python bench/scaling.py --patches 1000,5000 --models me_mamba,transmil
    python bench/scaling.py --device cuda --threads 8     # on a GPU (mamba-ssm kernels if importable)

One intra-op thread by default: the ratios are what this benchmark is about, and on a shared
2-core machine OpenMP's fork/join stalls whenever another process holds a core, which makes
multi-threaded timings of models with many medium-sized ops (the streamed Mamba layers)
unstable. Prints a table, writes a PNG (``--png``) and ends with one JSON line including
mem_ratio_20k (ME-Mamba peak / baseline peak) and time_ratio_20k_10k (ME-Mamba t(20k) /
t(10k)).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
from _memory import peak_rss, reset_peak_rss

OMICS_SIZES = [84, 314, 498, 335, 1496, 428]  # TCGA-BLCA-like group sizes (MCAT signatures)
TILE_UM = 128.0  # 256 px at 20x


def grid_coords(n: int) -> torch.Tensor:
    """(n, 2) um: tiles of a square-ish grid, row-major (the tiler's order)."""
    width = max(1, int(n**0.5))
    i = torch.arange(n)
    return torch.stack([(i % width) * TILE_UM, (i // width) * TILE_UM], dim=1).float()


def worker(name: str, n: int, threads: int, repeats: int, device: str) -> dict[str, float]:
    """``repeats`` training steps in this process: best seconds, peak memory delta (MiB):
    RSS on CPU, ``torch.cuda.max_memory_allocated`` on CUDA."""
    import psutil

    from wsirisk.models import build_model, nll_loss

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    dev = torch.device(device)
    model = build_model(name, path_dim=1024, omics_sizes=OMICS_SIZES, n_bins=4).train().to(dev)
    g = torch.Generator().manual_seed(1)
    omics = [torch.randn(s, generator=g).to(dev) for s in OMICS_SIZES]
    y, c = torch.tensor([1], device=dev), torch.tensor([0.0], device=dev)
    cuda = dev.type == "cuda"

    def step(x: torch.Tensor) -> None:
        model.zero_grad(set_to_none=False)
        out = model(x, omics, coords=grid_coords(x.shape[0]).to(dev))
        (nll_loss(out.logits, y, c) + out.aux_loss).backward()

    step(torch.randn(256, 1024, generator=g).to(dev))  # warm-up: kernels, grads allocated
    x = torch.randn(n, 1024, generator=g).to(dev)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    reset_peak_rss()
    rss0 = psutil.Process().memory_info().rss
    times, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        step(x)
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    peak = torch.cuda.max_memory_allocated() if cuda else peak_rss()
    delta = peak - (base if cuda else rss0)
    return {"seconds": min(times), "cpu_s": min(cpu), "peak_mib": max(delta, 0) / 2**20}


def _worker_run(
    name: str, n: int, args: argparse.Namespace, memory: bool
) -> dict | None:  # fmt: skip
    cmd = [sys.executable, __file__, "--worker", name, "--patches", str(n)]
    cmd += ["--threads", str(args.threads), "--repeats", str(1 if memory else args.repeats)]
    cmd += ["--device", args.device]
    env = dict(os.environ)
    if memory:  # freed tensors go straight back to the OS, so RSS follows live memory
        env["MALLOC_MMAP_THRESHOLD_"] = "65536"
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode:
        print(f"{name} @ {n}: failed\n{proc.stderr[-500:]}", file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_case(name: str, n: int, args: argparse.Namespace) -> dict[str, float] | None:
    """Times from a default-allocator run, peak memory from a fixed-mmap-threshold run (on
    CUDA one run gives both: the caching allocator's peak is exact)."""
    timed = _worker_run(name, n, args, memory=False)
    if timed is not None and args.device != "cpu":
        return timed
    mem = _worker_run(name, n, args, memory=True) if timed else None
    return None if timed is None or mem is None else {**timed, "peak_mib": mem["peak_mib"]}


def plot(results: dict[str, dict[int, dict[str, float]]], path: Path, device: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for name, rows in results.items():
        ns = sorted(rows)
        axes[0].plot(ns, [rows[n]["seconds"] for n in ns], "o-", label=name)
        axes[1].plot(ns, [rows[n]["peak_mib"] for n in ns], "o-", label=name)
    for ax, label in zip(axes, ["seconds per training step", "peak memory (MiB)"], strict=True):
        ax.set_xlabel("patches (+ 6 genomic groups)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"One training step (fwd + bwd), {device}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patches", default="1000,10000,20000")
    ap.add_argument("--models", default="me_mamba,transmil,mcat")
    ap.add_argument("--baseline", default="transmil")
    ap.add_argument("--threads", type=int, default=1, help="1: stable on a shared machine")
    ap.add_argument("--repeats", type=int, default=1, help="best of N steps (shared machines)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (memory: CUDA allocator peak)")
    ap.add_argument("--png", type=Path, default=Path("results/bench/scaling.png"))
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    patches = [int(v) for v in args.patches.split(",")]
    if args.worker:
        res = worker(args.worker, patches[0], args.threads, args.repeats, args.device)
        print(json.dumps(res))
        return
    models = args.models.split(",")
    results: dict[str, dict[int, dict[str, float]]] = {m: {} for m in models}
    print(f"{'model':>10} {'patches':>8} {'seconds':>9} {'peak MiB':>9}")
    for n in patches:
        for name in models:
            r = run_case(name, n, args)
            if r is None:
                continue
            results[name][n] = r
            print(f"{name:>10} {n:>8} {r['seconds']:9.2f} {r['peak_mib']:9.0f}", flush=True)
    plot(results, args.png, args.device)
    summary: dict[str, object] = {
        "device": args.device,
        "threads": args.threads,
        "repeats": args.repeats,
        "baseline": args.baseline,
    }
    summary["png"] = str(args.png)
    for name, rows in results.items():
        for n, r in rows.items():
            summary[f"{name}_seconds_{n}"] = round(r["seconds"], 3)
            summary[f"{name}_cpu_s_{n}"] = round(r["cpu_s"], 3)
            summary[f"{name}_peak_mib_{n}"] = round(r["peak_mib"], 1)
    me = results.get("me_mamba", {})
    for base in models:
        if base == "me_mamba" or 20000 not in me or 20000 not in results[base]:
            continue
        ratio = round(me[20000]["peak_mib"] / results[base][20000]["peak_mib"], 4)
        summary["mem_ratio_20k" if base == args.baseline else f"mem_ratio_20k_{base}"] = ratio
    if 10000 in me and 20000 in me:
        summary["time_ratio_20k_10k"] = round(me[20000]["seconds"] / me[10000]["seconds"], 3)
        summary["cpu_time_ratio_20k_10k"] = round(me[20000]["cpu_s"] / me[10000]["cpu_s"], 3)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
