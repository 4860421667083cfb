"""Batch-level Cox training: exact gradients, skipped event-free batches, Breslow curves, CLIs."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import zarr
from test_training import quick, write_cohort, write_features
from torch import nn

from wsirisk.cli import main
from wsirisk.models import ModelOutput, build_model, cox_survival
from wsirisk.omics.build import build_omics
from wsirisk.omics.load import load_omics
from wsirisk.training.data import FeatureBank, prepare_fold
from wsirisk.training.trainer import (
    TrainOptions,
    _cox_epoch,
    _Inputs,
    _optimizer,
    train_fold,
)


class LinearCox(nn.Module):
    """eta = w . omics: a model whose Cox gradient is known in closed form."""

    modalities = {"genomics"}

    def __init__(self, n_features: int) -> None:
        super().__init__()
        self.w = nn.Linear(n_features, 1, bias=False)

    def forward(self, x_path, x_omics, coords=None, extra=None) -> ModelOutput:  # noqa: ANN001
        eta = self.w(torch.cat(x_omics)).reshape(1)
        return ModelOutput(eta.reshape(1, 1), eta.new_zeros(()), risk=eta)


def _cox_grad(w: np.ndarray, x: np.ndarray, t: np.ndarray, e: np.ndarray) -> np.ndarray:
    """Gradient of the mean-over-events negative partial log-likelihood (Breslow), by hand."""
    eta = x @ w
    grad = np.zeros_like(w)
    for i in np.flatnonzero(e):
        risk_set = t >= t[i]
        p = np.exp(eta[risk_set]) / np.exp(eta[risk_set]).sum()
        grad -= x[i] - p @ x[risk_set]
    return grad / max(e.sum(), 1)


@pytest.fixture
def fold(tmp_path: Path):
    csv, sig = write_cohort(tmp_path)
    build_omics(csv, sig, tmp_path / "omics.zarr", tmp_path / "qc.tsv")
    omics = load_omics(tmp_path / "omics.zarr")
    return omics, prepare_fold(omics, {"train": omics.patients[:30], "val": omics.patients[30:]})


@pytest.mark.parametrize("censor_second_batch", [False, True])
def test_cox_epoch_takes_the_exact_batch_gradient(fold, censor_second_batch: bool) -> None:
    _, data = fold
    train = [dataclasses.replace(s) for s in data.train[:8]]
    if censor_second_batch:  # a batch without deaths contributes nothing
        for s in train[4:]:
            s.censorship = 1
    for s in train[:4]:
        s.censorship = 0
    x = np.stack([np.concatenate(s.omics) for s in train]).astype(np.float64)
    t = np.array([s.months for s in train])
    e = np.array([1 - s.censorship for s in train])
    torch.manual_seed(0)
    model = LinearCox(x.shape[1])
    w0 = model.w.weight.detach().numpy()[0].astype(np.float64)
    opts = TrainOptions(loss="cox", batch_size=4, grad_accum=2, optimizer="sgd", lr=1.0,
                        momentum=0.0, weight_decay=0.0)  # fmt: skip
    optimizer = _optimizer(model, opts)
    order = [3, 0, 2, 1, 7, 5, 4, 6]
    risk = np.full(8, np.nan)
    inputs = _Inputs(None, {"genomics"}, torch.device("cpu"))
    _cox_epoch(model, train, order, inputs, opts, optimizer, torch.Generator(), risk)
    b1, b2 = order[:4], order[4:]
    expect = _cox_grad(w0, x[b1], t[b1], e[b1])
    if not censor_second_batch:
        expect = expect + _cox_grad(w0, x[b2], t[b2], e[b2])
    w1 = model.w.weight.detach().numpy()[0]
    np.testing.assert_allclose(w0 - w1, expect / 2, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(risk, x @ w0, rtol=1e-4, atol=1e-5)  # train risks recorded


def test_m4survive_fold_is_deterministic_with_breslow_curves(fold, tmp_path: Path) -> None:
    omics, _ = fold
    bank = FeatureBank(write_features(tmp_path, omics.patients[::2]))  # half without slides
    data = prepare_fold(
        omics, {"train": omics.patients[:30], "val": omics.patients[30:]}, bank=bank
    )
    opts = quick(model="m4survive", epochs=1, batch_size=8, grad_accum=1,
                 model_kwargs={"dim": 16, "n_layers": 1})  # fmt: skip
    a = train_fold(data, opts, bank, log=lambda _: None)
    b = train_fold(data, opts, bank, log=lambda _: None)
    assert a.loss == "cox"
    np.testing.assert_array_equal(a.val.risk, b.val.risk)
    assert np.isfinite(a.val.risk).all() and len(a.val.risk) == 10
    h0 = np.array(a.baseline_cumhaz)
    assert h0.shape == (4,) and np.all(np.diff(h0) >= 0) and h0[-1] > 0
    expect = cox_survival(torch.tensor(a.val.risk, dtype=torch.float64), a.baseline_cumhaz)
    np.testing.assert_allclose(a.val.survival, expect.numpy(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(a.model.baseline_cumhaz, torch.tensor(h0, dtype=torch.float32))
    with pytest.raises(ValueError, match="batch_size"):
        train_fold(data, dataclasses.replace(opts, batch_size=1), bank, log=lambda _: None)


def test_train_cli_with_extra_table_and_checkpoint_reload(tmp_path: Path, capsys) -> None:
    csv, sig = write_cohort(tmp_path)
    omics_store, splits = tmp_path / "omics.zarr", tmp_path / "splits.zarr"
    build_omics(csv, sig, omics_store, tmp_path / "qc.tsv")
    patients = load_omics(omics_store).patients
    rng = np.random.default_rng(0)
    table = pd.DataFrame(
        {"case_id": patients[:30], **{f"f{j}": rng.normal(size=30) for j in range(3)}}
    )
    table.to_csv(tmp_path / "rad.csv", index=False)
    extra = tmp_path / "extra.zarr"
    assert main(["extra", "--table", f"rad={tmp_path / 'rad.csv'}", "--out", str(extra)]) == 0
    assert (
        main(["splits", "--omics", str(omics_store), "--out", str(splits), "--n-folds", "2"]) == 0
    )
    options = {"model": "m4survive", "epochs": 1, "batch_size": 8, "model_kwargs": {"dim": 16}}
    out, ckpt_path = tmp_path / "fold0.zarr", tmp_path / "fold0.pt"
    args = ["train", "--omics", str(omics_store), "--splits", str(splits), "--fold", "0",
            "--options", json.dumps(options), "--out", str(out), "--checkpoint", str(ckpt_path),
            "--extra", str(extra)]  # fmt: skip
    assert main(args) == 0
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    assert ckpt["loss"] == "cox" and len(ckpt["baseline_cumhaz_at_edges"]) == 4
    assert ckpt["model_kwargs"]["extra_dims"] == {"rad": 3}
    assert ckpt["extra_columns"] == {"rad": ["f0", "f1", "f2"]}
    assert ckpt["extra_mean"]["rad"].shape == (3,)
    model = build_model(ckpt["model"], **ckpt["model_kwargs"])
    model.load_state_dict(ckpt["state_dict"])  # strict
    assert model.baseline_cumhaz.tolist() == pytest.approx(ckpt["baseline_cumhaz_at_edges"])
    group = zarr.open_group(str(out), mode="r")
    assert group.attrs["loss"] == "cox"
    # a validation patient absent from the extra table: the predict path reproduces its risk
    from wsirisk.predict import load_run, predict_patient

    val = list(group.attrs["val_patients"])
    k = next(i for i, p in enumerate(val) if p not in patients[:30])
    run = load_run(tmp_path)
    row = pd.read_csv(csv).set_index("case_id").loc[val[k]].to_dict()
    got = predict_patient(run, None, row, allow_missing=True, folds=[run.folds[0]])
    assert got["risk"] == pytest.approx(float(group["val_risk"][k]), abs=1e-5)
    np.testing.assert_allclose(got["survival"], group["val_survival"][k], atol=1e-5)
    # a validation patient with a row in the extra table: --extra-table reproduces its risk
    # through the CLI (the fold's extra scaler), and without the table it is refused
    j = next(i for i, p in enumerate(val) if p in patients[:30])
    argv = ["predict", "--run", str(tmp_path), "--omics-table", str(csv), "--case-id", val[j]]
    assert main([*argv, "--extra-table", f"rad={tmp_path / 'rad.csv'}"]) == 0
    scored = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert scored["fold_risks"][0] == pytest.approx(float(group["val_risk"][j]), abs=1e-5)
    assert "rad" in scored["modalities"]
    assert main(argv) == 1  # refused: trained with rad, none given


SMALL = {"m4survive": {"dim": 16, "n_layers": 1}, "adamhf": {"dim": 16, "pree_experts": [1, 2]}}


@pytest.mark.parametrize("model", ["m4survive", "adamhf"])
def test_evaluate_omics_runs_the_new_models(model: str, tmp_path: Path, capsys) -> None:
    from test_training import write_split_cohort

    csv, sig, split_dir = write_split_cohort(tmp_path, 24)
    args = ["evaluate-omics", str(csv), "--splits", str(split_dir), "--signatures", str(sig),
            "--model", model, "--epochs", "1", "--n-folds", "2",
            "--model-kwargs", json.dumps(SMALL[model])]  # fmt: skip
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["model"] == model and len(summary["cindex_folds"]) == 2
    assert all(c is not None for c in summary["cindex_folds"])
    assert summary["options"]["batch_size"] == (16 if model == "m4survive" else 1)


def test_adamhf_fold_trains_and_scores_patients_with_one_modality(fold, tmp_path: Path) -> None:
    omics, _ = fold
    bank = FeatureBank(write_features(tmp_path, omics.patients[::2]))  # half without slides
    data = prepare_fold(
        omics, {"train": omics.patients[:30], "val": omics.patients[30:]}, bank=bank
    )
    for s in data.train[0:12:4] + data.val[:2]:  # some patients with slides only
        if s.slides:
            s.omics = None
    kinds = {(bool(s.slides), s.omics is not None) for s in data.train}
    assert kinds == {(True, True), (False, True), (True, False)}
    opts = quick(model="adamhf", epochs=1, grad_accum=2,
                 model_kwargs={"dim": 16, "pree_experts": [1, 2]})  # fmt: skip
    result = train_fold(data, opts, bank, log=lambda _: None)
    assert result.loss == "nll" and result.baseline_cumhaz is None
    assert len(result.val.risk) == 10 and np.isfinite(result.val.risk).all()
    emb = result.val.embeddings
    no_omics = np.array([s.omics is None for s in result.val_samples])
    no_slides = np.array([not s.slides for s in result.val_samples])
    assert no_omics.any() and no_slides.any()
    assert np.isnan(emb["genomics"][no_omics]).all() and np.isnan(emb["pathology"][no_slides]).all()
    assert np.isfinite(emb["fusion"]).all()
    for s in result.val_samples:
        for ref in s.slides:
            assert result.val.attention[ref.slide_id].shape == (ref.n_tiles,)
