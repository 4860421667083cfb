"""The paper-table matching (cohort column, backbone, method) and the report's fold-level figures
without any files: Cox-type risks, unpaired folds, unreadable reference tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from report_data import REFERENCE_CSV

from wsirisk.report.cohort_page import versus_reference
from wsirisk.report.evaluate import evaluate, risk_kind
from wsirisk.report.folds import Fold, Folds
from wsirisk.report.reference import backbone_of, cohort_code, load_reference, paper_row


@pytest.fixture()
def reference(tmp_path: Path):
    path = tmp_path / "table1.csv"
    path.write_text(REFERENCE_CSV)
    ref = load_reference(path)
    assert ref.status == "ok" and ref.cohorts == ["BLCA", "LUAD"]
    return ref


def test_cohort_column_and_backbone_names() -> None:
    known = ["BLCA", "BRCA", "LUAD"]
    assert cohort_code("tcga_blca", known) == "BLCA"
    assert cohort_code("TCGA-LUAD", known) == "LUAD"
    assert cohort_code("blca_real_slides", known) == "BLCA"  # not a column of its own
    assert cohort_code("tcga_coadread", known) == "COADREAD"
    assert backbone_of("resnet50_trunc") == "resnet50"
    assert backbone_of("hf-hub:MahmoodLab/UNI") == "uni"
    assert backbone_of("conch_v1") == "conch"
    assert backbone_of("vit_base_patch16_224") is None
    assert backbone_of(None) is None


def test_paper_row_matches_method_cohort_and_backbone(reference) -> None:
    row = paper_row(reference, "me_mamba", "tcga_luad", "uni", True)
    assert (row["method"], row["backbone"], row["cindex_mean"], row["match"]) == (
        "ME-Mamba",
        "uni",
        0.6695,
        "exact",
    )
    snn = paper_row(reference, "snn", "tcga_blca", None, uses_pathology=False)
    assert snn["cindex_mean"] == 0.6339  # genomics-only: whatever the encoder
    none = paper_row(reference, "survmamba", "tcga_blca", "resnet50_trunc", True)
    assert none["cindex_mean"] is None and "no 'SurvMamba' row" in none["note"]
    conch = paper_row(reference, "me_mamba", "tcga_blca", "conch", True)
    assert conch["cindex_mean"] is None and "backbone CONCH" in conch["note"]
    other = paper_row(reference, "me_mamba", "tcga_coadread", "resnet50_trunc", True)
    assert other["cohort_column"] == "COADREAD" and "cohort COADREAD" in other["note"]


def test_reference_table_problems_are_notes_not_errors(tmp_path: Path) -> None:
    assert load_reference(None).status == "not_configured"
    missing = load_reference(tmp_path / "none.csv")
    assert missing.status == "missing" and "does not resolve" in missing.note
    bad = tmp_path / "bad.csv"
    bad.write_text("model,cohort\nSNN,BLCA\n")
    unreadable = load_reference(bad)
    assert unreadable.status == "unreadable" and "missing" in unreadable.note
    row = paper_row(missing, "me_mamba", "tcga_blca", "resnet50_trunc", True)
    assert row["cindex_mean"] is None and row["cohort_column"] == "BLCA"


def _fold(index: int, risk: np.ndarray, survival: np.ndarray, seed: int) -> Fold:
    rng = np.random.default_rng(seed)
    months = rng.uniform(1, 60, size=risk.size)
    censorship = (rng.uniform(size=risk.size) < 0.3).astype(np.int64)
    patients = [f"P{index}-{i}" for i in range(risk.size)]
    attrs = {"bins": [0.0, 10.0, 20.0, 40.0, 60.0]}
    return Fold(index, attrs, patients, risk, months, censorship, survival)


def test_cox_type_risk_is_recognised_and_has_no_brier_score() -> None:
    rng = np.random.default_rng(0)
    survival = np.cumprod(rng.uniform(0.7, 0.95, size=(20, 4)), axis=1)
    discrete = Folds([_fold(k, -survival.sum(1), survival, k) for k in range(2)])
    assert risk_kind(discrete) == "discrete_time"
    cox = Folds([_fold(k, rng.normal(size=20), survival, k) for k in range(2)])
    assert risk_kind(cox) == "cox"
    result = evaluate(cox, n_boot=50)
    assert result["risk_kind"] == "cox" and result["ibs"]["mean"] is None
    assert "Cox-type" in result["ibs"]["folds"][0]["reason"]
    assert result["td_auc"]["mean"] is not None  # td-AUC needs only a risk
    stated = Folds([_fold(0, rng.normal(size=20), survival, 0)])
    stated.folds[0].attrs["risk_kind"] = "discrete_time"
    assert risk_kind(stated) == "discrete_time"  # the fold store's own word wins


def test_comparison_needs_the_same_folds() -> None:
    base = {"model": "me_mamba", "cindex_folds": [0.7, 0.6], "fold_val_patients_sha256": ["a", "b"]}
    other = {"model": "snn", "cindex_folds": [0.6, 0.5], "fold_val_patients_sha256": ["a", "c"]}
    assert versus_reference(base, base) is None
    assert versus_reference(other, None) is None
    vs = versus_reference(other, base)
    assert vs["mean_diff"] is None and "different folds" in vs["reason"]
    same = dict(other, fold_val_patients_sha256=["a", "b"])
    assert versus_reference(same, base)["mean_diff"] == pytest.approx(-0.1)
