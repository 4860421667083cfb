"""SurvMamba: spatial regions, grouped Bi-Mamba, IFM cross gating, alpha mix, gene hierarchy,
checkpoint round trip, and the trainer wiring (feature names, RAdam, evaluate-omics)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from test_training import write_cohort, write_features

from wsirisk.cli import main
from wsirisk.layout import CATEGORIES
from wsirisk.models import build_model, nll_loss
from wsirisk.models.gene_hierarchy import build_hierarchy, read_gene_hierarchy
from wsirisk.models.spatial import (
    column_major_order,
    region_index,
    row_major_order,
    slide_index,
)
from wsirisk.models.survmamba import HIM, IFM, FunctionEncoder, GroupedBiMamba
from wsirisk.omics.build import build_omics
from wsirisk.omics.load import load_omics
from wsirisk.training.data import FeatureBank, prepare_fold
from wsirisk.training.trainer import TrainOptions, _optimizer, predict_samples, train_fold

SIZES = [4, 6, 2, 5, 3, 4]
PATH_DIM = 12
DIM = 16


def _names() -> list[list[str]]:
    """Feature names per group: genes G<g><k> with an rnaseq (and for k = 0 a cnv) column."""
    out = []
    for g, size in enumerate(SIZES):
        names = [f"G{g}0_rnaseq", f"G{g}0_cnv"] + [f"G{g}{k}_rnaseq" for k in range(1, size - 1)]
        out.append(names[:size])
    return out


def _model(**kw: object) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("survmamba", path_dim=PATH_DIM, omics_sizes=SIZES, dim=DIM, **kw).eval()


def _omics(seed: int = 1) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=g) for s in SIZES]


def _grid(cols: int, rows: int, x0: float = 0.0) -> torch.Tensor:
    i = torch.arange(cols * rows)
    return torch.stack([x0 + (i % cols) * 128.0, (i // cols) * 128.0], dim=1)


def _bag(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, PATH_DIM, generator=torch.Generator().manual_seed(seed))


# ---- spatial orders and regions -----------------------------------------------------------
def test_spatial_orders_and_regions_on_two_slides() -> None:
    a = _grid(3, 2)  # slide 1: 3 columns x 2 rows
    b = _grid(2, 2, x0=3 * 128.0 + 100_000.0)  # slide 2, placed 100 mm to the right
    coords = torch.cat([b, a])  # bag order: slide 2 first
    assert slide_index(coords).tolist() == [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    # row-major within each slide, slide 1 (leftmost) first
    assert row_major_order(coords).tolist() == [4, 5, 6, 7, 8, 9, 0, 1, 2, 3]
    assert column_major_order(coords).tolist() == [4, 7, 5, 8, 6, 9, 0, 2, 1, 3]
    big = _grid(20, 3)  # 20 x 128 um = 2560 um wide: columns 0-15 in region 0, 16-19 in 1
    region, n = region_index(big)
    assert n == 2
    assert region.view(3, 20)[:, :16].eq(0).all() and region.view(3, 20)[:, 16:].eq(1).all()
    shifted, _ = region_index(big + torch.tensor([777.0, 5.0]))  # grid anchored at the tissue
    assert torch.equal(shifted, region)
    with pytest.raises(ValueError, match="coords"):
        row_major_order(torch.zeros(3))


# ---- HIM: shared weights, one sequence per group ------------------------------------------
def test_grouped_bimamba_batched_equals_one_group_at_a_time() -> None:
    torch.manual_seed(0)
    layer = GroupedBiMamba(DIM, group_tokens=40)
    x = torch.randn(57, DIM, requires_grad=True)
    group = torch.randint(0, 7, (57,), generator=torch.Generator().manual_seed(2))
    w = torch.randn(57, DIM)
    runs = []
    for batched in (False, True):
        layer.batched = batched
        y = layer(x, group, 7)
        grads = torch.autograd.grad((y * w).sum(), [x, *layer.parameters()])
        runs.append([y, *grads])
    # and both equal the plain Bi-Mamba layer run on each group's tokens alone
    ref = torch.empty(57, DIM)
    for k in range(7):
        idx = (group == k).nonzero().flatten()
        ref[idx] = layer.layer(x[idx]).detach()
    assert torch.allclose(runs[0][0], ref, atol=1e-5)
    for a, b in zip(*runs, strict=True):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5)


def test_fine_level_keeps_regions_apart_coarse_level_mixes_them() -> None:
    torch.manual_seed(0)
    him = HIM(DIM).eval()
    x = torch.randn(20, DIM)
    group = torch.tensor([0] * 10 + [1] * 10)
    x2 = x.clone()
    x2[15] += torch.linspace(-1, 1, DIM)  # change one token of region 1
    fine, coarse = him(x, group, 2)
    fine2, coarse2 = him(x2, group, 2)
    assert torch.equal(fine[:10], fine2[:10])  # region 0 untouched
    assert not torch.allclose(fine[10:], fine2[10:], atol=1e-4)
    assert not torch.allclose(coarse[0], coarse2[0], atol=1e-5)  # the region Bi-Mamba mixes
    # the probe can fail: as one group the change reaches every token (backward branch)
    one, _ = him(x, torch.zeros(20, dtype=torch.long), 1)
    one2, _ = him(x2, torch.zeros(20, dtype=torch.long), 1)
    assert (one[:10] - one2[:10]).abs().amax() > 1e-6


def test_bag_order_is_irrelevant_given_coords_but_moving_patches_across_regions_matters() -> None:
    model = _model()
    coords = _grid(24, 4)  # 24 x 4 tiles: two regions (16 and 8 columns wide)
    x, om = _bag(96), _omics()
    base = model(x, om, coords=coords).logits
    perm = torch.randperm(96, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(model(x[perm], om, coords=coords[perm]).logits, base, atol=1e-5)
    # swap the features of a patch of region 0 and one of region 1 (positions fixed)
    x_swap = x.clone()
    x_swap[[0, 20]] = x[[20, 0]]
    assert not torch.allclose(model(x_swap, om, coords=coords).logits, base, atol=1e-5)
    # the same swap inside one region changes the reading order only
    x_in = x.clone()
    x_in[[0, 1]] = x[[1, 0]]
    inside = model(x_in, om, coords=coords).logits
    assert not torch.allclose(inside, base, atol=1e-6)  # Bi-Mamba reads in order: not a set


# ---- IFM and the alpha mix ----------------------------------------------------------------
def test_ifm_gates_each_modality_with_the_other() -> None:
    torch.manual_seed(0)
    ifm = IFM(DIM).eval()
    a, b = torch.randn(30, DIM), torch.randn(5, DIM)
    b2 = b + torch.randn(5, DIM)
    out, (h_a, h_b) = ifm(a, b)
    _, (h_a2, _) = ifm(a, b2)
    assert not torch.allclose(h_a, h_a2)  # the pathology half depends on genomics
    y_a, z_a = ifm._ssm(0, a)
    y_b, z_b = ifm._ssm(1, b)
    assert torch.allclose(h_a, y_a.mean(0) * torch.nn.functional.silu(z_b.mean(0)), atol=1e-6)
    assert torch.allclose(h_b, y_b.mean(0) * torch.nn.functional.silu(z_a.mean(0)), atol=1e-6)
    assert torch.allclose(out, ifm.out(torch.cat([h_a, h_b])), atol=1e-6)
    # switch off cross gating (same weights): each half is gated by itself only
    ifm.cross = False
    _, (s_a, _) = ifm(a, b)
    _, (s_a2, _) = ifm(a, b2)
    assert torch.equal(s_a, s_a2)
    assert torch.allclose(s_a, (y_a * torch.nn.functional.silu(z_a)).mean(0), atol=1e-6)
    # one modality: self gating and a zero half
    ifm.cross = True
    one, (o_a, o_b) = ifm(a, None)
    assert torch.allclose(o_a, s_a) and torch.equal(o_b, torch.zeros_like(o_b))


def test_zeroing_genomics_changes_the_pathology_stream_only_with_cross_gating() -> None:
    model = _model()
    x, coords, om = _bag(40), _grid(10, 4), _omics()
    zeros = [torch.zeros_like(g) for g in om]
    halves = []
    hook = model.ifm_fine.register_forward_hook(lambda _m, _i, out: halves.append(out[1][0]))
    model(x, om, coords=coords)
    model(x, zeros, coords=coords)
    model.ifm_fine.cross = False
    model(x, om, coords=coords)
    model(x, zeros, coords=coords)
    hook.remove()
    assert not torch.allclose(halves[0], halves[1])
    assert torch.equal(halves[2], halves[3])


def test_alpha_zero_and_one_select_coarse_and_fine() -> None:
    model = _model()
    x, coords, om = _bag(40), _grid(10, 4), _omics()
    out = model(x, om, coords=coords)
    mix = 0.5 * out.embeddings["fine"] + 0.5 * out.embeddings["coarse"]  # sigmoid(0) = 0.5
    assert torch.allclose(out.logits, model.classifier(mix), atol=1e-6)
    model.fixed_alpha = 1.0
    fine = model(x, om, coords=coords)
    assert torch.allclose(fine.logits, model.classifier(out.embeddings["fine"]), atol=1e-6)
    model.fixed_alpha = 0.0
    coarse = model(x, om, coords=coords)
    assert torch.allclose(coarse.logits, model.classifier(out.embeddings["coarse"]), atol=1e-6)
    assert not torch.allclose(fine.logits, coarse.logits)
    with pytest.raises(ValueError, match="alpha"):
        _model(alpha=1.5)


def test_runs_with_either_modality_and_every_parameter_learns() -> None:
    model = _model().train()
    x, coords, om = _bag(80), _grid(20, 4), _omics()  # two regions: the coarse scans recur
    out = model(x, om, coords=coords)
    loss = nll_loss(out.logits, torch.tensor([1]), torch.tensor([0.0])) + out.aux_loss
    loss.backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum()]
    assert not dead, dead
    model.eval()
    path_only = model(x, None, coords=coords)
    omics_only = model(None, om)
    assert set(path_only.embeddings) == {"pathology", "fine", "coarse", "fusion"}
    assert set(omics_only.embeddings) == {"genomics", "fine", "coarse", "fusion"}
    assert path_only.attention is None and omics_only.logits.shape == (1, 4)
    no_coords = model(x, om)  # bag order, runs of 256 patches as regions
    assert torch.isfinite(no_coords.logits).all()


# ---- gene hierarchy -----------------------------------------------------------------------
def test_default_hierarchy_is_categories_over_genes() -> None:
    h = build_hierarchy(SIZES, _names())
    assert h.processes == list(CATEGORIES)
    assert h.functions[:3] == [
        f"{CATEGORIES[0]}:G00",
        f"{CATEGORIES[0]}:G01",
        f"{CATEGORIES[0]}:G02",
    ]
    # G00_rnaseq and G00_cnv form one function
    assert [f for f, k in h.members if k == 0] == [0, 1]
    assert h.n_unmapped == 0 and h.rows == []
    unnamed = build_hierarchy(SIZES)  # no names: one function per feature
    assert len(unnamed.functions) == sum(SIZES)


def _write_tsv(path: Path, body: str) -> Path:
    path.write_text(body, encoding="utf-8")
    return path


def test_hierarchy_file_maps_genes_and_keeps_unmapped(tmp_path: Path) -> None:
    tsv = _write_tsv(
        tmp_path / "h.tsv",
        "# a comment\nprocess\tgene\tfunction\n"
        "signalling\tG00\tkinases\nsignalling\tG11\tkinases\n"
        "metabolism\tG11\tglycolysis\nsignalling\tNOT_IN_DATA\tkinases\n",
    )
    rows = read_gene_hierarchy(tsv)
    assert rows[0] == ["G00", "kinases", "signalling"]
    h = build_hierarchy(SIZES, _names(), rows)
    assert h.processes == ["signalling", "metabolism", "unmapped"]
    assert h.functions[:2] == ["kinases", "glycolysis"]
    kinases = [f for f, k in h.members if k == 0]
    assert kinases == [0, 1, 6]  # G00 (rnaseq + cnv) and G11_rnaseq (group 1 starts at 4)
    assert [f for f, k in h.members if k == 1] == [6]  # a gene may sit in several functions
    assert h.n_unmapped == sum(SIZES) - 3
    assert all(p == 2 for p in h.function_process[2:])  # one unmapped function per category
    assert ["NOT_IN_DATA", "kinases", "signalling"] not in h.rows
    assert build_hierarchy(SIZES, _names(), h.rows) == h  # the rows rebuild it


def test_hierarchy_file_errors_name_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"h1.tsv:1: header lacks column\(s\) \['process'\]"):
        read_gene_hierarchy(_write_tsv(tmp_path / "h1.tsv", "gene\tfunction\nA\tf\n"))
    bad = "gene\tfunction\tprocess\nA\tf\tp\nB\tf\tq\n"
    with pytest.raises(ValueError, match=r"h2.tsv:3: function 'f' .* 'p' on line 2"):
        read_gene_hierarchy(_write_tsv(tmp_path / "h2.tsv", bad))
    with pytest.raises(ValueError, match=r"h3.tsv:2: empty"):
        read_gene_hierarchy(_write_tsv(tmp_path / "h3.tsv", "gene\tfunction\tprocess\nA\t\tp\n"))
    with pytest.raises(FileNotFoundError, match="missing.tsv"):
        read_gene_hierarchy(tmp_path / "missing.tsv")
    with pytest.raises(ValueError, match="feature names"):
        build_hierarchy(SIZES, None, [["A", "f", "p"]])


def test_function_tokens_see_only_their_genes() -> None:
    torch.manual_seed(0)
    h = build_hierarchy(SIZES, _names())
    enc = FunctionEncoder(h, DIM, dropout=0.0).eval()
    v = torch.randn(sum(SIZES))
    v2 = v.clone()
    v2[1] += 3.0  # G00_cnv: function 0 only
    t, t2 = enc(v), enc(v2)
    changed = (t - t2).abs().sum(1) > 0
    assert changed.tolist() == [True] + [False] * (len(h.functions) - 1)


def test_checkpoint_kwargs_rebuild_without_the_file(tmp_path: Path) -> None:
    tsv = _write_tsv(tmp_path / "h.tsv", "gene\tfunction\tprocess\nG00\tf1\tp1\nG20\tf2\tp2\n")
    kwargs = {"path_dim": PATH_DIM, "omics_sizes": SIZES, "dim": DIM}
    kwargs.update(feature_names=_names(), hierarchy=str(tsv))
    model = build_model("survmamba", **kwargs).eval()
    stored = json.loads(json.dumps(model.portable_kwargs(kwargs)))  # JSON-able
    tsv.unlink()
    again = build_model("survmamba", **stored).eval()
    again.load_state_dict(model.state_dict())
    x, coords, om = _bag(30), _grid(6, 5), _omics()
    assert torch.equal(again(x, om, coords=coords).logits, model(x, om, coords=coords).logits)


# ---- trainer wiring -----------------------------------------------------------------------
def test_train_fold_passes_feature_names_and_uses_radam(tmp_path: Path) -> None:
    csv, sig = write_cohort(tmp_path, n=24)
    store = tmp_path / "omics.zarr"
    build_omics(csv, sig, store, tmp_path / "qc.tsv")
    omics = load_omics(store)
    bank = FeatureBank(write_features(tmp_path, omics.patients[::2]))
    tsv = _write_tsv(tmp_path / "h.tsv", "gene\tfunction\tprocess\nG0A\tf\tp\nG1B\tf\tp\n")
    data = prepare_fold(
        omics, {"train": omics.patients[:16], "val": omics.patients[16:]}, bank=bank
    )
    kw = {"dim": DIM, "hierarchy": str(tsv)}
    opts = TrainOptions.from_dict(
        dict(model="survmamba", epochs=1, optimizer="radam", device="cpu", model_kwargs=kw)
    )
    result = train_fold(data, opts, bank, log=lambda _: None)
    assert isinstance(_optimizer(result.model, opts), torch.optim.RAdam)
    assert result.model_kwargs["feature_names"] == data.feature_names
    assert result.model_kwargs["hierarchy"] == [["G0A", "f", "p"], ["G1B", "f", "p"]]
    assert result.model.hierarchy.functions[0] == "f"
    rebuilt = build_model("survmamba", **json.loads(json.dumps(result.model_kwargs)))
    rebuilt.load_state_dict(result.model.state_dict())
    pred, _ = predict_samples(rebuilt, result.val_samples, "cpu", data.bins.n_bins, bank)
    np.testing.assert_allclose(pred.risk, result.val.risk, rtol=1e-5, atol=1e-6)


def test_evaluate_omics_runs_survmamba(tmp_path: Path, capsys) -> None:
    from test_training import write_alternating_splits

    csv, sig = write_cohort(tmp_path, n=24)
    split_dir = write_alternating_splits(
        tmp_path / "splits", [f"TCGA-XX-{i:04d}" for i in range(24)]
    )
    argv = ["evaluate-omics", str(csv), "--splits", str(split_dir), "--signatures", str(sig)]
    argv += ["--model", "survmamba", "--n-folds", "2", "--epochs", "1", "--optimizer", "radam"]
    argv += ["--model-kwargs", json.dumps({"dim": DIM})]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["model"] == "survmamba" and len(summary["cindex_folds"]) == 2
