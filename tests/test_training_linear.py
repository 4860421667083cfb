"""The elastic-net Cox reference (`evaluate-omics --model coxnet`): signal, no leakage, errors."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_training import write_split_cohort

from wsirisk.cli import main
from wsirisk.omics.build import build_omics
from wsirisk.omics.load import load_omics
from wsirisk.training.data import prepare_fold
from wsirisk.training.linear import coxnet_options, fit_coxnet
from wsirisk.training.metrics import cindex
from wsirisk.training.splits import read_split_dir

pytest.importorskip("sksurv")

N = 120


@pytest.fixture
def cohort(tmp_path: Path) -> tuple[Path, Path, Path]:
    """Synthetic table, signatures and two provided folds (case IDs alternate)."""
    return write_split_cohort(tmp_path, N)


def first_fold(csv: Path, sig: Path, split_dir: Path, tmp: Path):
    build_omics(csv, sig, tmp / "o.zarr", tmp / "qc.tsv")
    omics = load_omics(tmp / "o.zarr")
    folds, _ = read_split_dir(split_dir, 2, set(omics.patients))
    return prepare_fold(omics, folds[0], 4, standardize=True), folds[0]


def test_coxnet_recovers_the_driving_genes_sparsely(cohort, tmp_path) -> None:
    data, _ = first_fold(*cohort, tmp_path)
    fit = fit_coxnet(data.train, **coxnet_options({}))
    again = fit_coxnet(data.train, **coxnet_options({}))
    np.testing.assert_array_equal(fit.coef, again.coef)  # deterministic
    c = cindex([s.months for s in data.val], fit.risk(data.val), [s.censorship for s in data.val])
    assert c.value > 0.75  # G0A/G1A drive survival (write_cohort)
    info = fit.info()
    assert 0 < info["n_nonzero"] < info["n_features"] and info["penalty"] < info["alpha_max"]


def test_coxnet_sees_training_patients_only(cohort, tmp_path) -> None:
    """Rewriting every validation patient's omics and survival leaves the fit unchanged."""
    csv, sig, split_dir = cohort
    data, fold = first_fold(csv, sig, split_dir, tmp_path / "a")
    table = pd.read_csv(csv)
    val = table["case_id"].isin(fold["val"])
    rng = np.random.default_rng(1)
    omic_cols = [c for c in table.columns if c.endswith(("_rnaseq", "_cnv"))]
    table.loc[val, omic_cols] = rng.normal(5.0, 3.0, size=(int(val.sum()), len(omic_cols)))
    table.loc[val, "survival_months"] = rng.uniform(1, 200, size=int(val.sum()))
    changed = tmp_path / "changed.csv"
    table.to_csv(changed, index=False)
    other, _ = first_fold(changed, sig, split_dir, tmp_path / "b")
    a = fit_coxnet(data.train, **coxnet_options({}))
    b = fit_coxnet(other.train, **coxnet_options({}))
    for field in dataclasses.fields(a):
        np.testing.assert_array_equal(getattr(a, field.name), getattr(b, field.name))


def test_coxnet_penalty_above_alpha_max_is_the_null_model(cohort, tmp_path) -> None:
    data, _ = first_fold(*cohort, tmp_path)
    fit = fit_coxnet(data.train, penalty=1e3, l1_ratio=0.5)
    assert not fit.coef.any() and fit.info()["n_nonzero"] == 0
    risk = fit.risk(data.val)
    assert cindex([s.months for s in data.val], risk, [s.censorship for s in data.val]).value == 0.5


def test_coxnet_needs_events_and_valid_options(cohort, tmp_path) -> None:
    data, _ = first_fold(*cohort, tmp_path)
    censored = [dataclasses.replace(s, censorship=1) for s in data.train]
    with pytest.raises(ValueError, match="no events"):
        fit_coxnet(censored, **coxnet_options({}))
    with pytest.raises(ValueError, match="penalti"):
        coxnet_options({"penalti": 0.1})
    with pytest.raises(ValueError, match="l1_ratio"):
        coxnet_options({"l1_ratio": 0})


def test_cli_coxnet(cohort, capsys) -> None:
    csv, sig, split_dir = cohort
    argv = ["evaluate-omics", str(csv), "--splits", str(split_dir), "--signatures", str(sig)]
    argv += ["--n-folds", "2", "--model", "coxnet", "--model-kwargs", '{"penalty": 0.1}']
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["model"] == "coxnet" and summary["options"]["model_kwargs"] == {"penalty": 0.1}
    assert summary["cindex_epoch"].startswith("not applicable")
    assert summary["options"]["standardize"] is True  # forced: the fold's scaler z-scores
    assert all(c > 0.7 for c in summary["cindex_folds"])
    assert all(m[0]["penalty"] == 0.1 and m[0]["n_nonzero"] > 0 for m in summary["members"])
    assert main(argv) == 0  # same numbers on a second run
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert again["cindex_folds"] == summary["cindex_folds"]
    with pytest.raises(ValueError, match="--seeds 1"):
        main([*argv, "--seeds", "2"])
    with pytest.raises(ValueError, match="penalti"):
        main([*argv[:-1], '{"penalti": 0.1}'])
