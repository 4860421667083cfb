"""Training core: metrics, folds, fold-only bins/scaler, determinism, CLIs (tiny synthetic cohorts)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import zarr

from wsirisk.cli import main
from wsirisk.layout import CATEGORIES, FEAT_COORDS, FEAT_FEATURES, FOLD_VAL_RISK, category_slug
from wsirisk.models import build_model
from wsirisk.omics.build import build_omics
from wsirisk.omics.load import load_omics
from wsirisk.store import atomic_group
from wsirisk.training.data import Bins, FeatureBank, OmicsScaler, prepare_fold
from wsirisk.training.metrics import censoring_warning, cindex, mean_std
from wsirisk.training.splits import make_folds, read_split_dir
from wsirisk.training.trainer import TrainOptions, _Inputs, train_fold

GENES = {c: [f"G{i}A", f"G{i}B"] for i, c in enumerate(CATEGORIES)}
PATH_DIM = 16


# ---- synthetic cohort ---------------------------------------------------------------------
def write_alternating_splits(split_dir: Path, cases: list[str], n_folds: int = 2) -> Path:
    """``splits_<k>.csv`` files (``,train,val`` layout): case ``i`` is in fold ``i % n_folds``."""
    split_dir.mkdir()
    for k in range(n_folds):
        val = cases[k::n_folds]
        train = [c for c in cases if c not in val]
        pd.DataFrame({"train": pd.Series(train), "val": pd.Series(val)}).to_csv(
            split_dir / f"splits_{k}.csv"
        )
    return split_dir


def write_cohort(tmp: Path, n: int = 40, seed: int = 0) -> tuple[Path, Path]:
    """A PORPOISE-style CSV whose G0A_rnaseq drives survival, and its signatures.csv."""
    rng = np.random.default_rng(seed)
    cols: dict[str, np.ndarray] = {}
    for genes in GENES.values():
        for g in genes:
            cols[f"{g}_rnaseq"] = rng.normal(size=n)
            cols[f"{g}_cnv"] = rng.integers(-1, 2, size=n).astype(float)
    z = 1.5 * cols["G0A_rnaseq"] + 0.75 * cols["G1A_rnaseq"]
    death = np.exp(3.0 - z + 0.3 * rng.normal(size=n))
    follow = rng.uniform(5, 80, size=n)
    cases = [f"TCGA-XX-{i:04d}" for i in range(n)]
    table = pd.DataFrame(
        {
            "case_id": cases,
            "slide_id": [f"{c}-01Z-00-DX1.svs" for c in cases],
            "survival_months": np.round(np.minimum(death, follow), 2),
            "censorship": (follow < death).astype(int),
            **cols,
        }
    )
    table.loc[3, "G2A_rnaseq"] = np.nan  # one missing cell, imputed per fold
    csv = tmp / "cohort.csv"
    table.to_csv(csv, index=False)
    sig = tmp / "signatures.csv"
    pd.DataFrame({c: g for c, g in GENES.items()}).to_csv(sig, index=False)
    return csv, sig


def write_split_cohort(tmp: Path, n: int) -> tuple[Path, Path, Path]:
    """:func:`write_cohort` of ``n`` patients plus two provided folds (case IDs alternate)."""
    csv, sig = write_cohort(tmp, n=n)
    cases = [f"TCGA-XX-{i:04d}" for i in range(n)]
    return csv, sig, write_alternating_splits(tmp / "splits", cases)


@pytest.fixture
def cohort(tmp_path: Path) -> Path:
    csv, sig = write_cohort(tmp_path)
    store = tmp_path / "omics.zarr"
    build_omics(csv, sig, store, tmp_path / "qc.tsv")
    return store


def write_features(tmp: Path, patients: list[str], seed: int = 0) -> list[Path]:
    """One features store per patient (a second slide for the first patient)."""
    rng = np.random.default_rng(seed)
    paths = []
    slides = [(p, f"{p}-DX1") for p in patients] + [(patients[0], f"{patients[0]}-DX2")]
    for patient, slide in slides:
        n = int(rng.integers(3, 9))
        attrs = {
            "slide_id": slide,
            "patient_id": patient,
            "status": "ok",
            "complete": True,
            "dim": PATH_DIM,
            "encoder": "test",
            "weights": "random",
            "random_init": True,
        }
        path = tmp / "features" / f"{slide}.zarr"
        with atomic_group(path, attrs) as g:
            g.create_array(FEAT_FEATURES, data=rng.normal(size=(n, PATH_DIM)).astype(np.float16))
            g.create_array(FEAT_COORDS, data=np.arange(2 * n, dtype=np.int64).reshape(n, 2))
        paths.append(path)
    return paths


def quick(**kw: object) -> TrainOptions:
    base = dict(model="snn", epochs=3, lr=1e-3, grad_accum=4, device="cpu")
    return TrainOptions.from_dict({**base, **kw})


# ---- metrics ------------------------------------------------------------------------------
def test_cindex_convention_and_undefined() -> None:
    months = np.array([1.0, 2.0, 3.0, 4.0])
    events = np.zeros(4, dtype=int)  # all deaths
    assert cindex(months, -months, events).value == pytest.approx(1.0)  # high risk dies early
    assert cindex(months, months, events).value == pytest.approx(0.0)
    undefined = cindex(months, -months, np.ones(4, dtype=int))
    assert undefined.value is None and "no events" in undefined.reason
    assert cindex([1.0], [0.0], [0]).value is None
    with pytest.raises(ValueError, match="censorship"):
        cindex(months, months, np.array([0, 1, 2, 0]))
    assert mean_std([0.6, None, 0.8]) == pytest.approx((0.7, 0.1))
    assert mean_std([None]) == (None, None)


def test_censoring_warning_flags_reversed_coding() -> None:
    rng = np.random.default_rng(0)
    months = rng.uniform(1, 100, size=50)
    normal = (rng.uniform(size=50) < 0.6).astype(int)
    assert censoring_warning(months, normal) is None
    assert "event rate" in censoring_warning(months, np.r_[np.zeros(48), np.ones(2)])
    short_censored = (months < 30).astype(int)  # every "censored" shorter than every "death"
    assert "reversed" in censoring_warning(months, short_censored)


# ---- folds --------------------------------------------------------------------------------
def test_make_folds_partition_stratified_seeded() -> None:
    rng = np.random.default_rng(1)
    patients = [f"P{i:03d}" for i in range(60)]
    months = rng.uniform(1, 100, size=60)
    cens = (rng.uniform(size=60) < 0.5).astype(int)
    folds = make_folds(patients, months, cens, n_folds=5, seed=0)
    vals = [set(f["val"]) for f in folds]
    assert set().union(*vals) == set(patients) and sum(map(len, vals)) == 60
    for f in folds:
        assert not set(f["train"]) & set(f["val"])
        assert len(f["train"]) + len(f["val"]) == 60
    events = {p: 1 - c for p, c in zip(patients, cens, strict=True)}
    per_fold = [sum(events[p] for p in f["val"]) for f in folds]
    assert max(per_fold) - min(per_fold) <= 2  # stratified by event
    assert make_folds(patients, months, cens, 5, seed=0) == folds
    assert make_folds(patients, months, cens, 5, seed=1) != folds
    shuffled = list(reversed(patients))
    assert make_folds(shuffled, months[::-1], cens[::-1], 5, seed=0) == folds


def test_read_split_dir_drops_unknown_ids(tmp_path: Path) -> None:
    known = {f"P{i}" for i in range(6)}
    for k in range(2):
        pd.DataFrame({"train": ["P0", "P1", "P2", "PX"], "val": ["P3", "P4", None, None]}).to_csv(
            tmp_path / f"splits_{k}.csv"
        )
    folds, dropped = read_split_dir(tmp_path, 2, known)
    assert folds[0] == {"train": ["P0", "P1", "P2"], "val": ["P3", "P4"]}
    assert dropped == [["PX"], ["PX"]]
    with pytest.raises(FileNotFoundError, match="splits_2.csv"):
        read_split_dir(tmp_path, 3, known)
    pd.DataFrame({"train": ["P0", "P3"], "val": ["P3", None]}).to_csv(tmp_path / "splits_0.csv")
    with pytest.raises(ValueError, match="both train and val"):
        read_split_dir(tmp_path, 1, known)


# ---- bins / scaler fit on training patients only -------------------------------------------
def test_bins_quantiles_of_training_deaths() -> None:
    bins = Bins.fit(np.array([1, 2, 3, 4, 5, 100.0]), np.array([0, 0, 0, 0, 1, 1]), 2)
    assert bins.edges_months == (0.0, 2.5, 100.0)
    assert bins.assign(np.array([0.0, 2.4, 2.5, 500.0])).tolist() == [0, 0, 1, 1]
    no_events = Bins.fit(np.array([1.0, 3.0]), np.array([1, 1]), 2)
    assert "no events" in no_events.source


def test_bins_and_scaler_ignore_validation_patients(cohort: Path) -> None:
    omics = load_omics(cohort)
    fold = {"train": omics.patients[:30], "val": omics.patients[30:]}
    base = prepare_fold(omics, fold)
    changed = load_omics(cohort)
    v = changed.patients.index(fold["val"][0])
    changed.survival_months[v] = 999.0
    changed.censorship[v] = 0
    for g in changed.groups.values():
        g[v] = 1e6
    other = prepare_fold(changed, fold)
    assert other.bins == base.bins
    for slug in base.scaler.mean:
        np.testing.assert_array_equal(other.scaler.mean[slug], base.scaler.mean[slug])
        np.testing.assert_array_equal(other.scaler.std[slug], base.scaler.std[slug])
    # ... whereas a training patient does move them (the check can fail)
    t = changed.patients.index(fold["train"][0])
    changed.survival_months[t], changed.censorship[t] = 0.01, 0
    changed.groups[category_slug(CATEGORIES[0])][t] = 1e6
    moved = prepare_fold(changed, fold)
    assert moved.bins != base.bins
    assert not np.allclose(
        moved.scaler.mean["tumor_suppressor_genes"], base.scaler.mean["tumor_suppressor_genes"]
    )


def test_scaler_imputes_with_training_mean() -> None:
    groups = {category_slug(c): np.array([[1.0], [3.0], [np.nan], [100.0]]) for c in CATEGORIES}
    scaler = OmicsScaler.fit(groups, np.array([0, 1, 2]), standardize=True)
    out, n_imputed = scaler.transform(groups)
    slug = category_slug(CATEGORIES[0])
    assert scaler.mean[slug][0] == pytest.approx(2.0) and scaler.std[slug][0] == pytest.approx(1.0)
    assert out[slug][2, 0] == 0.0 and n_imputed == 6


# ---- training -----------------------------------------------------------------------------
def test_training_is_deterministic_and_seeded(cohort: Path) -> None:
    omics = load_omics(cohort)
    fold = make_folds(omics.patients, omics.survival_months, omics.censorship, 4, 0)[0]
    data = prepare_fold(omics, fold)
    first = train_fold(data, quick(), log=lambda _: None)
    second = train_fold(prepare_fold(omics, fold), quick(), log=lambda _: None)
    np.testing.assert_array_equal(first.val.risk, second.val.risk)
    assert first.history == second.history
    assert len(first.history) == 3 and first.history[-1]["val_cindex"] is not None
    other = train_fold(data, quick(seed=1), log=lambda _: None)
    assert not np.array_equal(other.val.risk, first.val.risk)


def test_snn_learns_the_synthetic_signal(tmp_path: Path) -> None:
    csv, sig = write_cohort(tmp_path, n=90, seed=3)
    build_omics(csv, sig, tmp_path / "o.zarr", tmp_path / "qc.tsv")
    omics = load_omics(tmp_path / "o.zarr")
    fold = make_folds(omics.patients, omics.survival_months, omics.censorship, 3, 0)[0]
    result = train_fold(prepare_fold(omics, fold), quick(epochs=6), log=lambda _: None)
    assert result.history[-1]["val_cindex"] > 0.7


def test_options_validation_names_the_key() -> None:
    with pytest.raises(ValueError, match="lr_rate"):
        TrainOptions.from_dict({"lr_rate": 1e-3})
    with pytest.raises(ValueError, match="optimizer"):
        TrainOptions.from_dict({"optimizer": "rmsprop"})
    paper = TrainOptions.paper(model="snn")
    stated = (paper.optimizer, paper.lr, paper.epochs, paper.batch_size, paper.n_bins)
    assert stated == ("sgd", 1e-3, 30, 1, 4)
    assert (paper.momentum, paper.weight_decay) == (0.0, 0.0)  # the paper states neither
    ours = TrainOptions.paper(with_our_additions=True, model="snn")
    assert (ours.momentum, ours.weight_decay, ours.lr, ours.epochs) == (0.9, 1e-5, 1e-3, 30)


def test_max_patches_caps_training_bags(tmp_path: Path) -> None:
    paths = write_features(tmp_path, ["TCGA-XX-0000"])
    bank = FeatureBank(paths)
    assert bank.dim == PATH_DIM and len(bank.slides("TCGA-XX-0000")) == 2
    full = bank.load("TCGA-XX-0000")
    from wsirisk.training.data import Sample

    sample = Sample("TCGA-XX-0000", 1.0, 0, 0, None, bank.slides("TCGA-XX-0000"))
    inputs = _Inputs(bank, {"pathology"}, torch.device("cpu"))
    x, _, where = inputs(sample, max_patches=2, gen=torch.Generator().manual_seed(0))
    assert x.shape == (2, PATH_DIM)
    rows = [int(np.flatnonzero((full == r.numpy()).all(axis=1))[0]) for r in x]
    assert rows == sorted(rows)  # spatial order kept
    _, full_where = bank.load_with_coords("TCGA-XX-0000")
    assert where is not None and np.array_equal(where.numpy(), full_where[rows])  # coords follow
    assert inputs(sample)[0].shape[0] == full.shape[0]  # evaluation: every tile


# ---- CLIs ---------------------------------------------------------------------------------
def test_splits_and_train_cli_write_fold_store(cohort: Path, tmp_path: Path, capsys) -> None:
    omics = load_omics(cohort)
    feats = write_features(tmp_path, omics.patients[:-3])  # 3 patients without slides
    failed = tmp_path / "features" / "failed.zarr"
    with atomic_group(failed, {"slide_id": "failed", "patient_id": omics.patients[-1]}) as g:
        g.attrs.update(status="failed", reason="unreadable slide")
    feats.append(failed)
    splits = tmp_path / "splits.zarr"
    assert main(["splits", "--omics", str(cohort), "--out", str(splits), "--n-folds", "4"]) == 0
    attrs = dict(zarr.open_group(str(splits), mode="r").attrs)
    assert attrs["source"] == "made" and len(attrs["folds"]) == 4
    opts = {"model": "abmil_snn", "epochs": 2, "grad_accum": 2, "max_patches": 4, "device": "cpu"}
    out, ckpt = tmp_path / "fold0.zarr", tmp_path / "fold0.pt"
    argv = ["train", "--omics", str(cohort), "--splits", str(splits), "--fold", "0"]
    argv += ["--features", *map(str, feats), "--options", json.dumps(opts)]
    assert main([*argv, "--out", str(out), "--checkpoint", str(ckpt)]) == 0
    store = zarr.open_group(str(out), mode="r")
    a = dict(store.attrs)
    assert a["val_patients"] == attrs["folds"][0]["val"]
    assert set(a["train_patients"]) == set(attrs["folds"][0]["train"])
    assert len(a["bins"]) == 5 and a["bins"][0] == 0.0
    assert [h["epoch"] for h in a["history"]] == [1, 2]
    assert "selected on the validation" in a["best_epoch_val_cindex"]["selection"]
    assert isinstance(a["cindex"], float) and a["options"]["max_patches"] == 4
    assert a["skipped_slides"] == {"failed": "status 'failed': unreadable slide"}
    assert a["n_imputed"] == 1 and a["scaler"]["fit_on"] == "train_patients"
    n_val = len(a["val_patients"])
    assert store[FOLD_VAL_RISK].shape == (n_val,) and store["val_survival"].shape == (n_val, 4)
    np.testing.assert_allclose(store["val_survival"][:].sum(1), -store[FOLD_VAL_RISK][:], rtol=1e-5)
    for slide_id in store["attention"].array_keys():
        n_tiles = zarr.open_group(str(tmp_path / "features" / f"{slide_id}.zarr"))[FEAT_COORDS]
        assert store["attention"][slide_id].shape == (n_tiles.shape[0],)
    assert store["embeddings"]["genomics"].shape == (n_val, 256)
    # checkpoint: plain objects only, restores the model and its validation risks
    ck = torch.load(ckpt, weights_only=True)
    assert ck["bins_months"] == a["bins"] and ck["model"] == "abmil_snn"
    model = build_model(ck["model"], **ck["model_kwargs"])
    model.load_state_dict(ck["state_dict"])
    assert a["cindex"] == pytest.approx(
        cindex(store["val_months"][:], store[FOLD_VAL_RISK][:], store["val_censorship"][:]).value
    )


def test_fold_without_val_events_reports_undefined(cohort: Path, tmp_path: Path) -> None:
    omics = load_omics(cohort)
    censored = [p for p, c in zip(omics.patients, omics.censorship, strict=True) if c == 1]
    val = censored[:4]
    folds = [{"train": [p for p in omics.patients if p not in val], "val": val}]
    splits = tmp_path / "splits.zarr"
    with atomic_group(splits, {"folds": folds, "n_folds": 1, "seed": 0, "source": "test"}):
        pass
    out = tmp_path / "f.zarr"
    argv = ["train", "--omics", str(cohort), "--splits", str(splits), "--fold", "0"]
    argv += ["--options", '{"model": "snn", "epochs": 1, "device": "cpu"}']
    assert main([*argv, "--out", str(out), "--checkpoint", str(tmp_path / "f.pt")]) == 0
    a = dict(zarr.open_group(str(out), mode="r").attrs)
    assert a["cindex"] is None and "no events" in a["cindex_reason"]
    assert a["history"][0]["val_cindex"] is None and a["best_epoch_val_cindex"] is None


def test_train_cli_rejects_bad_options(cohort: Path, tmp_path: Path) -> None:
    argv = ["train", "--omics", str(cohort), "--splits", str(tmp_path / "none.zarr")]
    argv += ["--fold", "0", "--options", '{"epochs": 0}', "--out", "x", "--checkpoint", "y"]
    with pytest.raises(ValueError, match="epochs"):
        main(argv)


def test_evaluate_omics_cli_prints_json_last(tmp_path: Path, capsys) -> None:
    csv, sig = write_cohort(tmp_path, n=40)
    cases = [f"TCGA-XX-{i:04d}" for i in range(40)] + ["TCGA-NOT-HERE"]
    split_dir = write_alternating_splits(tmp_path / "splits", cases)
    argv = ["evaluate-omics", str(csv), "--splits", str(split_dir), "--signatures", str(sig)]
    argv += ["--model", "snn", "--n-folds", "2", "--epochs", "2", "--grad-accum", "4"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["model"] == "snn" and len(summary["cindex_folds"]) == 2
    assert summary["cindex_mean"] == pytest.approx(np.mean(summary["cindex_folds"]))
    assert summary["cindex_std"] == pytest.approx(np.std(summary["cindex_folds"]))
    assert summary["n_patients"] == 40 and summary["seconds"] >= 0


def test_balanced_order_draws_rare_classes_more_often(cohort: Path) -> None:
    from wsirisk.training.trainer import epoch_order

    omics = load_omics(cohort)
    data = prepare_fold(omics, {"train": omics.patients, "val": []})
    gen = torch.Generator().manual_seed(0)
    assert sorted(epoch_order(data.train, False, gen)) == list(range(len(data.train)))
    counts = np.zeros(len(data.train))
    for _ in range(200):
        for i in epoch_order(data.train, True, gen):
            counts[i] += 1
    keys = [(s.y_bin, s.censorship) for s in data.train]
    per_class = {k: counts[[i for i, x in enumerate(keys) if x == k]].sum() for k in set(keys)}
    shares = np.array(list(per_class.values())) / counts.sum()
    np.testing.assert_allclose(shares, 1 / len(per_class), atol=0.03)  # classes equally drawn


def test_me_mamba_fold_with_and_without_pathology(cohort: Path, tmp_path: Path) -> None:
    omics = load_omics(cohort)
    bank = FeatureBank(write_features(tmp_path, omics.patients[::2]))  # half without slides
    fold = {"train": omics.patients[:30], "val": omics.patients[30:]}
    data = prepare_fold(omics, fold, bank=bank)
    opts = quick(model="me_mamba", epochs=1, model_kwargs={"dim": 32})
    result = train_fold(data, opts, bank, log=lambda _: None)
    assert np.isfinite(result.val.risk).all() and len(result.val.risk) == 10
    emb = result.val.embeddings
    with_slides = [bool(s.slides) for s in result.val_samples]
    assert np.isnan(emb["pathology"][~np.array(with_slides)]).all()
    assert np.isfinite(emb["genomics"]).all()
    for s in result.val_samples:
        for ref in s.slides:
            assert result.val.attention[ref.slide_id].shape == (ref.n_tiles,)
