"""ME-Mamba components: scan orders, restoration, OT assignment, fusion, ablations, streaming."""

from __future__ import annotations

import pytest
import torch

from wsirisk.models import build_model, nll_loss
from wsirisk.models.mamba import BiMambaLayer, MambaLayer, MultiOrderMamba
from wsirisk.models.me_mamba import (
    AttentionMambaLayer,
    interleave,
    ot_fuse,
    restore,
    transposed_order,
)

SIZES = [5, 7, 3, 6, 4, 8]
DIM = 16


def _x(n: int, seed: int = 0, d: int = DIM) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def _model(**kw: object) -> torch.nn.Module:
    torch.manual_seed(0)
    opts: dict[str, object] = {"dim": DIM, "n_layers": 1, "n_fusion_layers": 1}
    opts.update(kw)
    return build_model("me_mamba", path_dim=24, omics_sizes=SIZES, **opts)


def _omics(seed: int = 1) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=g) for s in SIZES]


def test_transposed_order_reorders_six_tokens_and_is_a_permutation() -> None:
    assert transposed_order(6).tolist() == [0, 3, 1, 4, 2, 5]
    assert transposed_order(7).tolist() == [0, 3, 6, 1, 4, 2, 5]  # stride 3, padding skipped
    long = transposed_order(1000, stride=10)
    assert long[:3].tolist() == [0, 10, 20]
    assert sorted(long.tolist()) == list(range(1000))
    assert transposed_order(1).tolist() == [0]


def test_restore_inverts_any_order() -> None:
    y = _x(9)
    order = torch.randperm(9, generator=torch.Generator().manual_seed(0))
    assert torch.equal(restore(y[order], order), y)


def test_multi_order_mixer_restores_token_order() -> None:
    # Branch k scanning x in order p_k must equal a one-order mixer run on x[p_k], restored.
    torch.manual_seed(0)
    two = MultiOrderMamba(DIM, 2)
    x = _x(13)
    perm = torch.randperm(13, generator=torch.Generator().manual_seed(2))
    orders = torch.stack([torch.arange(13), perm])
    out = two(x, orders)
    singles = []
    for k in range(2):
        one = MultiOrderMamba(DIM, 1)
        with torch.no_grad():
            for p1, p2 in zip(one.params(), two.params(), strict=True):
                if p1.shape == p2.shape:  # shared in/out projections
                    p1.copy_(p2)
                else:  # per-branch parameters are stacked along the first dimension
                    p1.copy_(p2.reshape(2, -1, *p2.shape[1:])[k].reshape(p1.shape))
        singles.append(restore(one(x[orders[k]]), orders[k]))
    assert torch.allclose(out, singles[0] + singles[1], atol=1e-5)


def test_attention_order_layer_is_permutation_equivariant() -> None:
    torch.manual_seed(0)
    layer = AttentionMambaLayer(DIM, scans=("as",), dropout=0.0).eval()
    x = _x(12)
    perm = torch.randperm(12, generator=torch.Generator().manual_seed(4))
    assert torch.allclose(layer(x[perm]), layer(x)[perm], atol=1e-5)
    # the original-order scan is not: order matters to a recurrent model
    os_layer = AttentionMambaLayer(DIM, scans=("os",)).eval()
    assert not torch.allclose(os_layer(x[perm]), os_layer(x)[perm], atol=1e-3)


def test_mamba_is_causal_and_bimamba_is_not() -> None:
    torch.manual_seed(0)
    x = _x(10)
    x2 = x.clone()
    x2[6] += torch.linspace(-1.0, 1.0, DIM)  # not a constant shift: LayerNorm would remove it
    uni, bi = MambaLayer(DIM), BiMambaLayer(DIM)
    d_uni = (uni(x2) - uni(x)).abs().sum(-1)
    d_bi = (bi(x2) - bi(x)).abs().sum(-1)
    # earlier outputs move only by rounding (chunking of the scan sees the whole sequence)
    assert d_uni[:6].max() < 1e-6 and d_uni[6:].min() > 1e-4
    assert d_bi[:6].min() > 1e-4


def test_streamed_layer_matches_whole_sequence() -> None:
    torch.manual_seed(0)
    mixer = MultiOrderMamba(DIM, 3, stream_chunk=4)
    x = _x(19).requires_grad_()
    scale = (1.0 + 0.1 * _x(19, seed=8)[:, 0]).requires_grad_()
    orders = torch.stack([torch.arange(19), transposed_order(19), torch.arange(19).flip(0)])
    w = _x(19, seed=7)
    grads = []
    for stream in (False, True):
        mixer.zero_grad()
        x.grad = scale.grad = None
        y = mixer(x, orders, scale, stream=stream)
        (y * w).sum().backward()
        grads.append(
            [y.detach(), x.grad.clone(), scale.grad.clone()]
            + [p.grad.clone() for p in mixer.params()]
        )
    for a, b in zip(*grads, strict=True):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)


def test_ot_assignment_hand_made() -> None:
    xg = torch.eye(3)  # genomic tokens e0, e1, e2
    xp = torch.tensor([[2.0, 0.1, 0.0], [1.0, 0.0, 0.2], [0.0, 3.0, 0.0], [0.1, 0.0, -1.0]])
    # cosine-nearest genomic token per patch: 0, 0, 1, 0 (patch 3 is anti-aligned with e2)
    xp_f, xg_f = ot_fuse(xp, xg)
    assert torch.equal(xg_f, xg[[0, 0, 1, 0]])
    assert torch.allclose(xp_f[0], (xp[0] + xp[1] + xp[3]) / 3)  # mean of its patches
    assert torch.allclose(xp_f[1], xp[2])
    # e2 is nobody's nearest: it takes its own nearest patch (cosine 0.2/1.02 for patch 1)
    assert torch.allclose(xp_f[2], xp[1])


def test_interleave() -> None:
    a, b = torch.arange(2.0).view(2, 1), 10 + torch.arange(4.0).view(4, 1)
    assert interleave(a, b).flatten().tolist() == [0, 10, 1, 11, 12, 13]
    assert interleave(b, a).flatten().tolist() == [10, 0, 11, 1, 12, 13]


def test_gradients_reach_every_expert_and_aux_loss_is_mmd() -> None:
    model = _model().train()
    out = model(torch.randn(15, 24), _omics())
    assert out.aux_loss.item() > 0
    loss = nll_loss(out.logits, torch.tensor([2]), torch.tensor([0.0])) + out.aux_loss
    loss.backward()
    for part in ("path_expert", "omic_expert", "synergistic", "path_fc", "omic_nets", "pool"):
        grads = [p.grad for p in getattr(model, part).parameters()]
        assert all(g is not None and g.abs().sum() > 0 for g in grads), part
    assert set(out.embeddings) == {"pathology", "genomics", "fusion"}
    assert all(v.shape == (1, DIM) for v in out.embeddings.values())


@pytest.mark.parametrize(
    ("kw", "aux_zero"),
    [
        ({"scans": "os"}, False),
        ({"scans": ("os", "ts")}, False),
        ({"scans": ("os", "as")}, False),
        ({"synergistic": False}, True),
        ({"local_fusion": False}, False),
        ({"global_fusion": False}, True),
        ({"fusion_scan": "path_first"}, False),
        ({"fusion_scan": "genomics_first"}, False),
        ({"fusion_bidirectional": False}, False),
    ],
)
def test_ablation_switches(kw: dict[str, object], aux_zero: bool) -> None:
    x_path, x_omics = torch.randn(9, 24, generator=torch.Generator().manual_seed(3)), _omics()
    full = _model().eval()(x_path, x_omics)
    model = _model(**kw).eval()
    out = model(x_path, x_omics)
    assert out.logits.shape == (1, 4)
    assert (out.aux_loss.item() == 0) == aux_zero
    if kw != {"global_fusion": False}:  # MMD only enters the loss, not the prediction
        assert not torch.allclose(out.logits, full.logits)
    if "scans" in kw:
        n = len(kw["scans"]) if isinstance(kw["scans"], tuple) else 1
        assert model.path_expert.layers[0].mixer.n_orders == n


def test_bad_switches_raise() -> None:
    with pytest.raises(ValueError, match="scans"):
        _model(scans=("os", "zigzag"))
    with pytest.raises(ValueError, match="fusion_scan"):
        _model(fusion_scan="random")


def test_missing_modality_skips_fusion() -> None:
    model = _model().eval()
    out = model(torch.randn(7, 24), None)
    assert out.aux_loss.item() == 0 and set(out.embeddings) == {"pathology"}
    out = model(None, _omics())
    assert out.attention is None and set(out.embeddings) == {"genomics"}
