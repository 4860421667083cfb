"""Survival statistics for the report, lifelines-style: small functions returning plain data."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class KMCurve:
    """Kaplan-Meier estimate of one group: step function with a 95% confidence band."""

    label: str
    n: int
    events: int
    months: list[float]
    survival: list[float]
    ci_lower: list[float]
    ci_upper: list[float]
    median_months: float | None


def risk_groups(risk: np.ndarray) -> np.ndarray:
    """True where the risk is above the median (high-risk group), as in the paper's Fig. 4."""
    risk = np.asarray(risk, dtype=float)
    return risk > np.median(risk)


def kaplan_meier(months: np.ndarray, censorship: np.ndarray, label: str) -> KMCurve:
    """KM curve with lifelines' exponential Greenwood 95% band; censorship 1 = censored."""
    from lifelines import KaplanMeierFitter

    months = np.asarray(months, dtype=float)
    events = 1 - np.asarray(censorship, dtype=int)
    fitter = KaplanMeierFitter(label=label).fit(months, event_observed=events)
    table = fitter.survival_function_.join(fitter.confidence_interval_)
    median = fitter.median_survival_time_
    return KMCurve(
        label=label,
        n=int(months.size),
        events=int(events.sum()),
        months=[float(t) for t in table.index],
        survival=[float(v) for v in table.iloc[:, 0]],
        ci_lower=[float(v) for v in table.iloc[:, 1]],
        ci_upper=[float(v) for v in table.iloc[:, 2]],
        median_months=float(median) if np.isfinite(median) else None,
    )


def logrank_p(months: np.ndarray, censorship: np.ndarray, high_risk: np.ndarray) -> float | None:
    """Log-rank test p-value between the high- and low-risk groups (None if a group is empty)."""
    from lifelines.statistics import logrank_test

    months = np.asarray(months, dtype=float)
    events = 1 - np.asarray(censorship, dtype=int)
    high = np.asarray(high_risk, dtype=bool)
    if high.all() or (~high).all():
        return None
    result = logrank_test(months[high], months[~high], events[high], events[~high])
    return float(result.p_value)
