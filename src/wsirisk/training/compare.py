"""Model comparison beyond the C-index: time-dependent AUC, integrated Brier score, a bootstrap
interval of the pooled out-of-fold C-index and a fold-paired test between two models.

The statistics come from libraries: scikit-survival (``cumulative_dynamic_auc``,
``integrated_brier_score``), scipy (``stats.bootstrap``, ``stats.wilcoxon``, ``stats.ttest_rel``)
and lifelines (Harrell's C via :func:`wsirisk.training.metrics.cindex`). This module only chooses
the inputs and says when a figure is undefined instead of raising.

Conventions (as everywhere in wsirisk): ``censorship`` 1 = censored, 0 = death; ``risk`` higher =
worse; times in months.

- **Censoring distribution.** Both IPCW metrics estimate the censoring distribution G with
  Kaplan-Meier on the ``train_*`` arrays (scikit-survival's ``survival_train``); the caller
  chooses them (a fold's training patients, or the whole cohort).
- **Follow-up beyond the censoring sample.** G is unknown past the last ``train`` time, so the
  evaluated patients' follow-up is administratively censored at ``tau`` (just below the last
  ``train`` time) and only times ``t < tau`` are used. For ``t < tau`` this changes nothing:
  cases (death by ``t``) and controls (alive at ``t``) are the same patients with the same
  weights; it only keeps scikit-survival from asking for G where it does not exist.
- **Discrete-time survival curves.** A model with ``n_bins`` hazard bins gives ``S_k`` (the
  probability of surviving past bin ``k``); bins are ``[edges[k], edges[k+1])`` in months with
  ``edges[0] = 0`` and the last edge the training fold's longest follow-up. The curve is read as
  a step function: ``S(t) = S_k`` for ``t`` in bin ``k`` (times past the last edge use the last
  bin), the same bin assignment as :class:`wsirisk.training.data.Bins`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

TD_AUC_QUANTILES = (0.25, 0.5, 0.75)  # of the cohort's death times
IBS_QUANTILES = tuple(np.round(np.linspace(0.1, 0.9, 17), 3))


def _structured(months: Any, censorship: Any) -> np.ndarray:
    from sksurv.util import Surv

    months = np.asarray(months, dtype=np.float64).ravel()
    censorship = np.asarray(censorship).ravel().astype(np.int64)
    return Surv.from_arrays(event=censorship == 0, time=months)


def _check_lengths(**arrays: Any) -> None:
    sizes = {name: len(np.asarray(a)) for name, a in arrays.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"lengths differ: {sizes}")


def event_time_quantiles(
    months: Any, censorship: Any, quantiles: Sequence[float] = TD_AUC_QUANTILES
) -> list[float]:
    """Quantiles of the death times (a model-free choice of evaluation times for a cohort)."""
    months = np.asarray(months, dtype=np.float64).ravel()
    deaths = months[np.asarray(censorship).ravel() == 0]
    if deaths.size == 0:
        return []
    return sorted({float(q) for q in np.quantile(deaths, list(quantiles))})


def _truncate(
    train_months: np.ndarray, months: np.ndarray, censorship: np.ndarray
) -> tuple[float, np.ndarray, np.ndarray]:
    """``tau`` just below the last training time; follow-up censored at ``tau``."""
    tau = float(np.nextafter(np.max(train_months), -np.inf))
    past = months > tau
    return tau, np.where(past, tau, months), np.where(past, 1, censorship)


def _valid_times(
    times: Any, months: np.ndarray, censorship: np.ndarray, tau: float
) -> tuple[np.ndarray, list[str]]:
    """Times inside ``[min(months), min(tau, max(months)))`` with >= 1 case and >= 1 control."""
    times = np.unique(np.asarray(times, dtype=np.float64).ravel())
    upper = min(tau, float(months.max()))
    dropped, kept = [], []
    for t in times:
        if not (months.min() <= t < upper):
            dropped.append(f"{t:.3g} outside follow-up [{months.min():.3g}, {upper:.3g})")
        elif not np.any((months <= t) & (censorship == 0)):
            dropped.append(f"{t:.3g}: no death by then")
        elif not np.any(months > t):
            dropped.append(f"{t:.3g}: nobody still followed")
        else:
            kept.append(t)
    return np.asarray(kept, dtype=np.float64), dropped


def time_dependent_auc(
    train_months: Any,
    train_censorship: Any,
    months: Any,
    censorship: Any,
    risk: Any,
    times_months: Any,
) -> dict[str, Any]:
    """Cumulative/dynamic AUC(t) (Uno's IPCW; scikit-survival ``cumulative_dynamic_auc``).

    Returns ``{"times": [...], "auc": [...], "mean_auc": float | None, "dropped_times": [...],
    "reason": str | None}``; ``mean_auc`` is scikit-survival's survival-weighted mean over the
    kept times (equal to ``auc[0]`` for one time). Undefined cases (no deaths, non-finite risk,
    no valid time) give ``mean_auc=None`` and a reason.
    """
    from sksurv.metrics import cumulative_dynamic_auc

    out: dict[str, Any] = {"times": [], "auc": [], "mean_auc": None, "dropped_times": []}
    prepared = _prepare(train_months, train_censorship, months, censorship, risk, times_months)
    if isinstance(prepared, dict):
        return {**out, **prepared}
    y_train, y_test, times, dropped = prepared
    out["dropped_times"] = dropped
    if times.size == 0:
        return {**out, "reason": "undefined: no evaluation time inside the follow-up"}
    try:
        auc, mean_auc = cumulative_dynamic_auc(y_train, y_test, np.ravel(risk), times)
    except ValueError as err:  # scikit-survival's own checks
        return {**out, "reason": f"undefined: {err}"}
    return {
        **out,
        "times": [float(t) for t in times],
        "auc": [float(a) for a in auc],
        "mean_auc": float(mean_auc) if math.isfinite(mean_auc) else None,
        "reason": None if math.isfinite(mean_auc) else "undefined: AUC not finite",
    }


def _undefined(
    train_months: np.ndarray, months: np.ndarray, censorship: np.ndarray, values: np.ndarray
) -> str | None:
    if months.size < 2:
        return f"undefined: {months.size} patient(s), need at least 2"
    if train_months.size == 0:
        return "undefined: no patients to estimate the censoring distribution"
    if not np.any(censorship == 0):
        return f"undefined: no deaths among {months.size} patients"
    if not np.all(np.isfinite(values)):
        return "undefined: non-finite predictions"
    return None


def _prepare(
    train_months: Any,
    train_censorship: Any,
    months: Any,
    censorship: Any,
    values: Any,
    times_months: Any,
) -> dict[str, Any] | tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """scikit-survival inputs (censoring sample, evaluated set censored at tau, valid times,
    dropped times), or ``{"reason": ...}`` when the figure is undefined."""
    values = np.asarray(values, dtype=np.float64)
    _check_lengths(months=months, censorship=censorship, predictions=values)
    _check_lengths(train_months=train_months, train_censorship=train_censorship)
    train_months = np.asarray(train_months, dtype=np.float64).ravel()
    months = np.asarray(months, dtype=np.float64).ravel()
    censorship = np.asarray(censorship).ravel().astype(np.int64)
    reason = _undefined(train_months, months, censorship, values)
    if reason:
        return {"reason": reason}
    tau, cut_months, cut_cens = _truncate(train_months, months, censorship)
    times, dropped = _valid_times(times_months, cut_months, cut_cens, tau)
    y_train = _structured(train_months, train_censorship)
    return y_train, _structured(cut_months, cut_cens), times, dropped


def survival_at(survival: Any, bin_edges: Any, times_months: Any) -> np.ndarray:
    """(P, n_times) step-function read-out of discrete-time curves: ``S(t) = S_k``, ``t`` in bin k."""
    survival = np.atleast_2d(np.asarray(survival, dtype=np.float64))
    edges = np.asarray(bin_edges, dtype=np.float64).ravel()
    if edges.size != survival.shape[1] + 1:
        raise ValueError(
            f"bin_edges has {edges.size} entries for {survival.shape[1]} bins (need n_bins + 1)"
        )
    index = np.searchsorted(edges[1:-1], np.asarray(times_months, dtype=np.float64), side="right")
    return survival[:, index]


def integrated_brier_detail(
    train_months: Any,
    train_censorship: Any,
    months: Any,
    censorship: Any,
    survival: Any,
    bin_edges: Any,
    times_months: Any,
) -> dict[str, Any]:
    """Integrated Brier score (scikit-survival ``integrated_brier_score``, IPCW; lower = better).

    ``survival`` (P, n_bins) discrete-time curves over ``bin_edges`` (n_bins + 1 months), read as
    a step function (module docstring). Returns ``{"ibs", "times", "dropped_times", "reason"}``;
    at least two valid times are needed.
    """
    from sksurv.metrics import integrated_brier_score

    survival = np.atleast_2d(np.asarray(survival, dtype=np.float64))
    out: dict[str, Any] = {"ibs": None, "times": [], "dropped_times": []}
    prepared = _prepare(train_months, train_censorship, months, censorship, survival, times_months)
    if isinstance(prepared, dict):
        return {**out, **prepared}
    y_train, y_test, times, dropped = prepared
    out["dropped_times"] = dropped
    if times.size < 2:
        return {**out, "reason": f"undefined: {times.size} valid time(s), need at least 2"}
    try:
        ibs = integrated_brier_score(
            y_train, y_test, survival_at(survival, bin_edges, times), times
        )
    except ValueError as err:
        return {**out, "reason": f"undefined: {err}"}
    return {**out, "ibs": float(ibs), "times": [float(t) for t in times], "reason": None}


def integrated_brier(
    train_months: Any,
    train_censorship: Any,
    months: Any,
    censorship: Any,
    survival: Any,
    bin_edges: Any,
    times_months: Any,
) -> float | None:
    """:func:`integrated_brier_detail`'s score alone (None when undefined)."""
    return integrated_brier_detail(
        train_months, train_censorship, months, censorship, survival, bin_edges, times_months
    )["ibs"]


def km_integrated_brier(
    train_months: Any,
    train_censorship: Any,
    months: Any,
    censorship: Any,
    times_months: Any,
    km_months: Any = None,
    km_censorship: Any = None,
) -> dict[str, Any]:
    """IBS of the no-model reference: everybody gets the Kaplan-Meier curve (lifelines) of
    ``km_*`` (default: the ``train_*`` arrays), scored like :func:`integrated_brier_detail` (same
    censoring distribution and times), so a model's IBS can be read against it."""
    from lifelines import KaplanMeierFitter
    from sksurv.metrics import integrated_brier_score

    km_months = train_months if km_months is None else km_months
    km_censorship = train_censorship if km_censorship is None else km_censorship
    out: dict[str, Any] = {"ibs": None, "times": [], "dropped_times": []}
    placeholder = np.zeros(len(np.asarray(months)))
    prepared = _prepare(
        train_months, train_censorship, months, censorship, placeholder, times_months
    )
    if isinstance(prepared, dict):
        return {**out, **prepared}
    y_train, y_test, times, dropped = prepared
    out["dropped_times"] = dropped
    if times.size < 2:
        return {**out, "reason": f"undefined: {times.size} valid time(s), need at least 2"}
    events = 1 - np.asarray(km_censorship, dtype=np.int64)
    fitter = KaplanMeierFitter().fit(np.asarray(km_months, dtype=np.float64), events)
    curve = np.asarray(fitter.survival_function_at_times(times), dtype=np.float64)
    estimate = np.tile(curve, (len(placeholder), 1))
    try:
        ibs = integrated_brier_score(y_train, y_test, estimate, times)
    except ValueError as err:
        return {**out, "reason": f"undefined: {err}"}
    return {**out, "ibs": float(ibs), "times": [float(t) for t in times], "reason": None}


def bootstrap_cindex(
    months: Any, censorship: Any, risk: Any, n_boot: int = 1000, seed: int = 0
) -> tuple[float | None, float | None, float | None]:
    """Harrell's C of the pooled predictions and its 95 % percentile bootstrap interval.

    Patients are resampled with replacement (``scipy.stats.bootstrap``, paired, percentile
    method, ``n_boot`` resamples, fixed ``seed``); each resample's C comes from lifelines. A
    resample without a comparable pair is undefined: the interval is then None (only for tiny
    sets). Returns ``(estimate, low, high)``; all None when the estimate itself is undefined.
    """
    from scipy.stats import bootstrap

    from wsirisk.training.metrics import cindex

    _check_lengths(months=months, censorship=censorship, risk=risk)
    months = np.asarray(months, dtype=np.float64).ravel()
    censorship = np.asarray(censorship).ravel().astype(np.int64)
    risk = np.asarray(risk, dtype=np.float64).ravel()
    estimate = cindex(months, risk, censorship).value
    if estimate is None:
        return None, None, None

    def statistic(m: np.ndarray, c: np.ndarray, r: np.ndarray) -> float:
        value = cindex(m, r, c).value
        return np.nan if value is None else value

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns about NaN/degenerate distributions
        result = bootstrap(
            (months, censorship, risk),
            statistic,
            paired=True,
            vectorized=False,
            n_resamples=int(n_boot),
            confidence_level=0.95,
            method="percentile",
            rng=np.random.default_rng(seed),
        )
    low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    if not (math.isfinite(low) and math.isfinite(high)):
        return estimate, None, None
    return estimate, low, high


def paired_fold_comparison(
    cindex_model: Sequence[float | None], cindex_reference: Sequence[float | None]
) -> dict[str, Any]:
    """Fold-by-fold comparison of two models' C-indices on the same folds.

    Folds where either value is None are left out. Returns ``{"n_folds", "mean_diff",
    "diffs", "wilcoxon_p", "ttest_p", "reason"}`` (differences = model - reference; p-values
    two-sided, scipy ``wilcoxon`` and ``ttest_rel``; None when undefined: fewer than two folds, or
    no variation). With 5 folds the smallest two-sided Wilcoxon p is 0.0625.
    """
    from scipy.stats import ttest_rel, wilcoxon

    if len(cindex_model) != len(cindex_reference):
        raise ValueError(
            f"fold counts differ: {len(cindex_model)} vs {len(cindex_reference)} (not paired)"
        )
    pairs = [
        (float(a), float(b))
        for a, b in zip(cindex_model, cindex_reference, strict=True)
        if a is not None and b is not None
    ]
    diffs = [a - b for a, b in pairs]
    out: dict[str, Any] = {
        "n_folds": len(pairs),
        "mean_diff": float(np.mean(diffs)) if diffs else None,
        "diffs": diffs,
        "wilcoxon_p": None,
        "ttest_p": None,
        "reason": None,
    }
    if len(pairs) < 2:
        return {**out, "reason": f"undefined: {len(pairs)} fold(s) with both C-indices"}
    a, b = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if np.any(a != b):
            out["wilcoxon_p"] = _finite(wilcoxon(a, b).pvalue)
        out["ttest_p"] = _finite(ttest_rel(a, b).pvalue)
    if out["wilcoxon_p"] is None and out["ttest_p"] is None:
        out["reason"] = "undefined: the per-fold differences do not vary (identical folds?)"
    elif out["ttest_p"] is None:
        out["reason"] = "t-test undefined: every fold differs by the same amount"
    return out


def _finite(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None
