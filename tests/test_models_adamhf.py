"""AdaMHF: top-1 expert routing, ATSA selection, missing modalities, alignment loss, fusion."""

from __future__ import annotations

import pytest
import torch

from wsirisk.models import build_model, nll_loss
from wsirisk.models.adamhf import ATSA, LMF, CrossAttention, PREELayer, SNNExpert

SIZES = [5, 7, 3, 6, 4, 8]
PATH_DIM = 24
DIM = 16


def _inputs(n: int = 20, seed: int = 0) -> tuple[torch.Tensor, list[torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, PATH_DIM, generator=g), [torch.randn(s, generator=g) for s in SIZES]


def _model(**kw: object) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("adamhf", path_dim=PATH_DIM, omics_sizes=SIZES, dim=DIM, **kw)


def _layer(n_experts: int = 3) -> PREELayer:
    torch.manual_seed(1)
    layer = PREELayer(DIM, n_experts, lambda: SNNExpert(DIM, DIM, 0.0), dropout=0.0)
    return layer.eval()


def test_top1_gating_sends_each_token_through_exactly_one_expert() -> None:
    layer = _layer(3)
    x = torch.randn(40, DIM, generator=torch.Generator().manual_seed(2))
    seen: list[torch.Tensor] = []
    for expert in layer.experts:
        expert.register_forward_hook(lambda _m, args, _o: seen.append(args[1]))
    out = layer(x)
    routed = torch.cat(seen)
    assert sorted(routed.tolist()) == list(range(40))  # every token once, no token twice
    assert int(layer.last_counts.sum()) == 40 and int((layer.last_counts > 0).sum()) >= 2
    # the output is x + MLP(h) + p_e * E_e(h) with e the argmax of the gate, token by token
    h = layer.norm(x)
    probs = torch.softmax(layer.gate(h), dim=-1)
    expect = torch.stack(
        [
            x[i]
            + layer.mlp(h[i])
            + probs[i].max() * layer.experts[int(probs[i].argmax())].net(h[i])
            for i in range(40)
        ]
    )
    torch.testing.assert_close(out, expect, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("forced", [0, 2])
def test_flipping_the_gate_moves_the_gradient_to_the_other_expert(forced: int) -> None:
    layer = _layer(3)
    with torch.no_grad():
        layer.gate[-1].bias.zero_()
        layer.gate[-1].bias[forced] = 50.0  # every token picks expert ``forced``
    x = torch.randn(10, DIM, generator=torch.Generator().manual_seed(3))
    layer(x).pow(2).sum().backward()
    for e, expert in enumerate(layer.experts):
        grads = [p.grad for p in expert.parameters()]
        if e == forced:
            assert all(g is not None and g.abs().sum() > 0 for g in grads)
        else:
            assert all(g is None for g in grads)  # never ran: no gradient at all
    assert layer.last_counts.tolist() == [10 if e == forced else 0 for e in range(3)]


def _atsa(preserve: bool, k: int | None = 6, alpha: float | None = 0.5) -> ATSA:
    torch.manual_seed(4)
    return ATSA(DIM, k_max=8, k=k, alpha=alpha, preserve=preserve).eval()


def test_atsa_keeps_the_top_tokens_by_score_unchanged() -> None:
    atsa = _atsa(preserve=True)
    g = torch.Generator().manual_seed(5)
    tokens, cls = torch.randn(30, DIM, generator=g), torch.randn(DIM, generator=g)
    out, s, order = atsa(tokens, cls)
    assert s.sum().item() == pytest.approx(1.0, abs=1e-6)
    top3 = torch.topk(s, 3).indices  # k_keep = round(0.5 * 6) = 3
    assert torch.equal(order[:3], top3)
    torch.testing.assert_close(out[:3], tokens[top3])
    # K = 6 output tokens: 3 kept + 3 pooled from the other 27 (ranked) tokens
    assert out.shape == (6, DIM)
    ranked_rest = tokens[order[3:]]
    torch.testing.assert_close(out[3], ranked_rest[:9].mean(0))  # adaptive pooling: 27 -> 3 x 9


def _replace_dropped(atsa: ATSA, tokens: torch.Tensor, cls: torch.Tensor) -> torch.Tensor:
    """Copy of ``tokens`` with every non-Top-K token replaced by the lowest-scoring one."""
    _, s, order = atsa(tokens, cls)
    changed = tokens.clone()
    changed[order[6:]] = tokens[order[-1]]
    return changed


def test_atsa_output_is_invariant_to_dropped_tokens_without_preserving() -> None:
    g = torch.Generator().manual_seed(6)
    tokens, cls = torch.randn(30, DIM, generator=g), torch.randn(DIM, generator=g)
    strict, preserving = _atsa(preserve=False), _atsa(preserve=True)
    changed = _replace_dropped(strict, tokens, cls)
    assert not torch.equal(changed, tokens)
    torch.testing.assert_close(strict(changed, cls)[0], strict(tokens, cls)[0])
    # with the preserving strategy (eq. 13) the dropped tokens reach the pooled tokens only
    a, b = preserving(tokens, cls)[0], preserving(changed, cls)[0]
    torch.testing.assert_close(a[:3], b[:3])
    assert not torch.allclose(a[3:], b[3:])


def test_atsa_routers_choose_k_and_alpha_and_get_gradient() -> None:
    atsa = _atsa(preserve=True, k=None, alpha=None).train()
    g = torch.Generator().manual_seed(7)
    tokens, cls = torch.randn(30, DIM, generator=g), torch.randn(DIM, generator=g)
    k, keep, k_soft, keep_soft = atsa.sizes(30, cls)
    assert 1 <= keep <= k <= 8
    assert k == round(float(k_soft.detach())) and keep == round(float(keep_soft.detach()))
    out, _, _ = atsa(tokens, cls)
    assert out.shape[0] == k
    out.pow(2).sum().backward()
    for part in (atsa.k_router, atsa.alpha_router, atsa.scorer, atsa.local, atsa.glob):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters())


def test_alignment_loss_is_l1_of_the_integration_class_tokens() -> None:
    model = _model(align_weight=0.3).eval()
    cls: dict[str, torch.Tensor] = {}
    for m in ("pathology", "genomics"):
        model.integration[m].register_forward_hook(
            lambda _mod, _args, out, m=m: cls.__setitem__(m, out[0].detach())
        )
    x_path, x_omics = _inputs()
    out = model(x_path, x_omics)
    expect = 0.3 * (cls["pathology"] - cls["genomics"]).abs().mean()
    assert out.aux_loss.item() == pytest.approx(expect.item(), rel=1e-6)
    assert out.aux_loss.item() > 0
    torch.testing.assert_close(out.embeddings["pathology"][0], cls["pathology"])
    assert model(None, x_omics).aux_loss.item() == 0.0  # no alignment with a missing modality


def test_missing_modality_runs_as_no_information_input() -> None:
    model = _model().eval()
    x_path, x_omics = _inputs()
    no_path = model(None, x_omics)
    zero_path = model(torch.zeros(1, PATH_DIM), x_omics)
    torch.testing.assert_close(no_path.logits, zero_path.logits)  # absent = one zero patch
    no_omics = model(x_path, None)
    zero_omics = model(x_path, [torch.zeros(s) for s in SIZES])
    torch.testing.assert_close(no_omics.logits, zero_omics.logits)  # absent = imputed mean
    assert no_path.attention is None and "pathology" not in no_path.embeddings
    assert no_omics.attention is not None and no_omics.attention.shape == (20,)
    for out in (no_path, no_omics):
        assert torch.isfinite(out.logits).all()
    with pytest.raises(ValueError, match="neither"):
        model(None, None)


def test_training_step_with_a_missing_modality_updates_the_model() -> None:
    model = _model().train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x_path, x_omics = _inputs()
    before = model(None, x_omics).logits.detach()
    for _ in range(3):
        for xp, xo in ((None, x_omics), (x_path, None)):
            out = model(xp, xo)
            loss = nll_loss(out.logits, torch.tensor([2]), torch.tensor([0.0])) + out.aux_loss
            opt.zero_grad()
            loss.backward()
            opt.step()
    after = model.eval()(None, x_omics).logits
    assert torch.isfinite(after).all() and not torch.allclose(before, after)


def test_modality_dropout_only_in_training() -> None:
    model = _model(modality_dropout=0.99).eval()
    x_path, x_omics = _inputs()
    full = model(x_path, x_omics)
    assert full.aux_loss.item() > 0  # eval: nothing dropped
    model.train()
    torch.manual_seed(0)
    assert model(x_path, x_omics).aux_loss.item() == 0.0  # a modality was dropped


def test_cross_attention_and_lmf_follow_their_equations() -> None:
    torch.manual_seed(8)
    cross, lmf = CrossAttention(DIM), LMF(DIM, DIM, rank=3)
    xp, xg = torch.randn(9, DIM), torch.randn(6, DIM)
    p_star, g_star = cross(xp, xg)
    assert p_star.shape == (6, DIM) and g_star.shape == (9, DIM)
    x = cross.wp1(xp) @ cross.wg1(xg).t() / DIM**0.5
    torch.testing.assert_close(p_star, cross.wp2(torch.softmax(x, 0).t() @ xp))
    torch.testing.assert_close(g_star, cross.wg2(torch.softmax(x, 1) @ xg))
    a, b = torch.randn(DIM), torch.randn(DIM)
    one = torch.ones(1)
    expect = sum(
        (torch.cat([a, one]) @ lmf.fp[r]) * (torch.cat([b, one]) @ lmf.fg[r]) for r in range(3)
    )
    torch.testing.assert_close(lmf(a, b), expect + lmf.bias)


def test_beta_mixes_global_and_local() -> None:
    x_path, x_omics = _inputs()
    outs = {}
    for beta in (0.0, 1.0):
        model = _model(beta=beta).eval()
        cls: dict[str, torch.Tensor] = {}
        for m in ("pathology", "genomics"):
            model.integration[m].register_forward_hook(
                lambda _mod, _args, out, m=m, cls=cls: cls.__setitem__(m, out)
            )
        outs[beta] = model(x_path, x_omics).embeddings["fusion"][0]
        glob = model.merge(torch.cat([cls["genomics"][0], cls["pathology"][0]]))
        local = model.lmf(cls["pathology"][1:].mean(0), cls["genomics"][1:].mean(0))
        torch.testing.assert_close(outs[beta], glob if beta == 0 else local)


def test_checkpointed_stages_give_the_same_gradients() -> None:
    x_path, x_omics = _inputs(n=40)
    grads = []
    for limit in (None, 8):  # 8: every unit stage over more than 8 tokens is recomputed
        model = _model(checkpoint_tokens=limit).train()
        torch.manual_seed(3)  # same dropout masks in both runs
        out = model(x_path, x_omics)
        (nll_loss(out.logits, torch.tensor([1]), torch.tensor([0.0])) + out.aux_loss).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], atol=1e-6, rtol=1e-4)
