"""Survival metrics with an explicit censoring convention.

Convention everywhere in wsirisk: ``censorship`` is 1 for censored patients (alive at last
follow-up) and 0 for observed deaths (events); ``risk`` is higher for worse prognosis.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from lifelines.utils import concordance_index


class CIndex(NamedTuple):
    """Harrell's C-index, or ``value=None`` with the reason it is undefined."""

    value: float | None
    reason: str | None = None


def cindex(months: np.ndarray, risk: np.ndarray, censorship: np.ndarray) -> CIndex:
    """Harrell's C-index of ``risk`` (higher = earlier death) against survival in months.

    Computed as ``lifelines.utils.concordance_index(months, -risk, event_observed=1-censorship)``.
    Returns ``CIndex(None, reason)`` when no pair is comparable (no events, < 2 patients) or a
    risk is not finite.
    """
    months = np.asarray(months, dtype=np.float64).ravel()
    risk = np.asarray(risk, dtype=np.float64).ravel()
    censorship = np.asarray(censorship).ravel()
    if not (len(months) == len(risk) == len(censorship)):
        raise ValueError(
            f"cindex: lengths differ (months {len(months)}, risk {len(risk)}, "
            f"censorship {len(censorship)})"
        )
    if not set(np.unique(censorship).tolist()) <= {0, 1}:
        raise ValueError("cindex: censorship must be 0 (event) or 1 (censored)")
    if len(months) < 2:
        return CIndex(None, f"undefined: {len(months)} patient(s), need at least 2")
    events = 1 - censorship.astype(np.int64)
    if events.sum() == 0:
        return CIndex(None, f"undefined: no events (deaths) among {len(months)} patients")
    if not np.all(np.isfinite(risk)):
        return CIndex(None, "undefined: non-finite risk scores")
    if not np.all(np.isfinite(months)):
        raise ValueError("cindex: survival months must be finite")
    try:
        value = concordance_index(months, -risk, event_observed=events)
    except ZeroDivisionError:
        return CIndex(None, "undefined: no comparable pairs (no event precedes another time)")
    return CIndex(float(value), None)


def censoring_warning(months: np.ndarray, censorship: np.ndarray) -> str | None:
    """A message when the censorship column looks reversed (1 = death instead of 1 = censored).

    Flags an event rate above 90%, or every censored follow-up being strictly shorter than every
    death time (with reversed coding, the "deaths" are then the long-followed survivors).
    """
    months = np.asarray(months, dtype=np.float64).ravel()
    censorship = np.asarray(censorship).ravel().astype(np.int64)
    n = len(censorship)
    if n < 10:
        return None
    events = censorship == 0
    rate = events.mean()
    problems = []
    if rate > 0.9:
        problems.append(f"event rate {rate:.0%} > 90%")
    if events.any() and (~events).any():
        if months[~events].max() < months[events].min():
            problems.append("every censored follow-up is shorter than every death time")
    if not problems:
        return None
    return (
        "censorship coding looks reversed (" + "; ".join(problems) + "): wsirisk expects "
        "censorship = 1 for censored (alive) patients and 0 for deaths"
    )


def mean_std(values: list[float | None]) -> tuple[float | None, float | None]:
    """Mean and population std (ddof=0) of the defined values; (None, None) if none."""
    defined = np.array([v for v in values if v is not None], dtype=np.float64)
    if defined.size == 0:
        return None, None
    return float(defined.mean()), float(defined.std())
