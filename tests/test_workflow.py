"""The whole DAG on a tiny demo cohort, as a user runs it: snakemake in a fresh directory.

Checks: the run finishes with a report and summary.json; a rerun has nothing to do; changing a
training setting reruns only training and the report; a bad config key is named.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dagrun import default_config, planned_rules, snakemake, write_config

pytestmark = pytest.mark.slow


def _snakemake(workdir: Path, configfile: Path, *extra: str):
    return snakemake(workdir, configfile, *extra)


def _tiny_config(workdir: Path, **train: object) -> Path:
    config = default_config()
    config["cohort"] = "tiny"
    config["demo"].update({"n_patients": 10, "tiles_per_slide": 10, "seed": 1})
    config["train"].update({"epochs": 3, **train})
    return write_config(workdir / "tiny.yaml", config)


_planned_rules = planned_rules


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("workflow")
    config = _tiny_config(workdir)
    done = _snakemake(workdir, config)
    assert done.returncode == 0, done.stderr[-4000:]
    return workdir


def test_dag_produces_report(tiny_run: Path) -> None:
    report = tiny_run / "results" / "tiny" / "report" / "me_mamba"
    summary = json.loads((report / "summary.json").read_text())
    for key in (
        "cindex_folds",
        "cindex_mean",
        "cindex_std",
        "oracle_cindex",
        "logrank_p",
        "model",
        "encoder",
        "encoder_weights",
    ):
        assert key in summary, key
    assert len(summary["cindex_folds"]) == 5
    assert summary["encoder"] == "resnet50_trunc"
    assert summary["encoder_weights"] == "random"
    assert summary["model"] == "me_mamba"  # the default model
    assert 0.5 < summary["oracle_cindex"] <= 1.0
    page = (report / "index.html").read_text()
    assert "Kaplan" in page and "Random-init encoder" in page and "log-rank p" in page
    qc = (tiny_run / "results" / "tiny" / "qc" / "slides.tsv").read_text().splitlines()
    assert len(qc) == 1 + 10


def test_rerun_has_nothing_to_do(tiny_run: Path) -> None:
    dry = _snakemake(tiny_run, tiny_run / "tiny.yaml", "-n")
    assert dry.returncode == 0, dry.stderr[-2000:]
    assert "Nothing to be done" in dry.stdout + dry.stderr


def test_training_change_reruns_only_training(tiny_run: Path) -> None:
    changed = _tiny_config(tiny_run, lr=0.000123)
    dry = _snakemake(tiny_run, changed, "-n")
    assert dry.returncode == 0, dry.stderr[-2000:]
    assert _planned_rules(dry.stdout + dry.stderr) == {"train", "report", "cohort_page", "all"}
    _tiny_config(tiny_run)  # restore for other tests


def test_bad_config_key_is_named(tmp_path: Path) -> None:
    config = default_config()
    config["train"]["epochz"] = 3
    path = write_config(tmp_path / "bad.yaml", config)
    dry = _snakemake(tmp_path, path, "-n")
    assert dry.returncode != 0
    assert "epochz" in dry.stdout + dry.stderr


def test_second_model_keeps_both_reports(tiny_run: Path) -> None:
    """Another model in the same results folder: its own report; the cohort page lists both."""
    config = _tiny_config(tiny_run, model="snn")
    done = _snakemake(tiny_run, config)
    assert done.returncode == 0, done.stderr[-4000:]
    report = tiny_run / "results" / "tiny" / "report"
    for model in ("me_mamba", "snn"):
        assert (report / model / "index.html").exists(), model
        assert json.loads((report / model / "summary.json").read_text())["model"] == model
    listed = json.loads((report / "models.json").read_text())
    assert set(listed["models"]) == {"me_mamba", "snn"}
    page = (report / "index.html").read_text()
    assert "me_mamba" in page and "snn" in page
    _tiny_config(tiny_run)  # restore


def test_peer_models_train_report_and_predict_on_the_dag(tiny_run: Path) -> None:
    """SurvMamba, AdaMHF and M4Survive through the DAG (one run, several models), then
    `wsirisk predict --run` loads each one's checkpoints and scores a patient."""
    import subprocess

    from dagrun import env

    peers = ["survmamba", "adamhf", "m4survive"]
    config = default_config()
    config["cohort"] = "tiny"
    config["demo"].update({"n_patients": 10, "tiles_per_slide": 10, "seed": 1})
    config["train"].update({"epochs": 1, "models": peers})
    config["train"]["overrides"] = {
        "survmamba": {"model_kwargs": {"dim": 32}},
        "adamhf": {"model_kwargs": {"dim": 32}},
        "m4survive": {"batch_size": 4, "model_kwargs": {"dim": 32}},
    }
    done = _snakemake(tiny_run, write_config(tiny_run / "peers.yaml", config))
    assert done.returncode == 0, done.stderr[-4000:]
    results = tiny_run / "results" / "tiny"
    listed = json.loads((results / "report" / "models.json").read_text())
    assert set(peers) <= set(listed["models"])
    slide = next((tiny_run / "data" / "tiny" / "slides").glob("DEMO-001-*.tiff"))
    for model in peers:
        summary = json.loads((results / "report" / model / "summary.json").read_text())
        assert summary["model"] == model and len(summary["cindex_folds"]) == 5
        scored = subprocess.run(
            ["wsirisk", "predict", "--run", str(results / "train" / model), "--slide", str(slide),
             "--omics-table", str(tiny_run / "data" / "tiny" / "omics.csv"),
             "--case-id", "DEMO-001", "--work-dir", str(tiny_run / "predict_cache")],
            capture_output=True, text=True, env=env(), cwd=tiny_run, timeout=600,
        )  # fmt: skip
        assert scored.returncode == 0, scored.stderr[-3000:]
        out = json.loads(scored.stdout.strip().splitlines()[-1])
        assert out["model"] == model and len(out["fold_risks"]) == 5
        assert out["modalities"] == ["genomics", "pathology"]
