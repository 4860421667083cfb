"""The DAG on a real cohort (`demo.enabled: false`): a user's sample sheet and omics table.

Slides and omics come from the demo generator but reach the DAG the way a user's files do: a
TSV sample sheet with bad rows (an unsafe id, a duplicate id, a missing file, a truncated slide)
and a PORPOISE-layout table. Checks: every bad row is a QC row naming the sheet and line while
the other slides finish; slide IDs that do not match the omics IDs stop a multimodal run with a
message naming the mismatch, or, when allowed, finish with a banner and the right counts.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from dagrun import default_config, snakemake, write_config

from wsirisk.demo import make_demo

pytestmark = pytest.mark.slow
N = 8  # patients with a good slide


@pytest.fixture(scope="module")
def cohort_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Demo slides/omics generated once, outside any results folder."""
    root = tmp_path_factory.mktemp("real_inputs")
    make_demo(root / "gen", n_patients=N, seed=5, frac_40x=0.5, tiles_per_slide=8)
    return root


def _sheet(path: Path, rows: list[list[str]]) -> Path:
    lines = ["slide_id\tpatient_id\tpath"] + ["\t".join(r) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def _config(workdir: Path, inputs: Path, sheet: Path, **matching: object) -> Path:
    config = default_config()
    config["cohort"] = "real"
    config["demo"]["enabled"] = False
    config["inputs"].update(
        sample_sheet=str(sheet),
        omics_table=str(inputs / "gen" / "omics.csv"),
        signatures=str(inputs / "gen" / "signatures.csv"),
    )
    config["slides"]["segmentation"] = dict(config["demo"]["segmentation"])  # small islands
    config["splits"]["n_folds"] = 2
    config["features"]["slides_per_job"] = 4
    config["train"].update(model="abmil_snn", epochs=2)
    config["matching"].update(matching)
    return write_config(workdir / "real.yaml", config)


def _good_rows(inputs: Path, patient_suffix: str = "") -> list[list[str]]:
    slides = sorted((inputs / "gen" / "slides").glob("*.tiff"))
    assert len(slides) == N
    rows = []
    for slide in slides:
        slide_id = slide.stem  # DEMO-000-DX1
        patient = slide_id.rsplit("-", 1)[0] + patient_suffix  # DEMO-000
        rows.append([slide_id, patient, str(slide)])
    return rows


def _qc(workdir: Path) -> dict[str, dict[str, str]]:
    with open(workdir / "results" / "real" / "qc" / "slides.tsv", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    return {row["slide_id"] + "@" + row.get("reason", ""): row for row in rows}


def test_bad_rows_become_qc_rows_and_the_rest_finishes(cohort_files: Path, tmp_path: Path) -> None:
    truncated = tmp_path / "TRUNC-DX1.tiff"
    source = next((cohort_files / "gen" / "slides").glob("*.tiff"))
    truncated.write_bytes(source.read_bytes()[: source.stat().st_size // 3])
    good = _good_rows(cohort_files)
    bad = [
        ["../escape", "DEMO-000", str(source)],  # line 2 + N: unsafe id
        [good[0][0], good[0][1], str(source)],  # duplicate id
        ["MISSING-DX1", "DEMO-001", str(tmp_path / "nowhere.svs")],  # missing file
        ["TRUNC-DX1", "DEMO-002", str(truncated)],  # truncated slide (tiled: fails)
    ]
    sheet = _sheet(tmp_path / "sheet.tsv", good + bad)
    done = snakemake(tmp_path, _config(tmp_path, cohort_files, sheet))
    assert done.returncode == 0, done.stderr[-5000:]

    with open(tmp_path / "results" / "real" / "qc" / "slides.tsv", newline="") as handle:
        qc = list(csv.DictReader(handle, delimiter="\t"))
    by_reason = {row["reason_code"]: row for row in qc}
    first_bad = 2 + N  # header is line 1
    for code, line in (("unsafe_id", first_bad), ("duplicate_id", first_bad + 1)):
        row = by_reason[code]
        assert row["status"] == "rejected"
        assert str(sheet) in row["reason"] and f"line {line}" in row["reason"], row
    missing = by_reason["missing_file"]
    assert missing["slide_id"] == "MISSING-DX1" and f"line {first_bad + 2}" in missing["reason"]
    trunc = next(row for row in qc if row["slide_id"] == "TRUNC-DX1")
    assert trunc["status"] == "failed", trunc
    assert (trunc["sheet"], trunc["sheet_line"]) == (str(sheet), str(first_bad + 3))
    ok = [row for row in qc if row["status"] == "ok"]
    assert len(ok) == N

    results = tmp_path / "results" / "real"
    stores = sorted(p.name for p in (results / "features" / "resnet50_trunc").glob("*.zarr"))
    assert [s.removesuffix(".zarr") for s in stores if s.startswith("DEMO")] == [r[0] for r in good]
    summary = json.loads((results / "report" / "abmil_snn" / "summary.json").read_text())
    assert len(summary["cindex_folds"]) == 2
    cohort = json.loads((results / "cohort" / "summary.json").read_text())
    assert cohort["counts"]["both"] == N and cohort["banner"] is None
    page = (results / "report" / "abmil_snn" / "index.html").read_text()
    assert "rejected" in page and "MISSING-DX1" in page  # the QC table is in the report

    again = snakemake(tmp_path, _config(tmp_path, cohort_files, sheet), "-n")
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr


def _mismatched_sheet(inputs: Path, tmp_path: Path) -> Path:
    """Patient IDs written as slide barcodes (DEMO-000-DX1), as a user who copies the slide_id
    column does; the omics table has case IDs (DEMO-000)."""
    rows = [[r[0], r[0], r[2]] for r in _good_rows(inputs)]
    return _sheet(tmp_path / "sheet.tsv", rows)


def test_id_mismatch_stops_a_multimodal_run(cohort_files: Path, tmp_path: Path) -> None:
    sheet = _mismatched_sheet(cohort_files, tmp_path)
    done = snakemake(tmp_path, _config(tmp_path, cohort_files, sheet))
    assert done.returncode != 0
    text = done.stdout + done.stderr
    assert "DEMO-000-DX1" in text and "DEMO-000" in text  # the first IDs on each side
    assert "mismatch" in text.lower()
    assert not (tmp_path / "results" / "real" / "train").exists()  # nothing trained


def test_id_mismatch_allowed_finishes_with_a_banner(cohort_files: Path, tmp_path: Path) -> None:
    sheet = _mismatched_sheet(cohort_files, tmp_path)
    config = _config(tmp_path, cohort_files, sheet, allow_mismatch=True)
    done = snakemake(tmp_path, config)
    assert done.returncode == 0, done.stderr[-5000:]
    results = tmp_path / "results" / "real"
    cohort = json.loads((results / "cohort" / "summary.json").read_text())
    assert cohort["counts"]["both"] == 0
    # the sheet's patients have slides but no omics row, hence no survival label: dropped
    assert cohort["counts"]["dropped"] == N and cohort["counts"]["omics_only"] == N
    assert cohort["banner"]
    page = (results / "report" / "abmil_snn" / "index.html").read_text()
    assert cohort["banner"] in page or "mismatch" in page.lower()
    shutil.rmtree(results / "features", ignore_errors=True)
