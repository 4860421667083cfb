"""`wsirisk cohort`: one row per patient with the reason of every exclusion; the ID-mismatch
check fails multimodal runs with a message naming the mismatch (or a banner when allowed)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from wsirisk.cli import main
from wsirisk.cohort.ids import describe_mismatch
from wsirisk.cohort.sheet import QC_COLUMNS as SHEET_QC_COLUMNS
from wsirisk.cohort.sheet import SHEET_COLUMNS
from wsirisk.layout import CATEGORIES
from wsirisk.omics.build import build_omics
from wsirisk.slides.qc import QC_COLUMNS as SLIDE_QC_COLUMNS
from wsirisk.slides.qc import sheet_rows

GENES = ["TP53", "MYC", "KRAS", "CD4", "SOX2", "IL6"]  # one per category


def _tsv(path: Path, columns: tuple[str, ...], rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), delimiter="\t")
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row.get(c, "") for c in columns})
    return path


def _read(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="") as handle:
        return {r["patient_id"]: r for r in csv.DictReader(handle, delimiter="\t")}


def _omics(root: Path, cases: list[str], all_nan: tuple[str, ...] = (), bad: tuple = ()) -> Path:
    """omics.zarr + qc/omics.tsv for ``cases`` (``bad`` cases get a negative survival time)."""
    pd.DataFrame({c: [g] for c, g in zip(CATEGORIES, GENES, strict=True)}).to_csv(
        root / "signatures.csv", index=False
    )
    rows = []
    for i, case in enumerate(cases):
        row = {"case_id": case, "survival_months": -1.0 if case in bad else 5.0 + i}
        row["censorship"] = i % 2
        for gene in GENES:
            row[f"{gene}_rnaseq"] = np.nan if case in all_nan else float(i)
        rows.append(row)
    pd.DataFrame(rows).to_csv(root / "table.csv", index=False)
    build_omics(root / "table.csv", root / "signatures.csv", root / "omics.zarr", root / "qc.tsv")
    return root


def _slides(root: Path, slides: list[tuple[str, str, str]], rejected=()) -> None:
    """Validated sheet + qc/slides.tsv: ``slides`` = (slide_id, patient_id, qc status)."""
    _tsv(
        root / "sheet.tsv",
        SHEET_COLUMNS,
        [
            {"slide_id": s, "patient_id": p, "path": f"{s}.svs", "line": str(i + 2), "batch": "0"}
            for i, (s, p, _) in enumerate(slides)
        ],
    )
    qc = [
        {
            "slide_id": s,
            "patient_id": p,
            "status": status,
            "reason_code": "ok" if status == "ok" else "no_tissue",
            "reason": "" if status == "ok" else "no tissue found",
            "n_tiles": "12" if status == "ok" else "0",
        }
        for s, p, status in slides
    ]
    sheet_qc = _tsv(
        root / "sheet_qc.tsv",
        SHEET_QC_COLUMNS,
        [
            {
                "sheet": "in.tsv",
                "line": "9",
                "slide_id": s,
                "patient_id": p,
                "path": "x",
                "reason_code": "missing_file",
                "reason": "in.tsv line 9: slide file 'x' not found",
            }
            for s, p in rejected
        ],  # fmt: skip
    )
    _tsv(root / "qc_slides.tsv", SLIDE_QC_COLUMNS, qc + sheet_rows(sheet_qc))


def _argv(root: Path, models: str, *extra: str) -> list[str]:
    return [
        "cohort", "--sheet", str(root / "sheet.tsv"), "--qc-slides", str(root / "qc_slides.tsv"),
        "--omics", str(root / "omics.zarr"), "--qc-omics", str(root / "qc.tsv"),
        "--models", models, "--out", str(root / "patients.tsv"),
        "--summary", str(root / "summary.json"), *extra,
    ]  # fmt: skip


def test_one_row_per_patient_with_every_reason(tmp_path: Path, capsys) -> None:
    _omics(tmp_path, ["A", "B", "C", "D", "E", "F"], all_nan=("C",), bad=("F",))
    _slides(
        tmp_path,
        [
            ("A-1", "A", "ok"),
            ("A-2", "A", "skipped"),  # A: both, one slide lost
            ("B-1", "B", "ok"),  # B: both
            ("C-1", "C", "ok"),  # C: all-NaN omics -> slides only
            ("D-1", "D", "failed"),  # D: no usable slide -> omics only
            ("G-1", "G", "ok"),  # G: no label -> dropped
            ("F-1", "F", "ok"),  # F: omics QC dropped it -> dropped
        ],
        rejected=[("../h", "H")],  # H: only a rejected row -> dropped
    )
    assert main(_argv(tmp_path, "abmil_snn,snn", "--min-both-fraction", "0.4")) == 0
    rows = _read(tmp_path / "patients.tsv")
    status = {p: r["status"] for p, r in rows.items()}
    assert status == {
        "A": "both", "B": "both", "C": "slides_only", "D": "omics_only", "E": "omics_only",
        "F": "dropped", "G": "dropped", "H": "dropped",
    }  # fmt: skip
    assert rows["A"]["n_slides"] == "2" and rows["A"]["n_slides_ok"] == "1"
    assert "slide A-2 skipped (no_tissue: no tissue found)" in rows["A"]["reason"]
    assert rows["B"]["reason"] == ""
    assert rows["C"]["has_omics"] == "false" and "omics absent" in rows["C"]["reason"]
    assert rows["D"]["n_slides_ok"] == "0" and "slide D-1 failed" in rows["D"]["reason"]
    assert rows["E"]["reason"] == "no slide in the sheet"
    assert "dropped (negative_time" in rows["F"]["reason"] and rows["F"]["has_label"] == "false"
    assert "no survival label" in rows["G"]["reason"]
    assert rows["H"]["n_slides_rejected"] == "1" and "in.tsv line 9" in rows["H"]["reason"]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["counts"] == {"both": 2, "slides_only": 1, "omics_only": 2, "dropped": 3}
    assert summary["labelled"] == 5 and summary["both_fraction"] == pytest.approx(0.4)
    assert summary["banner"] is None
    models = {m["name"]: m for m in summary["models"]}
    assert models["abmil_snn"]["multimodal"] and not models["snn"]["multimodal"]
    assert models["snn"]["usable_patients"] == 4  # labelled with omics: A, B, D, E
    assert summary["slides"] == {"in_sheet": 7, "ok": 5, "rejected_rows": 1}


def test_below_fraction_fails_only_for_multimodal(tmp_path: Path) -> None:
    _omics(tmp_path, ["A", "B", "C", "D", "E", "F"], all_nan=("C",), bad=("F",))
    _slides(tmp_path, [("A-1", "A", "ok"), ("B-1", "B", "ok")])
    assert main(_argv(tmp_path, "snn,abmil", "--min-both-fraction", "0.9")) == 0
    assert main(_argv(tmp_path, "snn,abmil_snn", "--min-both-fraction", "0.9")) == 1


TCGA = ["TCGA-2F-A9KO", "TCGA-2F-A9KP", "TCGA-4Z-AA7M", "TCGA-BT-A20J"]


def test_tcga_barcode_mismatch_is_named_then_allowed_with_banner(tmp_path: Path, capsys) -> None:
    """The issue's scenario: slide-level IDs in the sheet, case barcodes in the omics table."""
    _omics(tmp_path, TCGA)
    _slides(tmp_path, [(f"{c}-01Z-00-DX1", f"{c}-01Z-00-DX1", "ok") for c in TCGA])
    assert main(_argv(tmp_path, "me_mamba")) == 1
    err = capsys.readouterr().err
    assert "slide/omics mismatch: only 0 of 4 labelled patient(s) (0%)" in err
    assert "me_mamba" in err
    assert "sheet: 4 patient ID(s); omics table: 4 case ID(s); 0 in both" in err
    assert "only in the sheet (first 5): TCGA-2F-A9KO-01Z-00-DX1, TCGA-2F-A9KP-01Z-00-DX1" in err
    assert "only in the omics table (first 5): TCGA-2F-A9KO, TCGA-2F-A9KP" in err
    assert (
        "sheet IDs look like sample/slide barcodes (e.g. TCGA-2F-A9KO-01Z-00-DX1), omics IDs "
        "like 12-char case barcodes (e.g. TCGA-2F-A9KO); set patient_id to the first 12 "
        "characters (4 of 4 sheet patient(s) would then match)"
    ) in err
    assert not (tmp_path / "summary.json").exists()
    assert (tmp_path / "patients.tsv").exists()

    assert main(_argv(tmp_path, "me_mamba", "--allow-mismatch")) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["counts"] == {"both": 0, "slides_only": 0, "omics_only": 4, "dropped": 4}
    assert summary["banner"].startswith("Slide/omics mismatch allowed: only 0 of 4")
    assert "first 12 characters" in summary["banner"]
    assert "WARNING" in capsys.readouterr().err


def test_unimodal_pathology_model_without_any_slide_fails(tmp_path: Path, capsys) -> None:
    _omics(tmp_path, ["A", "B"])
    _slides(tmp_path, [])
    assert main(_argv(tmp_path, "snn")) == 0
    assert main(_argv(tmp_path, "abmil", "--allow-mismatch")) == 1
    assert "model abmil uses pathology, but no labelled patient has it" in capsys.readouterr().err


def test_unknown_model_and_missing_inputs_are_named(tmp_path: Path, capsys) -> None:
    _omics(tmp_path, ["A"])
    _slides(tmp_path, [("A-1", "A", "ok")])
    assert main(_argv(tmp_path, "nope")) == 1
    assert "unknown model 'nope'" in capsys.readouterr().err
    (tmp_path / "qc_slides.tsv").unlink()
    assert main(_argv(tmp_path, "snn")) == 1
    assert "qc_slides.tsv" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("sheet", "omics", "hint"),
    [
        (["TCGA-2F-A9KO"], ["TCGA-2F-A9KO-01A"], "set the omics table's case_id to the first 12"),
        (["p_01", "p_02"], ["P-01", "P-02"], "2 ID(s) differ only in letter case and '_' versus"),
        (["pat01", "pat02"], ["PAT01", "x"], "1 ID(s) differ only in letter case (e.g. pat01"),
        (["CASE-1-slideA"], ["CASE-1"], "1 sheet ID(s) extend an omics ID (e.g. CASE-1-slideA)"),
        (["a"], ["b"], "no common form recognised"),
    ],
)
def test_mismatch_hints(sheet: list[str], omics: list[str], hint: str) -> None:
    assert hint in describe_mismatch(set(sheet), set(omics))


def test_hint_from_the_omics_table_slide_column() -> None:
    text = describe_mismatch({"P1"}, {"CASE-9"}, {"CASE-9": ["S-1.abc"]}, {"S-1": "P1"})
    assert "slide S-1: case CASE-9 there, patient P1 in the sheet" in text
