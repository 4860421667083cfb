"""evaluate-omics --seeds (risk ensemble) and --inner-val (nested early stopping): no leakage."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_training import quick, write_split_cohort

from wsirisk.cli import main
from wsirisk.omics.build import build_omics
from wsirisk.omics.load import load_omics
from wsirisk.training import evaluate_omics
from wsirisk.training.data import inner_split, prepare_fold
from wsirisk.training.evaluate_omics import evaluate, fit_member
from wsirisk.training.metrics import cindex
from wsirisk.training.splits import make_folds, read_split_dir
from wsirisk.training.trainer import predict_samples, train_fold

N = 48


@pytest.fixture
def cohort(tmp_path: Path) -> tuple[Path, Path, Path]:
    """Synthetic table, signatures and two provided folds (case IDs alternate)."""
    return write_split_cohort(tmp_path, N)


def run(cohort: tuple[Path, Path, Path], **kw: object) -> dict:
    csv, sig, split_dir = cohort
    return evaluate(csv, split_dir, sig, quick(), n_folds=2, **kw)  # type: ignore[arg-type]


def test_one_seed_is_exactly_the_single_model(cohort: tuple[Path, Path, Path], tmp_path) -> None:
    csv, sig, split_dir = cohort
    build_omics(csv, sig, tmp_path / "o.zarr", tmp_path / "qc.tsv")
    omics = load_omics(tmp_path / "o.zarr")
    folds, _ = read_split_dir(split_dir, 2, set(omics.patients))
    expected = []
    for fold in folds:
        result = train_fold(prepare_fold(omics, fold, 4, True), quick(), log=lambda _: None)
        val = result.val_samples
        months, cens = [s.months for s in val], [s.censorship for s in val]
        expected.append(cindex(months, result.val.risk, cens).value)
    summary = run(cohort, seeds=1)
    assert summary["cindex_folds"] == expected  # bit-identical, not approx
    assert summary["member_cindex_folds"] == [[c] for c in expected]
    assert summary["cindex_epoch"] == "last" and summary["inner_val"] is None
    curves = [m[0]["val_cindex_by_epoch"] for m in summary["members"]]
    assert [len(c) for c in curves] == [quick().epochs] * 2
    assert [c[-1] for c in curves] == expected  # the estimate is the curve's last point


def test_seed_ensemble_is_deterministic_and_differs(cohort: tuple[Path, Path, Path]) -> None:
    one = run(cohort, seeds=1)
    first, second = run(cohort, seeds=2), run(cohort, seeds=2)
    assert first["cindex_folds"] == second["cindex_folds"]
    assert first["member_cindex_folds"] == second["member_cindex_folds"]
    assert first["cindex_folds"] != one["cindex_folds"]
    # member 0 is the seed-0 model of the single run, member 1 a different one
    assert [m[0] for m in first["member_cindex_folds"]] == one["cindex_folds"]
    assert all(len(m) == 2 and m[0] != m[1] for m in first["member_cindex_folds"])


def test_inner_split_is_a_stratified_seeded_part_of_train(cohort: tuple[Path, Path, Path]) -> None:
    csv, sig, _ = cohort
    omics_dir = csv.parent / "o.zarr"
    build_omics(csv, sig, omics_dir, csv.parent / "qc.tsv")
    omics = load_omics(omics_dir)
    fold = make_folds(omics.patients, omics.survival_months, omics.censorship, 3, 0)[0]
    data = prepare_fold(omics, fold)
    fit, stop = inner_split(data.train, 0.25, seed=0)
    ids = lambda samples: [s.patient for s in samples]  # noqa: E731
    assert set(ids(stop)) <= set(fold["train"]) and not set(ids(stop)) & set(fold["val"])
    assert sorted(ids(fit) + ids(stop)) == sorted(fold["train"])  # a partition of train
    for event in (0, 1):
        n_all = sum(s.censorship == event for s in data.train)
        n_stop = sum(s.censorship == event for s in stop)
        assert n_stop == round(0.25 * n_all)
    assert ids(inner_split(data.train, 0.25, seed=0)[1]) == ids(stop)
    assert ids(inner_split(data.train, 0.25, seed=1)[1]) != ids(stop)
    with pytest.raises(ValueError, match="fraction"):
        inner_split(data.train, 1.0)


def test_inner_val_never_sees_the_outer_fold(cohort: tuple[Path, Path, Path], monkeypatch) -> None:
    """Spy on the trainer: it must get only training-fold patients, split in two disjoint parts,
    and the scored model must be the best inner epoch's (checked by re-scoring the inner set)."""
    csv, sig, _ = cohort
    build_omics(csv, sig, csv.parent / "o.zarr", csv.parent / "qc.tsv")
    omics = load_omics(csv.parent / "o.zarr")
    fold = make_folds(omics.patients, omics.survival_months, omics.censorship, 3, 0)[0]
    data = prepare_fold(omics, fold)
    calls = []

    def spy(inner, opts, bank, log, on_epoch=None):
        result = train_fold(inner, opts, bank, log, on_epoch=on_epoch)
        calls.append((inner, result))
        return result

    monkeypatch.setattr(evaluate_omics, "train_fold", spy)
    risk, val, info = fit_member(data, quick(epochs=4), 0.25, lambda _: None)
    ((inner, result),) = calls
    fit, stop = {s.patient for s in inner.train}, {s.patient for s in inner.val}
    assert fit | stop == set(fold["train"]) and not fit & stop
    assert not (fit | stop) & set(fold["val"])
    assert inner.bins == data.bins and inner.scaler is data.scaler  # fit on the training fold
    assert [s.patient for s in val] == [s.patient for s in data.val] and len(risk) == len(val)
    history = [h["val_cindex"] for h in result.history]
    assert info["inner_best"]["epoch"] == 1 + int(np.argmax(history))
    pred, kept = predict_samples(result.model, inner.val, result.device, data.bins.n_bins)
    c = cindex([s.months for s in kept], pred.risk, [s.censorship for s in kept]).value
    assert c == pytest.approx(max(history))


def test_cli_composes_seeds_and_inner_val(cohort: tuple[Path, Path, Path], capsys) -> None:
    csv, sig, split_dir = cohort
    argv = ["evaluate-omics", str(csv), "--splits", str(split_dir), "--signatures", str(sig)]
    argv += ["--model", "snn", "--n-folds", "2", "--epochs", "3", "--grad-accum", "4"]
    argv += ["--seeds", "2"]
    argv += ["--inner-val", "0.25"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["seeds"] == 2 and summary["inner_val"] == 0.25
    assert summary["cindex_epoch"] == "best on inner validation"
    assert all(len(m) == 2 for m in summary["members"])
    assert all(1 <= i["inner_best"]["epoch"] <= 3 for m in summary["members"] for i in m)
    with pytest.raises(ValueError, match="inner_val"):
        main([*argv[:-1], "1.5"])
