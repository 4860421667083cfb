"""The numbers of one model's report: C-index per fold and pooled (with a bootstrap interval),
td-AUC, integrated Brier score, risk groups and the log-rank test, fold flags, the risk's scale.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from wsirisk.report import survival
from wsirisk.report.folds import Folds
from wsirisk.training import compare
from wsirisk.training.metrics import cindex, mean_std

N_BOOT = 1000
BOOT_SEED = 0


def risk_kind(folds: Folds) -> str:
    """'discrete_time' when every stored risk is -sum_k S_k of the stored curve, else 'cox'.

    A fold store may say so itself (attribute ``risk_kind``); otherwise the arrays tell: the
    trainer stores ``output_risk`` (a Cox model's own log-risk) beside the hazard-bin curve.
    """
    stated = {f.attrs.get("risk_kind") for f in folds.folds} - {None}
    if len(stated) == 1:
        return str(stated.pop())
    for fold in folds.folds:
        if fold.survival.shape[1] == 0 or not np.allclose(
            fold.risk, -fold.survival.sum(axis=1), atol=1e-4
        ):
            return "cox"
    return "discrete_time"


def risk_scale(kind: str, n_bins: int | None) -> str:
    """What the risk number means, for the page."""
    if kind == "discrete_time":
        return (
            f"risk = −Σₖ Sₖ: minus the sum of the predicted probabilities of surviving past each of "
            f"the {n_bins} time bins (discrete-time hazard model), so it lies in [−{n_bins}, 0]; "
            "higher (closer to 0) = worse prognosis. Each fold has its own model and bins, so "
            "risks of different folds are pooled as ranks, not as calibrated values."
        )
    return (
        "risk = the model's log hazard ratio (Cox partial likelihood): higher = worse prognosis; "
        "only differences matter (no fixed zero), and each fold's model has its own scale."
    )


def fold_flags(values: list[float | None], reasons: list[str | None]) -> list[dict[str, Any]]:
    """One entry per fold: flag 'undefined' (with the reason), 'below_chance' (< 0.5) or None."""
    flags = []
    for k, (value, reason) in enumerate(zip(values, reasons, strict=True)):
        if value is None:
            flag, text = "undefined", reason or "undefined"
        elif value < 0.5:
            flag, text = "below_chance", f"C-index {value:.4f} < 0.5: worse than chance"
        else:
            flag, text = None, None
        flags.append({"fold": k, "cindex": value, "flag": flag, "text": text})
    return flags


def _per_fold(values: list[dict[str, Any]], key: str) -> dict[str, Any]:
    mean, std = mean_std([v[key] for v in values])
    return {"mean": mean, "std": std, "folds": values}


def evaluate(folds: Folds, n_boot: int = N_BOOT, seed: int = BOOT_SEED) -> dict[str, Any]:
    """Every figure of the summary that comes from the fold stores alone."""
    months, censorship, risk = (folds.pooled(n) for n in ("months", "censorship", "risk"))
    per_fold = [cindex(f.months, f.risk, f.censorship) for f in folds.folds]
    values = [c.value for c in per_fold]
    reasons = [c.reason for c in per_fold]
    mean, std = mean_std(values)
    pooled, low, high = compare.bootstrap_cindex(months, censorship, risk, n_boot, seed)
    pooled_reason = cindex(months, risk, censorship).reason
    high_group = survival.risk_groups(risk)
    kind = risk_kind(folds)
    n_bins = {len(f.bin_edges) - 1 for f in folds.folds if f.bin_edges}
    auc_times = compare.event_time_quantiles(months, censorship)
    ibs_times = compare.event_time_quantiles(months, censorship, compare.IBS_QUANTILES)
    td_auc, ibs, ibs_km = [], [], []
    for fold in folds.folds:
        others = folds.fold_of != fold.index
        # censoring distribution: the whole cohort's follow-up (all out-of-fold patients)
        auc = compare.time_dependent_auc(
            months, censorship, fold.months, fold.censorship, fold.risk, auc_times
        )
        td_auc.append({"fold": fold.index, **auc})
        if kind == "discrete_time":
            brier = compare.integrated_brier_detail(
                months,
                censorship,
                fold.months,
                fold.censorship,
                fold.survival,
                fold.bin_edges,
                ibs_times,
            )
        else:
            brier = {
                "ibs": None,
                "times": [],
                "reason": "undefined: a Cox-type risk comes without a survival curve",
            }
        ibs.append({"fold": fold.index, **brier})
        reference = compare.km_integrated_brier(
            months,
            censorship,
            fold.months,
            fold.censorship,
            ibs_times,
            months[others],
            censorship[others],
        )
        ibs_km.append({"fold": fold.index, **reference})
    return {
        "risk_kind": kind,
        "n_bins": n_bins.pop() if len(n_bins) == 1 else None,
        "cindex_folds": values,
        "cindex_undefined_reasons": reasons,
        "cindex_trainer": [f.cindex for f in folds.folds],
        "fold_flags": fold_flags(values, reasons),
        "cindex_mean": mean,
        "cindex_std": std,
        "cindex_pooled_oof": pooled,
        "cindex_pooled_reason": pooled_reason,
        "cindex_pooled_ci95": [low, high],
        "bootstrap": {"n_boot": n_boot, "seed": seed, "method": "percentile, patients resampled"},
        "td_auc": {
            **_per_fold(td_auc, "mean_auc"),
            "times_months": auc_times,
            "definition": "cumulative/dynamic AUC (Uno IPCW, scikit-survival) at the 25/50/75 % "
            "quantiles of the cohort's death times, mean over times per fold; censoring "
            "distribution from the whole cohort's follow-up",
        },
        "ibs": {
            **_per_fold(ibs, "ibs"),
            "times_months": ibs_times,
            "definition": "integrated Brier score (scikit-survival, IPCW) between the 10 % and 90 % "
            "quantiles of the cohort's death times; the discrete-time curve is a step function "
            "(S(t) = S_k for t in bin k); lower = better",
            "km_reference": {
                **_per_fold(ibs_km, "ibs"),
                "definition": "the same score for the no-model reference: every validation "
                "patient gets the Kaplan-Meier curve of the other folds' patients",
            },
        },
        "logrank_p": survival.logrank_p(months, censorship, high_group),
        "risk_groups": {
            "split": "median of the pooled out-of-fold risk",
            "n_high": int(high_group.sum()),
            "n_low": int((~high_group).sum()),
        },
        "n_patients": int(months.size),
        "n_events": int((1 - censorship).sum()),
        "fold_val_patients_sha256": [f.patients_sha256 for f in folds.folds],
        "fold_n_val": [len(f.patients) for f in folds.folds],
    }
