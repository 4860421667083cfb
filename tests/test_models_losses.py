"""Survival losses and MMD: hand-computed values and invariants."""

from __future__ import annotations

import math

import pytest
import torch

from wsirisk.models import mmd2, nll_loss, risk_from_logits, survival_from_logits


def test_nll_hand_computed_equal_hazards() -> None:
    # h = 0.5 everywhere. Uncensored in bin 2: -log S_1 - log h_2 = -log(1/4) - log(1/2) = log 8.
    # Censored in bin 1: -log S_1 = log 4. Mean = (log 8 + log 4) / 2 = 2.5 log 2.
    logits = torch.zeros(2, 4)
    loss = nll_loss(logits, torch.tensor([2, 1]), torch.tensor([0.0, 1.0]))
    assert loss.item() == pytest.approx(2.5 * math.log(2), rel=1e-6)


def test_nll_hand_computed_general() -> None:
    logits = torch.tensor([[1.0, -1.0, 0.5, 0.0]])
    h = [1 / (1 + math.exp(-v)) for v in (1.0, -1.0, 0.5, 0.0)]
    # uncensored, k = 0: padding S_{-1} = 1, loss = -log h_0
    assert nll_loss(logits, torch.tensor([0]), torch.tensor([0.0])).item() == pytest.approx(
        -math.log(h[0]), rel=1e-6
    )
    # uncensored, k = 3: -log((1-h0)(1-h1)(1-h2)) - log h3
    expect = -math.log((1 - h[0]) * (1 - h[1]) * (1 - h[2])) - math.log(h[3])
    got = nll_loss(logits, torch.tensor([3]), torch.tensor([0.0])).item()
    assert got == pytest.approx(expect, rel=1e-6)
    # censored, k = 3: -log S_3
    expect_c = -math.log((1 - h[0]) * (1 - h[1]) * (1 - h[2]) * (1 - h[3]))
    got_c = nll_loss(logits, torch.tensor([3]), torch.tensor([1.0])).item()
    assert got_c == pytest.approx(expect_c, rel=1e-6)
    # alpha only re-weights the uncensored term: censored rows shrink by (1 - alpha)
    got_a = nll_loss(logits, torch.tensor([3]), torch.tensor([1.0]), alpha=0.4).item()
    assert got_a == pytest.approx(0.6 * expect_c, rel=1e-6)
    got_u = nll_loss(logits, torch.tensor([3]), torch.tensor([0.0]), alpha=0.4).item()
    assert got_u == pytest.approx(expect, rel=1e-6)


def test_nll_matches_reference_formula_and_stays_finite() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(16, 4, generator=g) * 3
    y = torch.randint(0, 4, (16,), generator=g)
    c = (torch.rand(16, generator=g) > 0.5).float()
    # literal MCAT/PORPOISE nll_loss (cumprod, padded with ones, clamp(min=eps))
    haz = torch.sigmoid(logits)
    s = torch.cumprod(1 - haz, dim=1)
    s_pad = torch.cat([torch.ones(16, 1), s], 1)
    yy, cc = y.view(-1, 1), c.view(-1, 1)
    unc = -(1 - cc) * (
        torch.log(s_pad.gather(1, yy).clamp(min=1e-7))
        + torch.log(haz.gather(1, yy).clamp(min=1e-7))
    )
    cen = -cc * torch.log(s_pad.gather(1, yy + 1).clamp(min=1e-7))
    ref = (cen + unc).mean()
    assert nll_loss(logits, y, c).item() == pytest.approx(ref.item(), rel=1e-5)
    big = torch.full((1, 4), 80.0, requires_grad=True)
    loss = nll_loss(big, torch.tensor([3]), torch.tensor([1.0]))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(big.grad).all()


def test_survival_and_risk() -> None:
    logits = torch.tensor([[0.0, 0.0], [-5.0, -5.0]])
    s = survival_from_logits(logits)
    assert torch.allclose(s[0], torch.tensor([0.5, 0.25]))
    risk = risk_from_logits(logits)
    assert risk.shape == (2,)
    assert risk[0].item() == pytest.approx(-0.75)
    assert risk[0] > risk[1]  # higher hazards -> higher risk


def test_mmd_zero_for_identical_sets_and_positive_otherwise() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(40, 8, generator=g)
    assert mmd2(x, x.clone()).item() == pytest.approx(0.0, abs=1e-6)
    assert mmd2(x, x[torch.randperm(40, generator=g)]).item() == pytest.approx(0.0, abs=1e-6)
    shifted = mmd2(x, x + 3.0).item()
    near = mmd2(x, x + 0.1).item()
    assert shifted > near > 0.0


def test_mmd_subsampling_bounds_memory_and_keeps_gradients() -> None:
    g = torch.Generator().manual_seed(2)
    x = torch.randn(5000, 4, generator=g, requires_grad=True)
    y = torch.randn(6, 4, generator=g) + 1.0
    val = mmd2(x, y, max_samples=64, generator=torch.Generator().manual_seed(0))
    val.backward()
    assert val.item() > 0
    assert int((x.grad.abs().sum(dim=1) > 0).sum()) == 64  # only the sampled rows get gradient
