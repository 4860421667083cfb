"""Pilot on a development cohort: validation C-index after every epoch, per model and fold.

    python bench/multimodal_pilot.py --weights 1,0,0,0 --models abmil,me_mamba --folds-run 0,1

The protocol of ``bench/multimodal.py`` (Adam, lr 5e-4, weight decay 1e-5, batch 1, width 64,
256 training patches) on a cohort generated with ``--seed`` (default **1**: never the seed the
benchmark reports, 0), training and validation bags taken from the same fixed 2,048-patch
subsample (as the protocol pilot in docs/benchmarks-models.md did).  Each model runs in its own
process (``--jobs`` at a time, one thread each).  Prints one line per model, fold and epoch,
then one JSON line: per model the validation C-index per epoch (mean over the folds run) and
the oracle's on the same folds.  For choosing and diagnosing on a cohort that is not reported.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from multimodal import CappedBank, ensure_cohort, parse_weights, train_options  # noqa: E402

from wsirisk.benchmark.cohort import CohortSpec  # noqa: E402


def worker(name: str, cohort: Path, proto: dict[str, Any]) -> dict[str, Any]:
    """Train ``name`` on the folds asked for; every epoch's validation C-index."""
    import pandas as pd
    import torch

    from wsirisk.omics.load import load_omics
    from wsirisk.training.data import FeatureBank, prepare_fold
    from wsirisk.training.metrics import cindex
    from wsirisk.training.splits import read_splits
    from wsirisk.training.trainer import train_fold

    torch.set_num_threads(1)
    omics = load_omics(cohort / "omics.zarr")
    folds = read_splits(cohort / "splits.zarr")["folds"]
    truth = pd.read_csv(cohort / "truth.csv").set_index("case_id")
    bank = CappedBank(FeatureBank(sorted((cohort / "features").glob("*.zarr")), cache_mb=1e6),
                      proto["eval_patches"], proto["seed"])  # fmt: skip
    opts = train_options(name, proto, [int(v.shape[1]) for v in omics.groups.values()])
    out: dict[str, Any] = {"model": name, "folds": {}}
    for k in proto["folds_run"]:
        data = prepare_fold(omics, folds[k], opts.n_bins, opts.standardize, bank, clip=opts.clip)

        def log(line: str, k: int = k) -> None:
            print(f"[{name} fold {k}] {line}", file=sys.stderr, flush=True)

        result = train_fold(data, opts, bank, log=log)
        val = [s.patient for s in data.val]
        rows = truth.loc[val]
        months = [s.months for s in data.val]
        cens = [s.censorship for s in data.val]
        out["folds"][k] = {"val_cindex": [h["val_cindex"] for h in result.history],
                           "oracle_cindex": cindex(months, rows["oracle_risk"], cens).value,
                           "seconds": result.seconds}  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="abmil,me_mamba")
    ap.add_argument("--weights", default="0.5,0.5,1.5,0.5")
    ap.add_argument("--patients", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--folds-run", default="0,1", help="which of the 5 folds to train")
    ap.add_argument("--max-patches", type=int, default=256)
    ap.add_argument("--eval-patches", type=int, default=2048)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--options", default="{}", help="JSON: more TrainOptions")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--cohort-root", type=Path, default=Path("results/bench/multimodal"))
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--cohort-dir", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--protocol", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.cohort_dir, json.loads(args.protocol))))
        return
    if args.seed == 0:
        raise SystemExit("seed 0 is the reported benchmark cohort: pilot on another seed")
    spec = CohortSpec(n_patients=args.patients, seed=args.seed,
                      weights=parse_weights(args.weights))  # fmt: skip
    cohort, _ = ensure_cohort(spec, 5, args.cohort_root)
    proto = {"seed": args.seed, "epochs": args.epochs, "lr": args.lr,
             "folds_run": [int(f) for f in args.folds_run.split(",")],
             "max_patches": args.max_patches, "eval_patches": args.eval_patches,
             "width": args.width, "cox_batch": 16,
             "options": json.loads(args.options)}  # fmt: skip
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    results, running = {}, []
    while names or running:
        while names and len(running) < args.jobs:
            name = names.pop(0)
            cmd = [sys.executable, __file__, "--worker", name, "--cohort-dir", str(cohort),
                   "--protocol", json.dumps(proto)]  # fmt: skip
            running.append((name, subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)))
        name, proc = running.pop(0)
        stdout, _ = proc.communicate()
        if proc.returncode:
            print(f"[{name}] failed (exit {proc.returncode})", file=sys.stderr)
            continue
        res = json.loads(stdout.strip().splitlines()[-1])
        folds = list(res["folds"].values())
        n_ep = len(folds[0]["val_cindex"])
        results[name] = {
            "val_cindex_by_epoch": [
                round(sum(f["val_cindex"][e] for f in folds) / len(folds), 4) for e in range(n_ep)
            ],  # fmt: skip
            "oracle_cindex": round(sum(f["oracle_cindex"] for f in folds) / len(folds), 4),
            "seconds": round(sum(f["seconds"] for f in folds), 1),
        }
        print(name, json.dumps(results[name]), flush=True)
    print(json.dumps({"weights": args.weights, "seed": args.seed, "patients": args.patients,
                      "folds_run": proto["folds_run"], "lr": args.lr, "models": results}))  # fmt: skip


if __name__ == "__main__":
    main()
