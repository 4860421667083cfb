"""Benchmark: our chunked CPU selective scan vs mambapy's pure-PyTorch parallel scan (pscan).

Each (implementation, length) case runs forward + backward in fresh subprocesses. Time: best
of ``--repeats`` runs (the machine may be shared). Peak memory, from a separate run: the
process's peak RSS (``VmHWM``, reset after the warm-up) minus its RSS just before the step,
so it counts every allocation the scan makes (activations, saved tensors, gradients) and
nothing from other cases; that run sets ``MALLOC_MMAP_THRESHOLD_=65536`` so that glibc returns
freed tensors to the OS (RSS then follows live memory; it is not used for timing because every
medium-sized allocation then costs page faults). Both implementations compute the same thing:
``y_t = C_t . h_t`` with ``h_t = exp(dt_t A) h_{t-1} + dt_t B_t x_t`` (no D skip, no gate),
d_inner 512, d_state 16, batch 1, float32, Mamba-like dt (softplus around a log-uniform
[1e-3, 0.1] init).

    python bench/scan.py                       # L = 10k, 20k on 2 threads
    python bench/scan.py --lengths 1000,10000 --threads 1

"ours" is the default training mode (blocks recomputed in the backward pass: activation
checkpointing), "ours_nockpt" keeps the block activations instead (what the streamed Mamba
layer uses inside its short segments). Prints a table and ends with one JSON line
(speedup_fwdbwd_<k>k = mambapy time / ours, mem_ratio_<k>k = our peak / mambapy's peak, the
same with an ``_nockpt`` suffix, plus the raw figures). Needs the ``bench`` extra
(mambapy, psutil).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time

import torch
from _memory import peak_rss, reset_peak_rss

IMPLS = ("ours", "ours_nockpt", "mambapy")


def make_inputs(length: int, d: int, n: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Scan inputs in time-last layout (batch 1)."""
    g = torch.Generator().manual_seed(seed)
    lo, hi = math.log(1e-3), math.log(0.1)
    dt0 = torch.exp(torch.rand(d, 1, generator=g) * (hi - lo) + lo)
    bias = dt0 + torch.log(-torch.expm1(-dt0))  # softplus^-1
    return {
        "u": torch.randn(1, d, length, generator=g),
        "dt": torch.nn.functional.softplus(0.5 * torch.randn(1, d, length, generator=g) + bias),
        "A": -torch.arange(1, n + 1, dtype=torch.float32).repeat(d, 1),
        "B": torch.randn(1, n, length, generator=g),
        "C": torch.randn(1, n, length, generator=g),
    }


def ours(x: dict[str, torch.Tensor], checkpoint: bool = True) -> torch.Tensor:
    """Our scan; ``checkpoint`` (the default) recomputes blocks in backward instead of
    keeping their activations."""
    from wsirisk.models.scan import chunked_scan

    return chunked_scan(x["u"], x["dt"], x["A"], x["B"], x["C"], checkpoint=checkpoint)


def to_mambapy_layout(x: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """mambapy works time-major: x, dt (B, L, D); B, C (B, L, N)."""
    out = {k: v.transpose(1, 2).contiguous() for k, v in x.items() if k != "A"}
    return {**out, "A": x["A"]}


def mambapy_scan(x: dict[str, torch.Tensor]) -> torch.Tensor:
    """mambapy's ``MambaBlock.selective_scan`` (parallel version) without the D term."""
    from mambapy.pscan import pscan

    delta_a = torch.exp(x["dt"].unsqueeze(-1) * x["A"])  # (B, L, D, N)
    delta_b = x["dt"].unsqueeze(-1) * x["B"].unsqueeze(2)
    bx = delta_b * x["u"].unsqueeze(-1)
    hs = pscan(delta_a, bx)
    return (hs @ x["C"].unsqueeze(-1)).squeeze(3)  # (B, L, D)


def worker(impl: str, length: int, d: int, n: int, threads: int, repeats: int) -> dict[str, float]:
    """Forward + backward ``repeats`` times in this process: best times (s), peak RSS (MiB)."""
    import psutil

    torch.set_num_threads(threads)
    fns = {"ours": ours, "ours_nockpt": lambda v: ours(v, False), "mambapy": mambapy_scan}
    fn = fns[impl]
    prep = to_mambapy_layout if impl == "mambapy" else (lambda v: v)
    warm = {k: v.requires_grad_() for k, v in prep(make_inputs(256, d, n)).items()}
    fn(warm).square().sum().backward()  # load kernels, allocator warm-up
    x = {k: v.requires_grad_() for k, v in prep(make_inputs(length, d, n)).items()}
    reset_peak_rss()
    rss0 = psutil.Process().memory_info().rss
    fwd, bwd = [], []
    for _ in range(repeats):
        for v in x.values():
            v.grad = None
        t0 = time.perf_counter()
        y = fn(x)
        t1 = time.perf_counter()
        y.square().sum().backward()
        fwd.append(t1 - t0)
        bwd.append(time.perf_counter() - t1)
        del y
    peak = peak_rss()
    i = min(range(repeats), key=lambda k: fwd[k] + bwd[k])
    return {"fwd_s": fwd[i], "bwd_s": bwd[i], "peak_mib": max(peak - rss0, 0) / 2**20}


def parity(d: int, n: int, length: int = 300) -> float:
    """Max relative difference of outputs and input gradients between the two scans."""
    x = {k: v.requires_grad_() for k, v in make_inputs(length, d, n, seed=1).items()}
    xm = {k: v.detach().clone().requires_grad_() for k, v in to_mambapy_layout(x).items()}
    y, ym = ours(x), mambapy_scan(xm)
    w = torch.randn(y.shape, generator=torch.Generator().manual_seed(2))
    (y * w).sum().backward()
    (ym * w.transpose(1, 2)).sum().backward()
    pairs = [(y.detach(), ym.detach().transpose(1, 2))]
    pairs += [(x[k].grad, xm[k].grad if k == "A" else xm[k].grad.transpose(1, 2)) for k in x]
    return max(float((a - b).abs().max() / b.abs().max().clamp(min=1e-12)) for a, b in pairs)


def _worker_run(impl: str, length: int, args: argparse.Namespace, memory: bool) -> dict:
    cmd = [sys.executable, __file__, "--worker", impl, "--lengths", str(length)]
    cmd += ["--d-inner", str(args.d_inner), "--d-state", str(args.d_state)]
    cmd += ["--threads", str(args.threads), "--repeats", str(1 if memory else args.repeats)]
    env = dict(os.environ)
    if memory:  # freed tensors go straight back to the OS, so RSS follows live memory
        env["MALLOC_MMAP_THRESHOLD_"] = "65536"
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode:
        return {"error": float("nan"), "stderr": proc.stderr[-300:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_case(impl: str, length: int, args: argparse.Namespace) -> dict[str, float]:
    """Times from a run with glibc's default allocator settings (best of ``--repeats``),
    peak memory from a separate run with a fixed mmap threshold (see module docstring)."""
    timed = _worker_run(impl, length, args, memory=False)
    if "error" in timed:
        return timed
    mem = _worker_run(impl, length, args, memory=True)
    if "error" in mem:
        return mem
    return {**timed, "peak_mib": mem["peak_mib"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lengths", default="10000,20000")
    ap.add_argument("--d-inner", type=int, default=512)
    ap.add_argument("--d-state", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2, help="best of N (shared machines)")
    ap.add_argument("--worker", choices=IMPLS, help=argparse.SUPPRESS)
    args = ap.parse_args()
    lengths = [int(v) for v in args.lengths.split(",")]
    if args.worker:
        res = worker(
            args.worker, lengths[0], args.d_inner, args.d_state, args.threads, args.repeats
        )
        print(json.dumps(res))
        return
    torch.set_num_threads(args.threads)
    summary: dict[str, object] = {
        "d_inner": args.d_inner,
        "d_state": args.d_state,
        "threads": args.threads,
        "repeats": args.repeats,
        "parity_max_rel_diff": parity(args.d_inner, args.d_state),
    }
    print(f"{'L':>7} {'impl':>11} {'fwd s':>8} {'bwd s':>8} {'total s':>8} {'peak MiB':>9}")
    for length in lengths:
        res = {impl: run_case(impl, length, args) for impl in IMPLS}
        for impl, r in res.items():
            if "error" in r:
                print(f"{length:>7} {impl:>11} failed: {r['stderr']}")
                continue
            total = r["fwd_s"] + r["bwd_s"]
            print(
                f"{length:>7} {impl:>11} {r['fwd_s']:8.2f} {r['bwd_s']:8.2f} {total:8.2f} "
                f"{r['peak_mib']:9.0f}"
            )
            summary[f"{impl}_fwdbwd_s_{length}"] = round(total, 3)
            summary[f"{impl}_peak_mib_{length}"] = round(r["peak_mib"], 1)
        tag = f"{length // 1000}k" if length % 1000 == 0 else str(length)
        for impl, suffix in (("ours", ""), ("ours_nockpt", "_nockpt")):
            if "error" in res[impl] or "error" in res["mambapy"]:
                continue
            t_ours = res[impl]["fwd_s"] + res[impl]["bwd_s"]
            t_mpy = res["mambapy"]["fwd_s"] + res["mambapy"]["bwd_s"]
            summary[f"speedup_fwdbwd_{tag}{suffix}"] = round(t_mpy / t_ours, 2)
            summary[f"mem_ratio_{tag}{suffix}"] = round(
                res[impl]["peak_mib"] / max(res["mambapy"]["peak_mib"], 1e-9), 4
            )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
