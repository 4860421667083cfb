"""Cox partial likelihood, Breslow baseline and Cox survival curves against independent code."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from wsirisk.models import breslow_cumhaz, cox_ph_loss, cox_survival, survival_from_logits
from wsirisk.models.losses import cox_logits


def _neg_log_pl_numpy(eta: np.ndarray, time: np.ndarray, event: np.ndarray) -> float:
    """-log partial likelihood / n_events, Breslow ties, written as a plain loop."""
    total, n_events = 0.0, 0
    for i in range(len(eta)):
        if event[i]:
            denom = sum(math.exp(eta[j]) for j in range(len(eta)) if time[j] >= time[i])
            total += eta[i] - math.log(denom)
            n_events += 1
    return -total / n_events


def test_cox_loss_equals_independent_computation_with_ties() -> None:
    rng = np.random.default_rng(0)
    eta = rng.normal(size=12)
    time = np.array([5, 3, 3, 8, 1, 5, 9, 2, 3, 7, 7, 4], dtype=float)  # tied deaths at 3, 5, 7
    event = np.array([1, 1, 1, 0, 1, 1, 0, 1, 0, 1, 1, 0])
    got = cox_ph_loss(torch.tensor(eta), torch.tensor(time), torch.tensor(event)).item()
    assert got == pytest.approx(_neg_log_pl_numpy(eta, time, event), rel=1e-10)
    # the loss is a function of the set: shuffling the batch does not change it
    perm = rng.permutation(12)
    shuffled = cox_ph_loss(
        torch.tensor(eta[perm]), torch.tensor(time[perm]), torch.tensor(event[perm])
    )
    assert shuffled.item() == pytest.approx(got, rel=1e-12)
    # shifting every log-risk by a constant does not change a partial likelihood
    shifted = cox_ph_loss(torch.tensor(eta + 3.0), torch.tensor(time), torch.tensor(event))
    assert shifted.item() == pytest.approx(got, rel=1e-10)


def test_cox_loss_matches_lifelines_partial_likelihood() -> None:
    lifelines = pytest.importorskip("lifelines")
    import pandas as pd

    rng = np.random.default_rng(1)
    n = 60
    x = rng.normal(size=n)
    time = rng.exponential(np.exp(-0.8 * x)) + rng.uniform(0, 1e-3, size=n)  # no ties
    event = (rng.uniform(size=n) < 0.7).astype(int)
    cph = lifelines.CoxPHFitter(penalizer=0.0)
    cph.fit(pd.DataFrame({"x": x, "T": time, "E": event}), "T", "E")
    beta = float(cph.params_["x"])
    loss = cox_ph_loss(torch.tensor(beta * x), torch.tensor(time), torch.tensor(event))
    assert loss.item() * event.sum() == pytest.approx(-cph.log_likelihood_, rel=1e-6)


def test_cox_loss_without_events_is_zero_and_gradient_is_exact() -> None:
    eta = torch.tensor([0.3, -1.0, 2.0], requires_grad=True)
    assert cox_ph_loss(eta, torch.tensor([1.0, 2, 3]), torch.tensor([0, 0, 0])).item() == 0.0
    # d/d eta of -(eta_0 - log(sum e^eta)) with patient 0 the only death (earliest time)
    loss = cox_ph_loss(eta, torch.tensor([1.0, 2, 3]), torch.tensor([1, 0, 0]))
    loss.backward()
    soft = torch.softmax(eta.detach(), 0)
    np.testing.assert_allclose(eta.grad.numpy(), (soft - torch.tensor([1.0, 0, 0])).numpy(), 1e-6)
    with pytest.raises(ValueError, match="one value per patient"):
        cox_ph_loss(eta, torch.tensor([1.0, 2]), torch.tensor([1, 0]))


def test_breslow_baseline_matches_hand_formula_and_sksurv() -> None:
    rng = np.random.default_rng(2)
    eta = rng.normal(size=30)
    time = rng.integers(1, 12, size=30).astype(float)  # many ties
    event = (rng.uniform(size=30) < 0.6).astype(int)
    at = [0.5, 3.0, 6.5, 11.0, 20.0]
    got = breslow_cumhaz(torch.tensor(eta), time, event, at).numpy()
    expect = []
    for t in at:
        h = 0.0
        for s in np.unique(time[event == 1]):
            if s <= t:
                d = int(((time == s) & (event == 1)).sum())
                h += d / np.exp(eta[time >= s]).sum()
        expect.append(h)
    np.testing.assert_allclose(got, expect, rtol=1e-10)
    assert got[0] == 0.0 and np.all(np.diff(got) >= 0)
    coxph = pytest.importorskip("sksurv.linear_model.coxph")
    ref = coxph.BreslowEstimator().fit(eta, event.astype(bool), time)
    np.testing.assert_allclose(got[1:4], ref.cum_baseline_hazard_(np.array(at[1:4])), rtol=1e-8)


def test_cox_logits_reproduce_cox_survival() -> None:
    eta = torch.tensor([-2.0, 0.0, 1.5, 3.0])
    cumhaz = torch.tensor([0.05, 0.2, 0.2, 0.9])  # a flat step too
    s_direct = cox_survival(eta, cumhaz)
    s_logits = survival_from_logits(cox_logits(eta, cumhaz))
    torch.testing.assert_close(s_logits, s_direct, atol=1e-6, rtol=1e-5)
    assert torch.all(s_direct[:-1, -1] > s_direct[1:, -1])  # higher risk, lower survival
