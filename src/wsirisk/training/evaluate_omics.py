"""`wsirisk evaluate-omics`: K-fold CV of an omics-only model on a PORPOISE/MCAT table.

    wsirisk evaluate-omics tcga_blca_all_clean.csv.zip --splits splits/tcga_blca \\
        --signatures signatures.csv --model me_mamba

The table is grouped into the six categories by the same builder as ``wsirisk omics`` (into a
temporary omics.zarr); bins and the omics scaler are fit on each training fold. Per-epoch logs
go to stderr; the LAST stdout line is one JSON object (cindex_folds, cindex_mean, cindex_std,
model, table, seconds, ...). The C-index of a fold is the last epoch's (no selection on val).

Two options never look at the validation fold either: ``--seeds K`` trains K models per fold
(seeds ``seed .. seed+K-1``) and scores the mean of their risks; ``--inner-val FRAC`` holds out
a stratified, seeded (member seed) FRAC of the training fold, trains on the rest and keeps the
weights of the epoch with the best C-index on that inner set (first such epoch on ties).

Cox-loss models (``--model m4survive``, or ``--loss cox``) train on batch-level risk sets;
``--batch-size`` then defaults to 16 (M4Survive's batch) instead of 1.

``--model coxnet`` fits the linear reference instead: an elastic-net Cox model on the omics
z-scored by the training fold's scaler (``standardize`` is forced on), penalty chosen on COADREAD
(``wsirisk.training.linear``).

Without ``--inner-val`` each member's info also has ``val_cindex_by_epoch``, the validation
C-index after every epoch: a diagnostic for choosing the epoch count on a *tuning* cohort; picking
it on the reported cohort's own curve would be selection on validation.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wsirisk.training.data import FoldData, Sample, inner_split, prepare_fold
from wsirisk.training.linear import COXNET, COXNET_DEFAULTS, coxnet_options, fit_coxnet
from wsirisk.training.metrics import censoring_warning, cindex, mean_std
from wsirisk.training.splits import read_split_dir
from wsirisk.training.train import best_epoch
from wsirisk.training.trainer import TrainOptions, predict_samples, train_fold

# Defaults chosen on TCGA-COADREAD (not one of the reported cohorts; docs/results.md) for the SNN:
# Adam, one patient per step, 20 epochs, NaNs imputed with training-fold means but no z-scoring
# (z-scoring rare binary mutations hurt there). The default model is ME-Mamba (genomics expert
# only here), the system this project is built around; `--model snn` gives the SNN.
DEFAULTS: dict[str, Any] = {
    "model": "me_mamba",
    "epochs": 20,
    "optimizer": "adam",
    "lr": 2e-4,
    "weight_decay": 1e-5,
    "batch_size": 1,
    "grad_accum": 1,
    "n_bins": 4,
    "dropout": 0.25,
    "alpha": 0.0,
    "l1": 0.0,
    "standardize": False,
    "clip": None,
    "seed": 0,
    "device": "cpu",
    "seeds": 1,
    "inner_val": None,
}


COX_BATCH_SIZE = 16  # M4Survive's batch (its section 3): the Cox loss's risk set


def build_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("table", type=Path, help="PORPOISE/MCAT CSV (.csv or .csv.zip)")
    parser.add_argument("--splits", type=Path, required=True, help="dir with splits_<k>.csv")
    parser.add_argument("--signatures", type=Path, required=True, help="MCAT signatures.csv")
    parser.add_argument(
        "--model",
        default=DEFAULTS["model"],
        help="a model of the zoo (snn, me_mamba, ...) or coxnet: elastic-net Cox reference, "
        f"penalty and l1_ratio via --model-kwargs (default {json.dumps(COXNET_DEFAULTS)})",
    )
    parser.add_argument("--n-folds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=DEFAULTS["epochs"])
    parser.add_argument("--optimizer", choices=["adam", "adamw", "sgd", "radam"], default="adam")
    parser.add_argument("--balanced", action="store_true", help="MCAT class-balanced sampling")
    parser.add_argument("--lr", type=float, default=DEFAULTS["lr"])
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--weight-decay", type=float, default=DEFAULTS["weight_decay"])
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="patients per mini-batch (default 1; 16 for a Cox-loss model)",
    )
    parser.add_argument(
        "--loss",
        choices=["auto", "nll", "cox"],
        default="auto",
        help="survival loss (auto: the model's own, cox for m4survive)",
    )
    parser.add_argument("--grad-accum", type=int, default=DEFAULTS["grad_accum"])
    parser.add_argument("--n-bins", type=int, default=DEFAULTS["n_bins"])
    parser.add_argument("--dropout", type=float, default=DEFAULTS["dropout"])
    parser.add_argument("--alpha", type=float, default=DEFAULTS["alpha"], help="nll alpha")
    parser.add_argument("--l1", type=float, default=DEFAULTS["l1"], help="L1 on weights")
    parser.add_argument(
        "--standardize",
        action="store_true",
        help="z-score omics with the training fold's mean/std (default: impute NaNs only)",
    )
    parser.add_argument("--clip", type=float, default=None, help="clip scaled omics to +-CLIP")
    parser.add_argument("--seed", type=int, default=DEFAULTS["seed"])
    parser.add_argument(
        "--seeds", type=int, default=DEFAULTS["seeds"], help="ensemble of K seeds per fold"
    )
    parser.add_argument(
        "--inner-val",
        type=float,
        default=DEFAULTS["inner_val"],
        metavar="FRAC",
        help="early stopping on a held-out FRAC of the training fold (default: off)",
    )
    parser.add_argument("--device", default=DEFAULTS["device"])
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument(
        "--model-kwargs", default="{}", help="JSON object passed to build_model (ablations)"
    )


def options_from_args(args: argparse.Namespace) -> TrainOptions:
    from wsirisk.models import declared_loss

    loss = getattr(args, "loss", "auto")
    batch_size = args.batch_size
    if batch_size is None:
        cox = loss == "cox" or (loss == "auto" and declared_loss(args.model) == "cox")
        batch_size = COX_BATCH_SIZE if cox else DEFAULTS["batch_size"]
    return TrainOptions.from_dict(
        {
            "model": args.model,
            "seed": args.seed,
            "epochs": args.epochs,
            "optimizer": args.optimizer,
            "lr": args.lr,
            "momentum": args.momentum,
            "weight_decay": args.weight_decay,
            "batch_size": batch_size,
            "grad_accum": args.grad_accum,
            "n_bins": args.n_bins,
            "dropout": args.dropout,
            "device": args.device,
            "alpha": args.alpha,
            "l1": args.l1,
            "standardize": args.standardize,
            "clip": args.clip,
            "balanced": args.balanced,
            "loss": loss,
            "model_kwargs": json.loads(args.model_kwargs),
        },
        "evaluate-omics arguments",
    )


def fit_member(
    data: FoldData, opts: TrainOptions, inner_val: float | None, log: Callable[[str], None]
) -> tuple[np.ndarray, list[Sample], dict[str, Any]]:
    """Train one model on ``data.train``; its risks on ``data.val``, those patients, and info.

    With ``inner_val``, the model is fit on part of ``data.train`` and its weights are those of
    the best epoch on the rest (bins and scaler stay those of the whole training fold).
    ``opts.model == "coxnet"`` fits the elastic-net Cox reference instead (no epochs, no seed).
    """
    if opts.model == COXNET:
        train = [s for s in data.train if s.omics is not None]
        val = [s for s in data.val if s.omics is not None]
        fit = fit_coxnet(train, **coxnet_options(opts.model_kwargs))
        log(f"coxnet {fit.info()}")
        return fit.risk(val), val, fit.info()
    if not inner_val:
        result = train_fold(data, opts, None, log)
        curve = [h["val_cindex"] for h in result.history]  # for choosing epochs on a tuning cohort
        info = {"best": best_epoch(result.history), "val_cindex_by_epoch": curve}
        return result.val.risk, result.val_samples, info
    fit, stop = inner_split(data.train, inner_val, opts.seed)
    best: dict[str, Any] = {"epoch": None, "inner_cindex": None}
    state: dict[str, torch.Tensor] = {}

    def keep(record: dict[str, Any], model: torch.nn.Module) -> None:
        c = record["val_cindex"]
        if c is not None and (best["inner_cindex"] is None or c > best["inner_cindex"]):
            best.update(epoch=record["epoch"], inner_cindex=c)
            state.update({k: v.detach().clone() for k, v in model.state_dict().items()})

    inner = dataclasses.replace(data, train=fit, val=stop)
    result = train_fold(inner, opts, None, log, on_epoch=keep)
    if state:  # else (inner C-index never defined): the last epoch
        result.model.load_state_dict(state)
    pred, val = predict_samples(result.model, data.val, result.device, data.bins.n_bins)
    return pred.risk, val, {"inner_best": best, "n_inner": [len(fit), len(stop)]}


def evaluate(
    table: Path,
    split_dir: Path,
    signatures: Path,
    opts: TrainOptions,
    n_folds: int = 5,
    seeds: int = 1,
    inner_val: float | None = None,
) -> dict[str, Any]:
    """Cross-validate ``opts.model`` on the omics of ``table``; return the summary dict."""
    if seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {seeds}")
    if inner_val is not None and not 0 <= inner_val < 1:
        raise ValueError(f"inner_val must be in [0, 1) (0 = off), got {inner_val}")
    if opts.model == COXNET:
        coxnet_options(opts.model_kwargs)  # fail before the table is built
        if seeds != 1 or inner_val:
            raise ValueError(
                "coxnet is deterministic and has no epochs: use --seeds 1, no --inner-val"
            )
        opts = dataclasses.replace(opts, standardize=True)  # a penalised linear model needs z
    from wsirisk.omics.build import build_omics
    from wsirisk.omics.load import load_omics

    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="wsirisk-eval-") as tmp:
        store, qc = Path(tmp) / "omics.zarr", Path(tmp) / "omics.tsv"
        build_omics(table, signatures, store, qc)
        omics = load_omics(store)
    msg = censoring_warning(omics.survival_months, omics.censorship)
    if msg:
        warnings.warn(f"{table}: {msg}", stacklevel=1)
    folds, dropped = read_split_dir(split_dir, n_folds, set(omics.patients))
    values: list[float | None] = []
    reasons: list[str | None] = []
    members: list[list[float | None]] = []
    infos: list[list[dict[str, Any]]] = []
    for k, fold in enumerate(folds):
        data = prepare_fold(omics, fold, opts.n_bins, opts.standardize, clip=opts.clip)
        risks, fold_members, fold_infos = [], [], []
        for seed in range(opts.seed, opts.seed + seeds):
            tag = f"[{opts.model} fold {k} seed {seed}{' inner-val' if inner_val else ''}]"

            def log(line: str, tag: str = tag) -> None:
                print(f"{tag} {line}", file=sys.stderr, flush=True)

            member_opts = dataclasses.replace(opts, seed=seed)
            risk, val, info = fit_member(data, member_opts, inner_val, log)
            months, cens = [s.months for s in val], [s.censorship for s in val]
            fold_members.append(cindex(months, risk, cens).value)
            fold_infos.append(info)
            risks.append(risk)
            extra = f" (inner {info['inner_best']})" if inner_val else ""
            log(f"val C-index of this model {fold_members[-1]}{extra}")
        c = cindex(months, np.mean(risks, axis=0), cens)
        values.append(c.value)
        reasons.append(c.reason)
        members.append(fold_members)
        infos.append(fold_infos)
        what = "last epoch" if not inner_val else "inner-val epoch"
        print(
            f"[{opts.model} fold {k}] val C-index ({what}, {seeds} seed(s)) "
            f"{c.value if c.value is not None else c.reason}",
            file=sys.stderr,
            flush=True,
        )
    mean, std = mean_std(values)
    return {
        "model": opts.model,
        "table": str(table),
        "splits": str(split_dir),
        "cindex_folds": values,
        "cindex_mean": mean,
        "cindex_std": std,
        "cindex_reasons": reasons,
        "cindex_epoch": epoch_label(opts.model, inner_val),
        "seeds": seeds,
        "inner_val": inner_val,
        "member_cindex_folds": members,
        "best_epoch_val_cindex": [i[0].get("best") for i in infos],  # first seed, optimistic
        "members": infos,
        "n_patients": len(omics.patients),
        "n_dropped_from_splits": [len(d) for d in dropped],
        "omics_sizes": [int(v.shape[1]) for v in omics.groups.values()],
        "options": opts.to_dict(),
        "seconds": round(time.perf_counter() - start, 1),
        "torch_version": torch.__version__,
    }


def epoch_label(model: str, inner_val: float | None) -> str:
    """Which weights a fold's C-index is scored with."""
    if model == COXNET:
        return "not applicable (closed-form fit)"
    return "best on inner validation" if inner_val else "last"


def run(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    opts = options_from_args(args)
    summary = evaluate(
        args.table, args.splits, args.signatures, opts, args.n_folds, args.seeds, args.inner_val
    )
    print(json.dumps(summary, sort_keys=True))
    return 0
