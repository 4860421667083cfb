"""`wsirisk predict` reproduces a trained fold's out-of-fold risk from the raw omics row."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from wsirisk import layout
from wsirisk.cli import main
from wsirisk.demo import make_demo
from wsirisk.predict import load_run, predict_patient
from wsirisk.store import open_group


@pytest.fixture(scope="module")
def snn_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("predict")
    data = root / "data"
    make_demo(data, n_patients=12, seed=3, frac_40x=0.0, tiles_per_slide=4)
    omics, splits, run = root / "omics.zarr", root / "splits.zarr", root / "train" / "snn"
    assert (
        main(
            [
                "omics",
                "--table",
                str(data / "omics.csv"),
                "--signatures",
                str(data / "signatures.csv"),
                "--out",
                str(omics),
                "--qc",
                str(root / "qc.tsv"),
            ]
        )
        == 0
    )
    assert main(["splits", "--omics", str(omics), "--out", str(splits), "--n-folds", "2"]) == 0
    options = json.dumps({"model": "snn", "epochs": 2, "seed": 0})
    for fold in range(2):
        assert (
            main(
                [
                    "train",
                    "--omics",
                    str(omics),
                    "--splits",
                    str(splits),
                    "--fold",
                    str(fold),
                    "--options",
                    options,
                    "--out",
                    str(run / f"fold{fold}.zarr"),
                    "--checkpoint",
                    str(run / f"fold{fold}.pt"),
                ]
            )
            == 0
        )
    return run, data / "omics.csv"


def test_fold_model_reproduces_out_of_fold_risk(snn_run: tuple[Path, Path]) -> None:
    run, table = snn_run
    trained = load_run(run)
    from wsirisk.predict import _omics_rows

    rows = _omics_rows(table)
    store = open_group(run / "fold0.zarr")
    patient = store.attrs["val_patients"][0]
    stored = float(store[layout.FOLD_VAL_RISK][0])
    result = predict_patient(trained, None, rows[patient], folds=[trained.folds[0]])
    assert result["risk"] == pytest.approx(stored, abs=1e-5)
    assert len(result["survival"]) == 4
    assert all(a >= b for a, b in zip(result["survival"], result["survival"][1:], strict=False))


def _predict_argv(run: Path, table: Path, *extra: str) -> list[str]:
    """``wsirisk predict`` on the omics only (empty slide and feature config)."""
    config = json.dumps({"slides": {}, "features": {}})
    argv = ["predict", "--run", str(run), "--config-json", config, "--omics-table", str(table)]
    return [*argv, *extra]


def test_ensemble_is_mean_of_folds_and_group_uses_oof_median(
    snn_run: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    run, table = snn_run
    assert main(_predict_argv(run, table, "--case-id", "DEMO-004")) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["risk"] == pytest.approx(np.mean(out["fold_risks"]), abs=1e-6)
    assert len(out["fold_risks"]) == 2
    oof = np.concatenate(
        [open_group(p)[layout.FOLD_VAL_RISK][:] for p in sorted(run.glob("*.zarr"))]
    )
    assert out["median_oof_risk"] == pytest.approx(float(np.median(oof)))
    assert out["risk_group"] == ("high" if out["risk"] > out["median_oof_risk"] else "low")


def test_unknown_case_is_named(
    snn_run: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    run, table = snn_run
    assert main(_predict_argv(run, table, "--case-id", "NOPE")) == 1
    assert "no usable row with case_id 'NOPE'" in capsys.readouterr().err


def test_batch_mode_writes_tsv(snn_run: tuple[Path, Path], tmp_path: Path) -> None:
    run, table = snn_run
    out = tmp_path / "pred.tsv"
    assert main(_predict_argv(run, table, "--out", str(out))) == 0
    lines = out.read_text().splitlines()
    assert lines[0].split("\t")[:3] == ["case_id", "risk", "risk_group"]
    assert len(lines) == 1 + 12
    groups = [line.split("\t")[2] for line in lines[1:]]
    assert set(groups) <= {"high", "low"}
