"""The whole DAG on a tiny demo cohort, as a user runs it: snakemake in a fresh directory.

Checks: the run finishes with a report and summary.json; a rerun has nothing to do; changing a
training setting reruns only training and the report; a bad config key is named.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["OMP_NUM_THREADS"] = "2"
    return env


def _snakemake(workdir: Path, configfile: Path, *extra: str) -> subprocess.CompletedProcess:
    command = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(configfile),
        "--cores",
        "2",
        *extra,
    ]
    return subprocess.run(command, capture_output=True, text=True, env=_env(), timeout=1200)


def _tiny_config(workdir: Path, **train: object) -> Path:
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["cohort"] = "tiny"
    config["demo"].update({"n_patients": 10, "tiles_per_slide": 10, "seed": 1})
    config["train"].update({"epochs": 3, **train})
    path = workdir / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _planned_rules(dry_run_output: str) -> set[str]:
    """Rule names in the job-stats table of a dry run."""
    rules, in_table = set(), False
    for line in dry_run_output.splitlines():
        if line.startswith("job ") and "count" in line:
            in_table = True
            continue
        if in_table:
            parts = line.split()
            if not parts or parts[0] == "total":
                break
            if not set(parts[0]) <= {"-"}:
                rules.add(parts[0])
    return rules


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("workflow")
    config = _tiny_config(workdir)
    done = _snakemake(workdir, config)
    assert done.returncode == 0, done.stderr[-4000:]
    return workdir


def test_dag_produces_report(tiny_run: Path) -> None:
    report = tiny_run / "results" / "tiny" / "report"
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
    assert _planned_rules(dry.stdout + dry.stderr) == {"train", "report", "all"}
    _tiny_config(tiny_run)  # restore for other tests


def test_bad_config_key_is_named(tmp_path: Path) -> None:
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["train"]["epochz"] = 3
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    dry = _snakemake(tmp_path, path, "-n")
    assert dry.returncode != 0
    assert "epochz" in dry.stdout + dry.stderr
