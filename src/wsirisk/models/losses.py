"""Discrete-time survival losses and read-outs (MCAT/PORPOISE conventions).

``logits`` are per-bin hazard logits, ``h = sigmoid(logits)``; the survival function is
``S_k = prod_{i<=k} (1 - h_i)``. Everything is computed in log space and clamped exactly like the
reference implementation (``clamp(min=eps)`` before ``log``), so values agree with MCAT's
``nll_loss`` while staying finite for saturated logits.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def _log_survival(logits: Tensor) -> Tensor:
    """log S, shape (B, n_bins): cumulative sum of log(1 - h)."""
    return torch.cumsum(F.logsigmoid(-logits), dim=1)


def survival_from_logits(logits: Tensor) -> Tensor:
    """Survival curve S (B, n_bins) = cumprod(1 - sigmoid(logits))."""
    return torch.exp(_log_survival(logits))


def risk_from_logits(logits: Tensor) -> Tensor:
    """Risk score per row: ``-sum_k S_k`` (higher = worse prognosis), shape (B,)."""
    return -survival_from_logits(logits).sum(dim=1)


def output_risk(out: object) -> Tensor:
    """A model output's risk (B,), higher = worse: ``out.risk`` when the model sets one (Cox-type
    models), else :func:`risk_from_logits` of its hazard logits."""
    risk = getattr(out, "risk", None)
    if risk is not None:
        return risk.reshape(-1)
    return risk_from_logits(out.logits)  # type: ignore[attr-defined]


def nll_loss(
    logits: Tensor,
    y_bin: Tensor,
    censorship: Tensor,
    alpha: float = 0.0,
    eps: float = 1e-7,
) -> Tensor:
    """Discrete-time negative log-likelihood (MCAT/PORPOISE ``nll_loss``), mean over the batch.

    ``y_bin`` (B,) holds the interval index ``k`` in ``[0, n_bins)``; ``censorship`` (B,) is 1 for
    censored patients. With ``S_{-1} = 1`` (the padding), an uncensored patient contributes
    ``-log S_{k-1} - log h_k`` and a censored one ``-log S_k``; ``alpha`` up-weights the
    uncensored term: ``loss = (1 - alpha) * nll + alpha * uncensored``.
    """
    if logits.dim() != 2:
        raise ValueError(f"logits must be (B, n_bins), got {tuple(logits.shape)}")
    batch = logits.shape[0]
    y = y_bin.view(batch, 1).long()
    c = censorship.view(batch, 1).to(logits.dtype)
    log_eps = math.log(eps)
    log_s = _log_survival(logits)
    log_s_pad = torch.cat([torch.zeros_like(c), log_s], dim=1).clamp(min=log_eps)
    log_h = F.logsigmoid(logits).clamp(min=log_eps)
    uncensored = -(1 - c) * (log_s_pad.gather(1, y) + log_h.gather(1, y))
    censored = -c * log_s_pad.gather(1, y + 1)
    neg_l = censored + uncensored
    loss = (1 - alpha) * neg_l + alpha * uncensored
    return loss.mean()


def _pairwise_sq_dists(x: Tensor, y: Tensor) -> Tensor:
    """Squared Euclidean distances (n, m), clamped at 0."""
    xx = (x * x).sum(dim=1, keepdim=True)
    yy = (y * y).sum(dim=1, keepdim=True)
    return (xx + yy.T - 2.0 * x @ y.T).clamp(min=0.0)


def mmd2(
    x: Tensor,
    y: Tensor,
    bandwidths: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0),
    max_samples: int | None = 512,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Biased squared MMD (eq. 21) with a sum of Gaussian kernels, one per ``sigma``.

    Bandwidths are multiplied by the median pairwise distance of the pooled sample (the usual
    median heuristic), detached, so the kernel scale follows the feature scale. When a set has
    more than ``max_samples`` rows, that many rows are sampled without replacement, so memory is
    ``O(max_samples^2)`` whatever the number of patches.
    """
    if x.shape[0] == 0 or y.shape[0] == 0:
        return x.new_zeros(())
    if max_samples is not None:
        x = _subsample(x, max_samples, generator)
        y = _subsample(y, max_samples, generator)
    z = torch.cat([x, y], dim=0)
    d2 = _pairwise_sq_dists(z, z)
    n = x.shape[0]
    with torch.no_grad():
        off = d2[~torch.eye(d2.shape[0], dtype=torch.bool, device=d2.device)]
        scale = off.median().clamp(min=1e-6) if off.numel() else d2.new_tensor(1.0)
    k = torch.zeros_like(d2)
    for bw in bandwidths:
        k = k + torch.exp(-d2 / (2.0 * bw * scale))
    kxx = k[:n, :n].mean()
    kyy = k[n:, n:].mean()
    kxy = k[:n, n:].mean()
    return (kxx + kyy - 2.0 * kxy).clamp(min=0.0)


def _subsample(x: Tensor, k: int, generator: torch.Generator | None) -> Tensor:
    if x.shape[0] <= k:
        return x
    idx = torch.randperm(x.shape[0], generator=generator, device="cpu")[:k].to(x.device)
    return x.index_select(0, idx)


# ---- Cox proportional hazards (batch-level risk sets) ------------------------------------
def cox_ph_loss(risk: Tensor, months: Tensor, event: Tensor) -> Tensor:
    """Negative Cox partial log-likelihood of a batch, Breslow ties, mean over its events.

    ``risk`` (B,) log-risks ``eta``, ``months`` (B,) follow-up, ``event`` (B,) 1 = death,
    0 = censored. With ``R(i) = {j : t_j >= t_i}`` (a patient's own tied times included):
    ``loss = -(1 / n_events) * sum_{i : event_i = 1} (eta_i - log sum_{j in R(i)} exp(eta_j))``.
    A batch without events has no partial likelihood: a zero with no gradient is returned.
    """
    risk = risk.reshape(-1)
    months = torch.as_tensor(months, device=risk.device).reshape(-1).to(risk.dtype)
    event = torch.as_tensor(event, device=risk.device).reshape(-1).to(torch.bool)
    if not (risk.shape == months.shape == event.shape):
        raise ValueError(
            f"risk, months and event must have one value per patient, got "
            f"{tuple(risk.shape)}, {tuple(months.shape)}, {tuple(event.shape)}"
        )
    if not bool(event.any()):
        return risk.new_zeros(())
    at_risk = months[None, :] >= months[:, None]  # (i, j): j is in the risk set of i
    log_denominator = torch.logsumexp(risk[None, :].masked_fill(~at_risk, -math.inf), dim=1)
    return -(risk - log_denominator)[event].mean()


def breslow_cumhaz(
    risk: Tensor, months: Tensor, event: Tensor, times: Tensor | list[float]
) -> Tensor:
    """Breslow's cumulative baseline hazard ``H0(t)`` at ``times`` (float64).

    ``H0(t) = sum_{distinct death times s <= t} d_s / sum_{j : t_j >= s} exp(eta_j)`` with
    ``d_s`` the deaths at ``s``; then ``S(t | x) = exp(-H0(t) exp(eta(x)))``
    (:func:`cox_survival`). Fit it on the training patients' final log-risks.
    """
    eta = torch.as_tensor(risk, dtype=torch.float64).reshape(-1)
    t = torch.as_tensor(months, dtype=torch.float64).reshape(-1)
    d = torch.as_tensor(event).reshape(-1).to(torch.bool)
    at = torch.as_tensor(times, dtype=torch.float64).reshape(-1)
    shift = eta.max() if eta.numel() else eta.new_zeros(())
    w = torch.exp(eta - shift)
    death_times = torch.unique(t[d])  # sorted
    if death_times.numel() == 0:
        return at.new_zeros(at.shape)
    deaths = (t[d][None, :] == death_times[:, None]).sum(dim=1).to(torch.float64)
    at_risk = (w[None, :] * (t[None, :] >= death_times[:, None])).sum(dim=1)
    steps = torch.cumsum(deaths / at_risk, dim=0) * torch.exp(-shift)
    idx = torch.searchsorted(death_times, at, right=True)  # deaths at or before each time
    return torch.where(idx > 0, steps[(idx - 1).clamp(min=0)], at.new_zeros(()))


def cox_survival(eta: Tensor, cumhaz: Tensor | list[float]) -> Tensor:
    """Survival curves ``S (P, K) = exp(-H0_k exp(eta_p))`` of a Cox model.

    ``eta`` (P,) log-risks, ``cumhaz`` (K,) the baseline cumulative hazard at K times (e.g. a
    checkpoint's ``baseline_cumhaz_at_edges``: H0 at the fold's bin edges 1..K).
    """
    eta = torch.as_tensor(eta).reshape(-1)
    h0 = torch.as_tensor(cumhaz, dtype=eta.dtype, device=eta.device).reshape(1, -1)
    return torch.exp(-h0 * torch.exp(eta)[:, None])


def cox_logits(eta: Tensor, cumhaz: Tensor, min_increment: float = 1e-12) -> Tensor:
    """Per-bin hazard logits (P, K) whose :func:`survival_from_logits` is :func:`cox_survival`.

    Bin k's conditional hazard is ``h_k = 1 - exp(-a_k)`` with ``a_k = (H0_k - H0_{k-1})
    exp(eta)`` (grouped proportional hazards); ``logit(h_k) = log(-expm1(-a_k)) + a_k``.
    Increments are clamped at ``min_increment`` so a flat step gives a finite logit (~ -27).
    """
    eta = eta.reshape(-1)
    h0 = cumhaz.to(eta.dtype).reshape(-1)
    increments = torch.diff(h0, prepend=h0.new_zeros(1)).clamp(min=min_increment)
    a = increments[None, :] * torch.exp(eta)[:, None]
    return torch.log(-torch.expm1(-a)) + a
