"""ME-Mamba components: scan orders, restoration, OT assignment, fusion, ablations, streaming."""

from __future__ import annotations

import math

import pytest
import torch

from wsirisk.models import build_model, me_mamba, nll_loss
from wsirisk.models.mamba import BiMambaLayer, MambaLayer, MultiOrderMamba
from wsirisk.models.me_mamba import (
    MMD_BANDWIDTHS,
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


def test_gradients_reach_every_expert() -> None:
    model = _model().train()
    out = model(torch.randn(15, 24), _omics())
    loss = nll_loss(out.logits, torch.tensor([2]), torch.tensor([0.0])) + out.aux_loss
    loss.backward()
    for part in ("path_expert", "omic_expert", "synergistic", "path_fc", "omic_nets", "pool"):
        grads = [p.grad for p in getattr(model, part).parameters()]
        assert all(g is not None and g.abs().sum() > 0 for g in grads), part
    assert set(out.embeddings) == {"pathology", "genomics", "fusion"}
    assert all(v.shape == (1, DIM) for v in out.embeddings.values())


def _capture(module: torch.nn.Module) -> tuple[list[tuple], object]:
    """Record the positional inputs of every call of ``module``."""
    calls: list[tuple] = []
    handle = module.register_forward_pre_hook(lambda _m, args: calls.append(args))
    return calls, handle


def _mmd2_reference(x: torch.Tensor, y: torch.Tensor, bandwidths: tuple[float, ...]) -> float:
    """Biased MMD^2 with a sum of Gaussian kernels scaled by the median pairwise distance,
    written out in float64 loops (no subsampling: the sets are smaller than mmd_samples)."""
    z = torch.cat([x, y]).detach().double()
    n, m = x.shape[0], z.shape[0]
    d2 = [[float(((z[i] - z[j]) ** 2).sum()) for j in range(m)] for i in range(m)]

    off = sorted(d2[i][j] for i in range(m) for j in range(m) if i != j)
    scale = off[(len(off) - 1) // 2]  # torch.median: the lower middle value

    def k(i: int, j: int) -> float:
        return sum(math.exp(-d2[i][j] / (2.0 * b * scale)) for b in bandwidths)

    def mean(rows: range, cols: range) -> float:
        return sum(k(i, j) for i in rows for j in cols) / (len(rows) * len(cols))

    xs, ys = range(n), range(n, m)
    return mean(xs, xs) + mean(ys, ys) - 2.0 * mean(xs, ys)


@pytest.mark.parametrize("bandwidths", [None, (1.0,)])
def test_aux_loss_is_weighted_two_sided_mmd_and_global_fusion_switch(
    bandwidths: tuple[float, ...] | None,
) -> None:
    kw = {} if bandwidths is None else {"mmd_bandwidths": list(bandwidths)}  # JSON gives a list
    model = _model(mmd_weight=0.3, **kw).eval()
    assert model.synergistic.mmd_bandwidths == (bandwidths or MMD_BANDWIDTHS)
    calls, handle = _capture(model.synergistic)
    x_path, x_omics = torch.randn(9, 24, generator=torch.Generator().manual_seed(3)), _omics()
    out = model(x_path, x_omics)
    handle.remove()
    xp, xg = calls[0]
    xp_f, xg_f = ot_fuse(xp, xg)
    bws = model.synergistic.mmd_bandwidths
    expect = 0.3 * (_mmd2_reference(xp_f, xg_f, bws) + _mmd2_reference(xg_f, xp_f, bws))
    assert out.aux_loss.item() == pytest.approx(expect, rel=1e-4)
    # same weights, global fusion off: no aux loss, identical prediction (MMD is a loss only)
    model.synergistic.global_fusion = False
    off = model(x_path, x_omics)
    assert off.aux_loss.item() == 0.0
    assert torch.equal(off.logits, out.logits)


def test_synergistic_switch_runs_or_skips_the_expert() -> None:
    model = _model().eval()
    x_path, x_omics = torch.randn(9, 24), _omics()
    calls, handle = _capture(model.synergistic)
    on = model(x_path, x_omics)
    expert = model.synergistic
    model.synergistic = None  # same weights everywhere else
    off = model(x_path, x_omics)
    handle.remove()
    assert len(calls) == 1  # only the first forward ran the Synergistic Expert
    assert "fusion" in on.embeddings and "fusion" not in off.embeddings
    assert off.aux_loss.item() == 0.0 and on.aux_loss.item() > 0.0
    # without it the prediction is the pooling of the two experts' tokens alone
    p = model.path_expert(model.path_fc(x_path))
    nets = zip(model.omic_nets, x_omics, strict=True)
    g = model.omic_expert(torch.stack([n(v) for n, v in nets]))
    tokens = torch.cat([p, g])
    a = torch.softmax(model.pool.attn(tokens), dim=0)
    expect = model.classifier(model.pool.rho(a @ tokens).unsqueeze(0))
    assert torch.allclose(off.logits, expect, atol=1e-6)
    model.synergistic = expert


def test_local_fusion_switch_runs_or_skips_ot(monkeypatch: pytest.MonkeyPatch) -> None:
    import wsirisk.models.me_mamba as me

    model = _model().eval()
    x_path, x_omics = torch.randn(9, 24), _omics()
    n_calls = []
    real = me.ot_fuse
    monkeypatch.setattr(me, "ot_fuse", lambda a, b: n_calls.append(1) or real(a, b))
    on = model(x_path, x_omics)
    assert len(n_calls) == 1
    model.synergistic.local_fusion = False  # same weights
    pre, pre_h = _capture(model.synergistic)
    calls, handle = _capture(model.synergistic.layers[0])
    off = model(x_path, x_omics)
    handle.remove()
    pre_h.remove()
    assert len(n_calls) == 1  # OT did not run again
    xp, xg = pre[0]
    assert torch.equal(calls[0][0], interleave(xp, xg))  # the raw expert outputs, interleaved
    assert not torch.allclose(on.logits, off.logits)


@pytest.mark.parametrize("scan", ["interleave", "path_first", "genomics_first"])
def test_fusion_scan_token_layout(scan: str) -> None:
    model = _model().eval()
    model.synergistic.fusion_scan = scan  # same weights, switch flipped
    calls, handle = _capture(model.synergistic.layers[0])
    pre, pre_h = _capture(model.synergistic)
    x_path, x_omics = torch.randn(9, 24), _omics()
    model(x_path, x_omics)
    handle.remove()
    pre_h.remove()
    xp_f, xg_f = ot_fuse(*pre[0])  # 6 fused pathology tokens (one per genomic token), 9 genomic
    seq = calls[0][0]
    expect = {
        "interleave": interleave(xp_f, xg_f),
        "path_first": torch.cat([xp_f, xg_f]),
        "genomics_first": torch.cat([xg_f, xp_f]),
    }[scan]
    assert torch.equal(seq, expect)
    if scan == "path_first":
        assert torch.equal(seq[: xp_f.shape[0]], xp_f)


@pytest.mark.parametrize("bidirectional", [True, False])
def test_fusion_bidirectional_scans_both_ways(bidirectional: bool) -> None:
    model = _model(fusion_bidirectional=bidirectional).eval()
    calls, handle = _capture(model.synergistic.layers[0].mixer)
    model(torch.randn(9, 24), _omics())
    handle.remove()
    x, orders = calls[0][0], calls[0][1]
    n = x.shape[0]
    if bidirectional:
        assert orders.tolist() == [list(range(n)), list(range(n))[::-1]]
    else:
        assert orders is None  # the identity: one forward scan


def _grid(cols: int, rows: int) -> torch.Tensor:
    """Row-major tile positions (um) of a cols x rows grid of 128 um tiles."""
    i = torch.arange(cols * rows)
    return torch.stack([(i % cols) * 128.0, (i // cols) * 128.0], dim=1)


def test_scan_orders_reach_the_mixer_and_as_is_descending() -> None:
    model = _model().eval()
    layer = model.path_expert.layers[0]
    calls, handle = _capture(layer.mixer)
    inputs, handle_in = _capture(layer)
    coords = _grid(4, 3)[torch.randperm(12, generator=torch.Generator().manual_seed(5))]
    model(torch.randn(12, 24), _omics(), coords=coords)
    handle.remove()
    handle_in.remove()
    orders = calls[0][1]
    rank = {tuple(c): i for i, c in enumerate(coords.tolist())}
    row_major = [rank[(x * 128.0, y * 128.0)] for y in range(3) for x in range(4)]
    col_major = [rank[(x * 128.0, y * 128.0)] for x in range(4) for y in range(3)]
    assert orders[0].tolist() == row_major  # OS: the tile grid read row by row
    assert orders[1].tolist() == col_major  # TS (spatial): top to bottom, column by column
    scores = layer.scorer(inputs[0][0])
    assert torch.all(scores[orders[2]].diff() <= 0)  # AS: descending scorer scores
    assert sorted(orders[2].tolist()) == list(range(12))


@pytest.mark.parametrize("scans", [("os",), ("os", "ts"), ("os", "as"), ("ts", "as")])
def test_scans_switch_sends_exactly_those_orders(scans: tuple[str, ...]) -> None:
    model = _model(scans=scans).eval()
    layer = model.path_expert.layers[0]
    calls, handle = _capture(layer.mixer)
    coords = _grid(5, 3)
    model(torch.randn(15, 24), _omics(), coords=coords)
    handle.remove()
    orders = calls[0][1]
    expect = {"os": list(range(15)), "ts": [c + 5 * r for c in range(5) for r in range(3)]}
    assert orders.shape == (len(scans), 15)
    for row, scan in zip(orders.tolist(), scans, strict=True):
        if scan == "as":
            assert sorted(row) == list(range(15)) and calls[0][2] is not None  # scorer factor
        else:
            assert row == expect[scan]
    if "as" not in scans:
        assert calls[0][2] is None and layer.scorer is None  # no scorer, no straight-through


def test_ts_order_switch_changes_the_layer_output_only_with_coords() -> None:
    model = _model(scans="ts").eval()
    # 5 x 3 grid: the stride order (rows of ceil(sqrt(15)) = 4) is not column-major here
    x_path, x_omics, coords = torch.randn(15, 24), _omics(), _grid(5, 3)
    spatial = model(x_path, x_omics, coords=coords).logits
    model.path_expert.ts_order = "stride"  # same weights
    stride = model(x_path, x_omics, coords=coords).logits
    no_coords = model(x_path, x_omics).logits
    assert not torch.allclose(spatial, stride, atol=1e-5)
    assert torch.equal(stride, no_coords)  # stride order over a row-major bag = bag order


@pytest.mark.parametrize("ts_order", ["spatial", "stride"])
def test_transposed_scan_is_applied_inside_the_layer(ts_order: str) -> None:
    # A TS-only layer must equal a one-order mixer run on the tokens in the TS order, restored.
    torch.manual_seed(0)
    expert = me_mamba.UnimodalExpert(DIM, 1, ts_order, scans=("ts",), dropout=0.0).eval()
    layer = expert.layers[0]
    x, coords = _x(15), _grid(5, 3)
    perm = torch.randperm(15, generator=torch.Generator().manual_seed(1))
    x, coords = x[perm], coords[perm]  # bag order != grid order
    rank = {tuple(c): i for i, c in enumerate(coords.tolist())}
    row_major = [rank[(c * 128.0, r * 128.0)] for r in range(3) for c in range(5)]
    if ts_order == "spatial":
        ts = [rank[(c * 128.0, r * 128.0)] for c in range(5) for r in range(3)]
    else:  # MambaMIL: the row-major sequence in rows of ceil(sqrt(15)) = 4, read by columns
        ts = [row_major[i] for i in [0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11]]
    ts = torch.tensor(ts)
    got = layer(x, me_mamba.base_orders(15, coords, ts_order, layer.transpose_stride))
    expect = x + restore(layer.mixer(x[ts]), ts)  # the mixer alone, on the permuted tokens
    assert torch.allclose(got, expect, atol=1e-5)
    identity = x + layer.mixer(x)
    assert not torch.allclose(got, identity, atol=1e-4)  # the order matters: the probe can fail


def test_bad_switches_raise() -> None:
    with pytest.raises(ValueError, match="scans"):
        _model(scans=("os", "zigzag"))
    with pytest.raises(ValueError, match="fusion_scan"):
        _model(fusion_scan="random")
    with pytest.raises(ValueError, match="ts_order"):
        _model(ts_order="diagonal")


def test_missing_modality_skips_fusion() -> None:
    model = _model().eval()
    out = model(torch.randn(7, 24), None)
    assert out.aux_loss.item() == 0 and set(out.embeddings) == {"pathology"}
    out = model(None, _omics())
    assert out.attention is None and set(out.embeddings) == {"genomics"}
