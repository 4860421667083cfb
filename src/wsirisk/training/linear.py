"""Elastic-net Cox model on the concatenated omics: the linear reference for omics-only CV.

A penalised Cox proportional-hazards model (scikit-survival's ``CoxnetSurvivalAnalysis``,
optional extra ``wsirisk[baselines]``) fit on a fold's training patients. It expects omics
z-scored by the fold's training scaler (``prepare_fold(..., standardize=True)``); columns
constant on the training fold are dropped. The penalty is reached along a warm-started path
from the smallest all-zero penalty, so every fold's fit is deterministic and independent of a
data-dependent grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from wsirisk.training.data import Sample

COXNET = "coxnet"
# Chosen on TCGA-COADREAD (not a reported cohort; docs/results.md).
COXNET_DEFAULTS: dict[str, float] = {"penalty": 0.05, "l1_ratio": 0.5}
PATH_STEPS = 40


def _sksurv() -> Any:
    try:
        import sksurv.linear_model
        import sksurv.util
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "model 'coxnet' needs scikit-survival: pip install 'wsirisk[baselines]'"
        ) from exc
    return sksurv


def coxnet_options(model_kwargs: dict[str, Any]) -> dict[str, float]:
    """``COXNET_DEFAULTS`` updated with ``model_kwargs``; unknown or out-of-range keys raise."""
    unknown = sorted(set(model_kwargs) - set(COXNET_DEFAULTS))
    if unknown:
        raise ValueError(
            f"coxnet: unknown model_kwargs {unknown}; known: {sorted(COXNET_DEFAULTS)}"
        )
    opts = {**COXNET_DEFAULTS, **{k: float(v) for k, v in model_kwargs.items()}}
    if not opts["penalty"] > 0:
        raise ValueError(f"coxnet: penalty must be > 0, got {opts['penalty']}")
    if not 0 < opts["l1_ratio"] <= 1:
        raise ValueError(f"coxnet: l1_ratio must be in (0, 1], got {opts['l1_ratio']}")
    return opts


def omics_matrix(samples: list[Sample]) -> np.ndarray:
    """Patients x features: each sample's category vectors concatenated."""
    missing = [s.patient for s in samples if s.omics is None]
    if missing:
        raise ValueError(f"coxnet needs omics for every patient; none for {missing[:5]}")
    return np.stack([np.concatenate(s.omics) for s in samples]).astype(np.float64)


@dataclass(frozen=True)
class CoxnetFit:
    """A fitted elastic-net Cox model (on the fold's scaled omics)."""

    keep: np.ndarray  # bool mask of the columns used (not constant on the training fold)
    coef: np.ndarray
    penalty: float
    alpha_max: float

    def risk(self, samples: list[Sample]) -> np.ndarray:
        """Linear predictor (log relative hazard): higher = worse prognosis."""
        return omics_matrix(samples)[:, self.keep] @ self.coef

    def info(self) -> dict[str, Any]:
        return {
            "penalty": self.penalty,
            "alpha_max": self.alpha_max,
            "n_features": int(self.keep.sum()),
            "n_nonzero": int(np.count_nonzero(self.coef)),
        }


def fit_coxnet(train: list[Sample], penalty: float, l1_ratio: float) -> CoxnetFit:
    """Fit on ``train`` (months, censorship and scaled omics of the training patients only)."""
    sk = _sksurv()
    if not any(s.censorship == 0 for s in train):
        raise ValueError("coxnet: the training fold has no events")
    x = omics_matrix(train)
    keep = x.std(axis=0) > 1e-6
    z = x[:, keep]
    y = sk.util.Surv.from_arrays(
        event=[s.censorship == 0 for s in train], time=[s.months for s in train]
    )
    first = sk.linear_model.CoxnetSurvivalAnalysis(
        l1_ratio=l1_ratio, n_alphas=2, alpha_min_ratio=0.9
    ).fit(z, y)
    alpha_max = float(first.alphas_[0])  # the smallest penalty with all coefficients zero
    if penalty >= alpha_max:
        coef = np.zeros(z.shape[1])
    else:
        path = np.geomspace(alpha_max, penalty, PATH_STEPS)
        model = sk.linear_model.CoxnetSurvivalAnalysis(
            l1_ratio=l1_ratio, alphas=path, max_iter=100_000
        ).fit(z, y)
        coef = np.asarray(model.coef_[:, -1], dtype=np.float64)
    return CoxnetFit(keep, coef, penalty, alpha_max)
