"""Benchmark: every zoo model on a feature-level cohort with known truth, side by side.

The cohort comes from :mod:`wsirisk.benchmark.cohort` (risk = rare-phenotype prevalence +
genomic score + prevalence x genomic-score interaction + the phenotype's spatial arrangement,
weights ``--weights``; Cox survival with censoring; the oracle risk saved). It is written once
per configuration as the project's own artifacts (omics.zarr, features stores, splits.zarr) and
reused by later runs.

Each model runs in its own subprocess (``--jobs`` at a time, longest first, ``--threads`` torch
threads each) under the same protocol: the project's trainer
(:func:`wsirisk.training.data.prepare_fold` + :func:`wsirisk.training.trainer.train_fold`),
the cohort's stratified ``--folds`` folds, seed ``--seed``, one recipe for every model (Adam,
``--lr``, ``--epochs``, weight decay 1e-5, batch 1, training bags capped at ``--max-patches``
random patches by the trainer; a model whose ``default_loss`` is "cox" gets ``--cox-batch``
patients per batch, since a one-patient risk set has no gradient), the **last** epoch scored
(nothing is selected on validation). The trainer's per-epoch validation pass is skipped (the
fold is trained with an empty validation list, then scored once with
:func:`wsirisk.training.trainer.predict_samples`). The defaults (lr 5e-4, 10 epochs, 200
patients) were chosen once on a separate cohort (seed 1) with the cheap baselines, never on
this benchmark's results: see docs/benchmarks-models.md.

Protocol choices for a 2-core CPU, stated once and applied to every model alike:

- ``--width`` (default 64): each model's width parameters (``dim``, ``hidden``, ``trans_dim``,
  whichever its class takes) are set to this value; the cohort's features are 64-d. ``0``
  keeps every model's package default (256-512, several times slower).
- ``--eval-patches`` (default 2048): a validation bag is a fixed seeded subsample of at most
  this many patches (spatial order kept), the same for every model; ``0`` scores every tile.

Read-outs per model: C-index mean +- std over folds (Harrell, last epoch) and its ratio to the
oracle's on the same validation patients; the C-index again with pathology, then omics,
removed for a seeded half of each validation fold (the same half for every model; a patient
the model cannot score without that modality gets the median of the fold's other risks, i.e.
no information); training seconds per epoch (one fold's epoch: ~(1 - 1/folds) x patients
forward+backward passes) and peak memory (peak RSS of the worker above its RSS once every bag
is cached; glibc keeps freed memory, so it is an upper bound). When
:mod:`wsirisk.training.compare` is importable: mean over folds of the time-dependent AUC
(quartiles of the training fold's death times) and of the integrated Brier score (17 death-time
quantiles, discrete-time curves as steps), the pooled out-of-fold C-index with a bootstrap 95 %
interval, and a fold-paired comparison against ME-Mamba (Wilcoxon, paired t); otherwise those
fields are null. Two references: the oracle (the true risk) and a Cox model on the planted
summaries computed with knowledge no model has (:func:`structured_reference`): what the data
allow with the right features.

    python bench/multimodal.py                              # every model, default cohort
    python bench/multimodal.py --models snn,abmil --epochs 2 --patients 60 --bag-max 3000

Ends with one JSON line: {"models": {name: {"cindex_mean", "cindex_std", "oracle_ratio",
"missing_path_cindex", "missing_omics_cindex", "s_per_epoch", "peak_mib", ...}},
"oracle_cindex", "config", ...}.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import inspect
import json
import math
import os
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from wsirisk.benchmark.cohort import (
    COHORT_FORMAT,
    WEIGHT_NAMES,
    CohortSpec,
    parse_weights,
    read_summary,
)

WIDTH_PARAMS = ("dim", "hidden", "trans_dim", "d_model", "hidden_dim", "embed_dim")
DEFAULT_WEIGHTS = "0.5,0.5,1.5,0.5"  # the interaction term carries most of the risk
REFERENCE = "me_mamba"
# CPU seconds per training step at width 64, 256 patches (measured; orders the launches)
COST_HINT = {"survmamba": 0.37, "me_mamba": 0.24, "adamhf": 0.08, "transmil": 0.021}
COST_HINT.update({"mcat": 0.018, "m4survive": 0.014, "abmil_snn": 0.006, "abmil": 0.004})
COMPARE_FIELDS = (
    "td_auc_mean",
    "ibs_mean",
    "cindex_pooled",
    "cindex_pooled_ci95",
    "vs_me_mamba",
)


# ---- the worker (one model, every fold) ----------------------------------------------------
class CappedBank:
    """A FeatureBank view whose bags are a fixed seeded subsample of at most ``cap`` patches
    (sorted, so spatial order is kept); ``cap`` 0 = the whole bag."""

    def __init__(self, bank: Any, cap: int, seed: int) -> None:
        self.bank, self.cap, self.seed = bank, cap, seed
        self.dim = bank.dim
        self._cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def slides(self, patient: str) -> list[Any]:
        return self.bank.slides(patient)

    def load_with_coords(self, patient: str) -> tuple[np.ndarray, np.ndarray]:
        if patient not in self._cache:
            bag, where = self.bank.load_with_coords(patient)
            if self.cap and bag.shape[0] > self.cap:
                rng = np.random.default_rng([self.seed, zlib.crc32(patient.encode())])
                keep = np.sort(rng.choice(bag.shape[0], size=self.cap, replace=False))
                bag, where = bag[keep], where[keep]
            self._cache[patient] = (bag, where)
        return self._cache[patient]


def model_setup(name: str, width: int, omics_sizes: list[int]) -> tuple[dict[str, int], bool]:
    """``({param: width}`` for the width parameters the model's class takes (none if width is
    0), whether the model trains with a Cox loss (``default_loss == "cox"``: batch risk sets)."""
    from wsirisk.models import build_model

    model = build_model(name, path_dim=8, omics_sizes=omics_sizes, n_bins=4)
    params = inspect.signature(type(model).__init__).parameters
    kwargs = {p: width for p in WIDTH_PARAMS if p in params} if width else {}
    return kwargs, getattr(model, "default_loss", "nll") == "cox"


def train_options(name: str, proto: dict[str, Any], omics_sizes: list[int]) -> Any:
    """The protocol's TrainOptions for one model (``--options``, then ``--model-options``)."""
    from wsirisk.training.trainer import TrainOptions

    model_kwargs, cox = model_setup(name, proto["width"], omics_sizes)
    options = {
        "model": name,
        "seed": proto["seed"],
        "epochs": proto["epochs"],
        "optimizer": "adam",
        "lr": proto["lr"],
        "weight_decay": 1e-5,
        "max_patches": proto["max_patches"] or None,
        "device": proto.get("device", "cpu"),
        "model_kwargs": model_kwargs,
        **({"batch_size": proto["cox_batch"]} if cox else {}),
        **proto["options"],
        **proto.get("model_options", {}).get(name, {}),
    }
    return TrainOptions.from_dict(options, "bench options")


def _score(
    model: Any, samples: list[Any], bank: Any, n_bins: int, device: str
) -> tuple[np.ndarray, Any]:
    """Risks aligned with ``samples``; patients the model cannot score get the median risk."""
    from wsirisk.training.trainer import predict_samples

    pred, kept = predict_samples(model, samples, device, n_bins, bank)
    by_patient = {s.patient: float(r) for s, r in zip(kept, pred.risk, strict=True)}
    fill = float(np.median(pred.risk)) if len(kept) else 0.0
    return np.array([by_patient.get(s.patient, fill) for s in samples]), pred


def _stress(
    model: Any,
    val: list[Any],
    full: np.ndarray,
    half: set[str],
    drop: str,
    bank: Any,
    n_bins: int,
    device: str,
) -> np.ndarray:
    """Risks with one modality removed for the patients in ``half`` (others: ``full``)."""
    changed = [
        dataclasses.replace(s, **({"slides": []} if drop == "pathology" else {"omics": None}))
        for s in val
        if s.patient in half
    ]
    risks = {s.patient: float(r) for s, r in zip(val, full, strict=True)}
    if changed:
        from wsirisk.training.trainer import predict_samples

        pred, kept = predict_samples(model, changed, device, n_bins, bank)
        risks.update({s.patient: float(r) for s, r in zip(kept, pred.risk, strict=True)})
        fill = float(np.median(list(risks.values())))
        scored = {s.patient for s in kept}
        risks.update({s.patient: fill for s in changed if s.patient not in scored})
    return np.array([risks[s.patient] for s in val])


def _compare_fold(
    compare: Any, data: Any, val: list[Any], risk: np.ndarray, survival: np.ndarray
) -> dict[str, float | None]:
    train_m = np.array([s.months for s in data.train])
    train_c = np.array([s.censorship for s in data.train])
    months = np.array([s.months for s in val])
    cens = np.array([s.censorship for s in val])
    auc = compare.time_dependent_auc(
        train_m, train_c, months, cens, risk, compare.event_time_quantiles(train_m, train_c)
    )["mean_auc"]
    ibs_times = compare.event_time_quantiles(train_m, train_c, compare.IBS_QUANTILES)
    ibs = compare.integrated_brier(
        train_m, train_c, months, cens, survival, data.bins.edges_months, ibs_times
    )
    return {"td_auc": auc, "ibs": ibs}


def run_worker(name: str, cohort_dir: Path, proto: dict[str, Any]) -> dict[str, Any]:
    """Train and score one model on every fold; return per-fold figures and pooled arrays."""
    import pandas as pd
    import psutil
    import torch
    from _memory import peak_rss, reset_peak_rss

    from wsirisk.omics.load import load_omics
    from wsirisk.training.data import FeatureBank, prepare_fold
    from wsirisk.training.metrics import cindex
    from wsirisk.training.splits import read_splits
    from wsirisk.training.trainer import train_fold

    try:
        from wsirisk.training import compare
    except ImportError:
        compare = None
    torch.set_num_threads(proto["threads"])
    omics = load_omics(cohort_dir / "omics.zarr")
    folds = read_splits(cohort_dir / "splits.zarr")["folds"]
    truth = pd.read_csv(cohort_dir / "truth.csv").set_index("case_id")
    bank = FeatureBank(sorted((cohort_dir / "features").glob("*.zarr")), cache_mb=1e6)
    eval_bank = CappedBank(bank, proto["eval_patches"], proto["seed"])
    for patient in omics.patients:  # every bag cached: time and memory exclude disk reads
        eval_bank.load_with_coords(patient)
    sizes = [int(v.shape[1]) for v in omics.groups.values()]
    opts = train_options(name, proto, sizes)
    device = opts.device
    modalities: list[str] = []
    rss0 = psutil.Process().memory_info().rss
    reset_peak_rss()
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    folds_out, pooled = [], {"months": [], "censorship": [], "risk": []}
    train_s = eval_s = 0.0
    for k, fold in enumerate(folds):
        data = prepare_fold(omics, fold, opts.n_bins, opts.standardize, bank, clip=opts.clip)
        result = train_fold(dataclasses.replace(data, val=[]), opts, bank, log=lambda _: None)
        train_s += result.seconds
        modalities = sorted(result.model.modalities)
        t0 = time.perf_counter()
        val = data.val
        n_bins = data.bins.n_bins
        risk, pred = _score(result.model, val, eval_bank, n_bins, device)
        rng = np.random.default_rng([proto["seed"], k, 99])
        ids = sorted(s.patient for s in val)
        half = {ids[j] for j in rng.permutation(len(ids))[: len(ids) // 2]}
        no_path = _stress(result.model, val, risk, half, "pathology", eval_bank, n_bins, device)
        no_omics = _stress(result.model, val, risk, half, "genomics", eval_bank, n_bins, device)
        eval_s += time.perf_counter() - t0
        months = np.array([s.months for s in val])
        cens = np.array([s.censorship for s in val])

        def c(values: Any, months: np.ndarray = months, cens: np.ndarray = cens) -> float | None:
            return cindex(months, np.asarray(values, dtype=np.float64), cens).value

        rows = truth.loc[[s.patient for s in val]]
        record = {
            "fold": k,
            "n_val": len(val),
            "cindex": c(risk),
            "missing_path_cindex": c(no_path),
            "missing_omics_cindex": c(no_omics),
            "oracle_cindex": c(rows["oracle_risk"]),
            "oracle_pathology_cindex": c(rows["oracle_pathology"]),
            "oracle_omics_cindex": c(rows["oracle_omics"]),
            "oracle_additive_cindex": c(rows["oracle_additive"]),
            "train_s": round(result.seconds, 2),
        }
        full_scored = len(pred.risk) == len(val)
        if compare is not None and full_scored:
            record.update(_compare_fold(compare, data, val, risk, pred.survival))
        folds_out.append(record)
        pooled["months"] += months.tolist()
        pooled["censorship"] += cens.tolist()
        pooled["risk"] += risk.tolist()
        print(
            f"[{name}] fold {k}: C {_f(record['cindex'])} (oracle {_f(record['oracle_cindex'])})"
            f"  no-path {_f(record['missing_path_cindex'])}"
            f"  no-omics {_f(record['missing_omics_cindex'])}  train {result.seconds:.0f} s",
            file=sys.stderr,
            flush=True,
        )
    peak_mib = max(peak_rss() - rss0, 0) / 2**20
    if device.startswith("cuda"):  # the model's memory is on the GPU: its peak allocation
        peak_mib = torch.cuda.max_memory_allocated() / 2**20
    out: dict[str, Any] = {
        "model": name,
        "model_kwargs": opts.model_kwargs,
        "batch_size": opts.batch_size,
        "modalities": modalities,
        "folds": folds_out,
        "s_per_epoch": train_s / (len(folds) * opts.epochs),
        "eval_s": eval_s,
        "peak_mib": peak_mib,
        "compare": compare is not None,
    }
    if compare is not None:
        est, low, high = compare.bootstrap_cindex(
            pooled["months"], pooled["censorship"], pooled["risk"], n_boot=1000, seed=0
        )
        out["cindex_pooled"] = est
        out["cindex_pooled_ci95"] = None if low is None else [low, high]
    return out


def _f(value: float | None, digits: int = 3) -> str:
    return "  n/a" if value is None else f"{value:.{digits}f}"


# ---- a structure-aware reference -------------------------------------------------------------
def structured_reference(cohort: Path, spec: CohortSpec) -> dict[str, Any]:
    """Per-fold C-index of a Cox model on the summaries the generator plants, computed with
    knowledge no model has (the phenotype direction, which genes form each score): phenotype
    share (patches beyond half the shift along the direction), genomic and interaction scores
    (signed gene means), their product, and the log mean nearest-neighbour distance of the
    phenotype patches. What the data allow with the right features (lifelines, ridge 0.01)."""
    import pandas as pd
    from lifelines import CoxPHFitter

    from wsirisk.benchmark.cohort import (
        GENOMIC_DOWN,
        GENOMIC_UP,
        INTERACTION_GROUP,
        catalog,
        nearest_neighbour_um,
    )
    from wsirisk.features.io import load_features
    from wsirisk.training.metrics import cindex
    from wsirisk.training.splits import read_splits

    cat = catalog(spec)
    truth = pd.read_csv(cohort / "truth.csv").set_index("case_id")
    genes = pd.read_csv(cohort / "omics_table.csv").set_index("case_id")
    share, spread = [], []
    for slide in truth["slide_id"]:
        features, coords, _ = load_features(cohort / "features" / f"{slide}.zarr")
        hit = features.astype(np.float64) @ cat.direction > spec.phenotype_shift * spec.noise_sd / 2
        share.append(hit.mean())
        spread.append(math.log(nearest_neighbour_um(coords[hit]) if hit.sum() > 1 else 1e4))

    def score(category: str) -> np.ndarray:
        members = [g for g in cat.genes if g.category == category]
        cols = [np.sign(g.loading) * genes[f"{g.symbol}_rnaseq"] for g in members]
        return np.mean(cols, axis=0)

    x = pd.DataFrame(
        {
            "share": share,
            "genomic": (score(GENOMIC_UP) - score(GENOMIC_DOWN)) / math.sqrt(2.0),
            "interaction": score(INTERACTION_GROUP),
            "spread": spread,
        },
        index=truth.index,
    )
    x["product"] = (x["share"] - x["share"].mean()) * x["interaction"]
    x["T"], x["E"] = truth["survival_months"], 1 - truth["censorship"]
    values = []
    for fold in read_splits(cohort / "splits.zarr")["folds"]:
        cox = CoxPHFitter(penalizer=0.01).fit(x.loc[fold["train"]], "T", "E")
        val = x.loc[fold["val"]]
        risk = cox.predict_log_partial_hazard(val.drop(columns=["T", "E"])).to_numpy()
        values.append(cindex(val["T"], risk, 1 - val["E"]).value)
    return {"cindex_folds": values, "cindex_mean": float(np.mean(values))}


# ---- the driver ------------------------------------------------------------------------------
def cohort_dir_for(root: Path, spec: CohortSpec, n_folds: int) -> Path:
    tag = json.dumps({"spec": spec.to_dict(), "n_folds": n_folds}, sort_keys=True)
    return root / f"cohort-{hashlib.sha256(tag.encode()).hexdigest()[:12]}"


def ensure_cohort(spec: CohortSpec, n_folds: int, root: Path) -> tuple[Path, dict[str, Any]]:
    """The cohort directory for this spec, written if absent (cohort.json marks it complete)."""
    from wsirisk.benchmark.cohort import write_cohort

    out = cohort_dir_for(root, spec, n_folds)
    summary = read_summary(out)
    stale = summary is None or summary.get("format") != COHORT_FORMAT
    if stale or summary["spec"] != spec.to_dict() or summary["n_folds"] != n_folds:
        print(f"writing cohort {out} ...", file=sys.stderr, flush=True)
        summary = write_cohort(spec, out, n_folds)
    return out, summary


def launch(name: str, cohort: Path, proto: dict[str, Any]) -> subprocess.Popen:
    cmd = [sys.executable, __file__, "--worker", name, "--cohort-dir", str(cohort)]
    cmd += ["--protocol", json.dumps(proto)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)  # env (PYTHONPATH) inherited


def run_models(
    names: list[str], cohort: Path, proto: dict[str, Any], jobs: int
) -> dict[str, dict[str, Any]]:
    """Workers, ``jobs`` at a time; a failed model is reported and left out."""
    results: dict[str, dict[str, Any]] = {}
    pending = sorted(names, key=lambda n: -COST_HINT.get(n, 1.0))  # longest first
    running: dict[str, tuple[subprocess.Popen, float]] = {}
    while pending or running:
        while pending and len(running) < jobs:
            name = pending.pop(0)
            running[name] = (launch(name, cohort, proto), time.perf_counter())
        time.sleep(0.5)
        for name, (proc, t0) in list(running.items()):
            if proc.poll() is None:
                continue
            del running[name]
            stdout = proc.stdout.read() if proc.stdout else ""
            if proc.returncode:
                print(f"[{name}] failed (exit {proc.returncode})", file=sys.stderr, flush=True)
                continue
            results[name] = json.loads(stdout.strip().splitlines()[-1])
            results[name]["wall_s"] = time.perf_counter() - t0
    return results


def summarise(raw: dict[str, Any], reference: dict[str, Any] | None) -> dict[str, Any]:
    from wsirisk.training.metrics import mean_std

    folds = raw["folds"]
    mean, std = mean_std([f["cindex"] for f in folds])
    oracle, _ = mean_std([f["oracle_cindex"] for f in folds])
    row: dict[str, Any] = {
        "cindex_mean": mean,
        "cindex_std": std,
        "cindex_folds": [f["cindex"] for f in folds],
        "oracle_ratio": None if mean is None or not oracle else mean / oracle,
        "missing_path_cindex": mean_std([f["missing_path_cindex"] for f in folds])[0],
        "missing_omics_cindex": mean_std([f["missing_omics_cindex"] for f in folds])[0],
        "s_per_epoch": raw["s_per_epoch"],
        "eval_s": raw["eval_s"],
        "peak_mib": raw["peak_mib"],
        "wall_s": raw.get("wall_s"),
        "model_kwargs": raw["model_kwargs"],
        "batch_size": raw["batch_size"],
        "modalities": raw["modalities"],
    }
    row.update({f: None for f in COMPARE_FIELDS})
    if raw.get("compare"):
        row["td_auc_mean"] = mean_std([f.get("td_auc") for f in folds])[0]
        row["ibs_mean"] = mean_std([f.get("ibs") for f in folds])[0]
        row["cindex_pooled"] = raw.get("cindex_pooled")
        row["cindex_pooled_ci95"] = raw.get("cindex_pooled_ci95")
        if reference is not None:
            from wsirisk.training.compare import paired_fold_comparison

            paired = paired_fold_comparison(
                [f["cindex"] for f in folds], [f["cindex"] for f in reference["folds"]]
            )
            row["vs_me_mamba"] = {k: paired[k] for k in ("mean_diff", "wilcoxon_p", "ttest_p")}
    return row


def merge_rows(
    models: dict[str, dict[str, Any]], previous: dict[str, Any], proto: dict[str, Any], cohort: str
) -> list[str]:
    """Fill ``models`` with the previous run's rows of the models not run now (same cohort and
    protocol, checked), recomputing each row's fold-paired comparison with ME-Mamba."""
    from wsirisk.training.compare import paired_fold_comparison

    old = {"device": "cpu", **previous["config"]}  # runs before --device were on the CPU
    now = {k: v for k, v in proto.items() if k != "model_options"}
    if (
        any(old.get(k) != v for k, v in now.items())
        or Path(old["cohort"]).name != Path(cohort).name
    ):
        raise SystemExit("--merge: the previous run used another cohort or protocol")
    added = [n for n in previous["models"] if n not in models]
    for name in added:
        models[name] = dict(previous["models"][name])
    ref = models.get(REFERENCE)
    for name, row in models.items():
        if ref is None or name == REFERENCE or row.get("td_auc_mean") is None:
            continue  # no comparison fields (wsirisk.training.compare missing)
        paired = paired_fold_comparison(row["cindex_folds"], ref["cindex_folds"])
        row["vs_me_mamba"] = {k: paired[k] for k in ("mean_diff", "wilcoxon_p", "ttest_p")}
    return added


def print_table(
    models: dict[str, dict[str, Any]],
    oracle: float | None,
    additive: float | None,
    reference: float | None,
) -> None:
    head = (
        f"{'model':>10} {'C-index':>13} {'/oracle':>7} {'no-path':>7} {'no-omics':>8} "
        f"{'s/epoch':>8} {'eval s':>7} {'peak MiB':>8} {'tdAUC':>6} {'IBS':>6} "
        f"{'pooled C [95% CI]':>22} {'vs ME-Mamba':>12}"
    )
    print(head)
    for name, r in models.items():
        ci = r["cindex_pooled_ci95"]
        pooled = (
            f"{_f(r['cindex_pooled'])} [{_f(ci[0])}, {_f(ci[1])}]" if ci else _f(r["cindex_pooled"])
        )
        vs = r["vs_me_mamba"]
        vs_s = f"{vs['mean_diff']:+.3f}" if vs and vs["mean_diff"] is not None else "-"
        print(
            f"{name:>10} {_f(r['cindex_mean'])} ± {_f(r['cindex_std'])} "
            f"{_f(r['oracle_ratio'], 2):>7} {_f(r['missing_path_cindex']):>7} "
            f"{_f(r['missing_omics_cindex']):>8} {r['s_per_epoch']:8.2f} {r['eval_s']:7.1f} "
            f"{r['peak_mib']:8.0f} {_f(r['td_auc_mean']):>6} {_f(r['ibs_mean']):>6} "
            f"{pooled:>22} {vs_s:>12}"
        )
    print(f"{'oracle':>10} {_f(oracle)}   (the true risk)")
    print(f"{'additive':>10} {_f(additive)}   (oracle without the interaction term)")
    print(
        f"{'reference':>10} {_f(reference)}   (Cox on the planted summaries; knows the structure)"
    )


def _load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def main() -> None:
    from wsirisk.models import MODEL_NAMES

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODEL_NAMES))
    ap.add_argument("--patients", type=int, default=200)
    ap.add_argument("--bag-min", type=int, default=1000)
    ap.add_argument("--bag-max", type=int, default=20000)
    ap.add_argument("--feature-dim", type=int, default=64)
    ap.add_argument("--weights", default=DEFAULT_WEIGHTS, help=",".join(WEIGHT_NAMES))
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-patches", type=int, default=256, help="training bag cap (trainer)")
    ap.add_argument("--eval-patches", type=int, default=2048, help="validation bag cap; 0: all")
    ap.add_argument("--width", type=int, default=64, help="model width; 0: package defaults")
    ap.add_argument("--options", default="{}", help="JSON: more TrainOptions for every model")
    ap.add_argument(
        "--model-options",
        default="{}",
        help='JSON: TrainOptions for one model, e.g. {"me_mamba": {"dropout": 0.0}}',
    )
    ap.add_argument("--merge", type=Path, default=None,
                    help="a previous run's JSON (same cohort and protocol): its rows fill the "
                         "models not run now; comparisons with ME-Mamba are recomputed")  # fmt: skip
    ap.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    ap.add_argument("--device", default="cpu", help="cpu, or cuda (peak_mib: GPU allocation)")
    ap.add_argument("--jobs", type=int, default=2, help="models trained at the same time")
    ap.add_argument("--cox-batch", type=int, default=16, help="batch of models with a Cox loss")
    ap.add_argument("--cohort-root", type=Path, default=Path("results/bench/multimodal"))
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--cohort-dir", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--protocol", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(run_worker(args.worker, args.cohort_dir, json.loads(args.protocol))))
        return
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in names if m not in MODEL_NAMES]
    if unknown:
        raise SystemExit(f"unknown model(s) {unknown}; the zoo has {list(MODEL_NAMES)}")
    started, load_before = time.perf_counter(), _load()
    spec = CohortSpec(
        n_patients=args.patients,
        seed=args.seed,
        feature_dim=args.feature_dim,
        bag_min=args.bag_min,
        bag_max=args.bag_max,
        weights=parse_weights(args.weights),
    )
    cohort, summary = ensure_cohort(spec, args.folds, args.cohort_root)
    proto = {
        "seed": args.seed,
        "epochs": args.epochs,
        "lr": args.lr,
        "max_patches": args.max_patches,
        "eval_patches": args.eval_patches,
        "width": args.width,
        "threads": args.threads,
        "cox_batch": args.cox_batch,
        "device": args.device,
        "options": json.loads(args.options),
        "model_options": json.loads(args.model_options),
    }
    raw = run_models(names, cohort, proto, args.jobs)
    reference = raw.get(REFERENCE)
    models = {n: summarise(raw[n], reference) for n in names if n in raw}
    merged: list[str] = []
    if args.merge is not None:
        merged = merge_rows(models, json.loads(args.merge.read_text()), proto, str(cohort))
    any_fold = next(iter(raw.values()))["folds"] if raw else []
    fold_mean = {
        key: (np.mean([f[key] for f in any_fold]).item() if any_fold else None)
        for key in (
            "oracle_cindex",
            "oracle_pathology_cindex",
            "oracle_omics_cindex",
            "oracle_additive_cindex",
        )
    }
    reference_cox = structured_reference(cohort, spec)
    print_table(
        models,
        fold_mean["oracle_cindex"],
        fold_mean["oracle_additive_cindex"],
        reference_cox["cindex_mean"],
    )
    unimodal = {n: r["cindex_mean"] for n, r in models.items() if len(r["modalities"]) == 1}
    best_uni = max(unimodal, key=lambda n: unimodal[n] or 0.0) if unimodal else None
    target = None
    if REFERENCE in models and best_uni is not None:
        me = models[REFERENCE]
        target = {
            "oracle_ratio_ge_0.9": (me["oracle_ratio"] or 0) >= 0.9,
            "ge_best_unimodal": (me["cindex_mean"] or 0) >= (unimodal[best_uni] or 0),
        }
    result = {
        "models": models,
        **fold_mean,
        "oracle_cindex_cohort": summary["oracle_cindex"],
        "reference_cox": reference_cox,
        "best_unimodal": best_uni,
        "target_me_mamba": target,
        "compare_fields": (list(COMPARE_FIELDS) if any(raw[n].get("compare") for n in raw) else []),
        "failed": [n for n in names if n not in raw],
        "merged_from_previous_run": merged,
        "config": {**proto, "cohort": str(cohort), "spec": spec.to_dict(), "folds": args.folds},
        "machine": {
            "cpus": os.cpu_count(),
            "load_before": load_before,
            "load_after": _load(),
            "wall_s": round(time.perf_counter() - started, 1),
        },
    }
    if args.out is not None:
        from wsirisk.store import write_json

        write_json(args.out, result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
