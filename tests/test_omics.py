"""Omics tables -> six categories: signatures, table QC, omics.zarr, loader, summary CLI."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from wsirisk.cli import main
from wsirisk.layout import CATEGORIES, OMICS_CENSORSHIP, OMICS_MONTHS, category_slug
from wsirisk.omics.build import build_omics, category_features
from wsirisk.omics.load import load_omics
from wsirisk.omics.signatures import read_signatures
from wsirisk.omics.summary import summarize
from wsirisk.omics.table import clean_table, read_cohort_table, slide_stem

# ---- hand-made inputs --------------------------------------------------------------------


def _write_signatures(path: Path) -> Path:
    columns = {
        "Tumor Suppressor Genes": ["TP53", "RB1", "PTEN"],
        "Oncogenes": ["MYC", "KRAS", "", "NOPE1"],
        "Protein Kinases": ["KRAS", "ABL1"],
        "Cell Differentiation Markers": ["CD4"],
        "Transcription Factors": ["MYC", "NOPE2"],
        "Cytokines and Growth Factors": ["IL6", "IL6"],
    }
    depth = max(len(genes) for genes in columns.values())
    frame = pd.DataFrame({c: genes + [""] * (depth - len(genes)) for c, genes in columns.items()})
    frame.to_csv(path, index=False)
    return path


def _good_rows() -> list[dict]:
    base = {
        "TP53_mut": 1,
        "TP53_cnv": -1,
        "TP53_rnaseq": 0.5,
        "RB1_rnaseq": -0.2,
        "PTEN_cnv": 0,
        "MYC_rnaseq": 1.5,
        "MYC_cnv": 2,
        "KRAS_mut": 0,
        "ABL1_rnaseq": 0.1,
        "CD4_rnaseq": 0.3,
        "IL6_rnaseq": -1.0,
    }
    rows = []
    for index, (months, censored) in enumerate([(10.0, 0), (25.5, 1), (3.2, 0), (40.0, 1)]):
        row = {"case_id": f"P{index}", "slide_id": f"P{index}-DX1.svs"}
        row |= {"survival_months": months, "censorship": censored}
        row |= {name: value + index for name, value in base.items()}
        rows.append(row)
    return rows


@pytest.fixture
def signatures_csv(tmp_path: Path) -> Path:
    return _write_signatures(tmp_path / "signatures.csv")


def _qc_reasons(table) -> dict[str, str]:
    return {row.case_id or row.column: row.reason for row in table.qc.itertuples()}


def test_signatures_ragged_and_deduplicated(signatures_csv: Path) -> None:
    signatures = read_signatures(signatures_csv)
    assert list(signatures) == list(CATEGORIES)
    assert signatures["Oncogenes"] == ["MYC", "KRAS", "NOPE1"]
    assert signatures["Cytokines and Growth Factors"] == ["IL6"]


def test_signatures_missing_column_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    pd.DataFrame({"Oncogenes": ["MYC"]}).to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"bad\.csv.*Tumor Suppressor Genes"):
        read_signatures(path)


def test_category_features_sorted_like_mcat() -> None:
    columns = ["MYC_rnaseq", "MYC_cnv", "KRAS_mut", "X_rnaseq"]
    features, missing = category_features(columns, ["MYC", "KRAS", "ABSENT"])
    assert features == ["KRAS_mut", "MYC_cnv", "MYC_rnaseq"]
    assert missing == ["ABSENT"]


def test_clean_table_collapses_slides_and_records_bad_patients() -> None:
    rows = _good_rows()
    rows.append(rows[0] | {"slide_id": "P0-DX2.svs"})  # second slide, same survival: kept
    rows.append(rows[1] | {"slide_id": "P1-DX2.svs", "survival_months": 99.0})  # conflict
    rows[2]["survival_months"] = -1.0  # negative time
    rows[3]["MYC_rnaseq"] = np.nan  # NaN feature: kept and counted
    rows.append(rows[3] | {"case_id": "P5", "censorship": 2})  # unknown censorship
    rows.append(rows[3] | {"case_id": "P6", "survival_months": np.nan})  # missing time
    frame = pd.DataFrame(rows)
    frame["mystery"] = 1  # unknown column: ignored with a QC row
    frame["GHOST_cnv"] = np.nan  # measured for nobody: dropped with a QC row
    frame["Unnamed: 0"] = range(len(frame))  # index dump: silently ignored
    table = clean_table(frame, source="hand.csv")

    assert table.case_ids == ["P0", "P3"]
    assert table.slides == {"P0": ["P0-DX1", "P0-DX2"], "P3": ["P3-DX1"]}
    reasons = _qc_reasons(table)
    assert reasons["P1"] == "conflicting_duplicate"
    assert reasons["P2"] == "negative_time"
    assert reasons["P5"] == "unknown_censorship"
    assert reasons["P6"] == "missing_time"
    assert reasons["P3"] == "nan_features"
    assert reasons["mystery"] == "unknown_column"
    assert "Unnamed: 0" not in reasons
    assert "GHOST_cnv" not in table.feature_columns
    ghost = table.qc[table.qc.reason == "all_nan_features"]
    assert len(ghost) == 1 and "GHOST_cnv" in ghost.detail.iloc[0]
    dropped = table.qc[table.qc.status == "dropped"]
    assert sorted(dropped.case_id) == ["P1", "P2", "P5", "P6"]
    assert table.nan_cells == 1
    assert np.isnan(table.patients.loc["P3", "MYC_rnaseq"])
    assert table.patients.loc["P0", "MYC_cnv"] == 2
    assert table.patients["censorship"].tolist() == [0, 1]


def test_clean_table_requires_survival_columns() -> None:
    with pytest.raises(ValueError, match=r"t\.csv.*censorship"):
        clean_table(pd.DataFrame({"case_id": ["A"], "survival_months": [1.0]}), source="t.csv")


def test_slide_stem() -> None:
    assert slide_stem("TCGA-2F-A9KO-01Z-00-DX1.1955.svs") == "TCGA-2F-A9KO-01Z-00-DX1.1955"
    assert slide_stem("DEMO-000-DX1") == "DEMO-000-DX1"


def test_build_omics_zarr_roundtrip(tmp_path: Path, signatures_csv: Path) -> None:
    rows = _good_rows()
    rows[1]["RB1_rnaseq"] = np.nan
    rows.append(rows[0] | {"case_id": "BAD", "survival_months": -5.0})
    table_csv = tmp_path / "cohort.csv.zip"
    pd.DataFrame(rows).to_csv(table_csv, index=False)
    out, qc_path = tmp_path / "omics.zarr", tmp_path / "qc" / "omics.tsv"

    code = main(
        ["omics", "--table", str(table_csv), "--signatures", str(signatures_csv)]
        + ["--out", str(out), "--qc", str(qc_path)]
    )
    assert code == 0
    data = load_omics(out)
    assert data.patients == ["P0", "P1", "P2", "P3"]
    assert data.survival_months.dtype == np.float32
    np.testing.assert_allclose(data.survival_months, [10.0, 25.5, 3.2, 40.0], rtol=1e-6)
    assert data.censorship.tolist() == [0, 1, 0, 1]
    assert data.slides["P2"] == ["P2-DX1"]
    tsg = category_slug("Tumor Suppressor Genes")
    assert data.feature_names[tsg] == [
        "PTEN_cnv",
        "RB1_rnaseq",
        "TP53_cnv",
        "TP53_mut",
        "TP53_rnaseq",
    ]
    assert data.group_sizes == {
        tsg: 5,
        "oncogenes": 3,
        "protein_kinases": 2,
        "cell_differentiation_markers": 1,
        "transcription_factors": 2,
        "cytokines_and_growth_factors": 1,
    }
    # unscaled values, NaN kept
    np.testing.assert_allclose(data.groups[tsg][2], [2, 1.8, 1, 3, 2.5], rtol=1e-6)
    assert np.isnan(data.groups[tsg][1, 1])

    import zarr

    group = zarr.open_group(str(out), mode="r")
    assert group[OMICS_MONTHS].dtype == np.float32
    assert group[OMICS_CENSORSHIP].dtype == np.int8
    assert group.attrs["missing_genes"]["oncogenes"] == 1  # NOPE1
    assert group.attrs["nan_cells"][tsg] == 1
    qc = pd.read_csv(qc_path, sep="\t", keep_default_na=False)
    assert {"BAD": "negative_time", "P1": "nan_features"}.items() <= dict(
        zip(qc.case_id, qc.reason, strict=True)
    ).items()
    assert set(qc[qc.reason == "missing_genes"].column) == {"Oncogenes", "Transcription Factors"}

    subset = data.select(["P3", "P0"])
    assert subset.patients == ["P3", "P0"]
    np.testing.assert_array_equal(subset.groups[tsg][1], data.groups[tsg][0])
    with pytest.raises(KeyError, match="NOBODY"):
        data.select(["NOBODY"])


def test_omics_problems_are_qc_rows_never_silent(tmp_path: Path, signatures_csv: Path) -> None:
    """All-NaN patient, duplicate case row, unparseable survival: each a QC row; counts kept."""
    rows = _good_rows()
    features = [k for k in rows[0] if k.endswith(("_rnaseq", "_cnv", "_mut"))]
    rows[1] |= dict.fromkeys(features, np.nan)  # P1: no omics at all (line 3)
    rows[2] |= {"MYC_rnaseq": np.nan, "TP53_cnv": np.nan}  # P2: two NaN cells
    rows.append(dict(rows[0]))  # line 6: P0's row again (same slide)
    rows.append(rows[3] | {"case_id": "P7", "survival_months": "ten"})  # line 7
    rows.append(rows[3] | {"case_id": "P8", "censorship": "yes"})  # line 8
    rows.append(rows[3] | {"case_id": "P9", "censorship": ""})  # line 9
    table_csv = tmp_path / "cohort.csv"
    pd.DataFrame(rows).to_csv(table_csv, index=False)
    upstream = tmp_path / "assembly.tsv"
    pd.DataFrame(
        [
            {
                "case_id": "TCGA-X",
                "column": "",
                "status": "dropped",
                "reason": "no_clinical",
                "detail": "not in the CDR",
            }
        ]  # fmt: skip
    ).to_csv(upstream, sep="\t", index=False)
    out, qc_path = tmp_path / "omics.zarr", tmp_path / "omics.tsv"
    argv = ["omics", "--table", str(table_csv), "--signatures", str(signatures_csv)]
    argv += ["--out", str(out), "--qc", str(qc_path), "--upstream-qc", str(upstream)]
    assert main(argv) == 0

    qc = pd.read_csv(qc_path, sep="\t", keep_default_na=False)
    assert qc.iloc[0].to_dict() == {
        "case_id": "TCGA-X", "column": "", "status": "dropped", "reason": "no_clinical",
        "detail": "not in the CDR",
    }  # fmt: skip
    by_case = {(r.case_id, r.reason): r for r in qc.itertuples()}
    absent = by_case[("P1", "all_nan_omics")]
    assert absent.status == "kept" and "omics absent" in absent.detail
    assert ("P1", "nan_features") not in by_case
    dup = by_case[("P0", "duplicate_case")]
    assert dup.status == "kept" and dup.detail.startswith("lines 2, 6 repeat the case")
    assert (
        by_case[("P7", "unparseable_time")].detail
        == "line 7: survival_months='ten' is not a number"
    )
    assert by_case[("P7", "unparseable_time")].status == "dropped"
    assert by_case[("P8", "unparseable_censorship")].detail.startswith("line 8: censorship='yes'")
    assert by_case[("P9", "missing_censorship")].status == "dropped"
    nan_row = by_case[("P2", "nan_features")]
    assert "tumor_suppressor_genes 1" in nan_row.detail and "oncogenes 1" in nan_row.detail

    import zarr

    attrs = zarr.open_group(str(out), mode="r").attrs
    assert attrs["no_omics_patients"] == ["P1"]
    assert attrs["nan_cells_by_patient"] == {
        "P2": {"tumor_suppressor_genes": 1, "oncogenes": 1, "transcription_factors": 1}
    }
    assert attrs["nan_cells"]["oncogenes"] == 1  # P1's absent omics are not imputed cells
    data = load_omics(out)
    assert data.patients == ["P0", "P1", "P2", "P3"]  # P1 keeps its survival label
    assert all(np.isnan(values[1]).all() for values in data.groups.values())


def test_upstream_qc_with_other_columns_is_named(tmp_path: Path, signatures_csv: Path) -> None:
    table_csv = tmp_path / "cohort.csv"
    pd.DataFrame(_good_rows()).to_csv(table_csv, index=False)
    upstream = tmp_path / "assembly.tsv"
    upstream.write_text("case_id\twhy\nA\tx\n")
    with pytest.raises(ValueError, match=r"assembly\.tsv.*'column', 'status', 'reason'"):
        build_omics(table_csv, signatures_csv, tmp_path / "o.zarr", tmp_path / "q.tsv", [upstream])


def test_build_fails_clearly_when_no_patient_survives(tmp_path: Path, signatures_csv: Path) -> None:
    rows = [row | {"survival_months": -1.0} for row in _good_rows()]
    table_csv = tmp_path / "all_bad.csv"
    pd.DataFrame(rows).to_csv(table_csv, index=False)
    qc_path = tmp_path / "qc.tsv"
    with pytest.raises(ValueError, match="all_bad.csv: no patient left"):
        build_omics(table_csv, signatures_csv, tmp_path / "o.zarr", qc_path)
    assert not (tmp_path / "o.zarr").exists()
    assert (pd.read_csv(qc_path, sep="\t").reason == "negative_time").sum() == 4


def test_summary_raw_dir_without_assembler_is_clear(
    tmp_path: Path,
    signatures_csv: Path,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "wsirisk.gdc.assemble", None)  # import now fails
    code = main(["omics-summary", str(tmp_path), "--signatures", str(signatures_csv)])
    assert code == 1
    assert "table_from_raw_dir is not available" in capsys.readouterr().err


def test_summary_missing_table_is_named(signatures_csv: Path, capsys) -> None:
    code = main(["omics-summary", "/nonexistent/t.csv", "--signatures", str(signatures_csv)])
    assert code == 1
    assert "/nonexistent/t.csv" in capsys.readouterr().err


# ---- real TCGA tables (PORPOISE mutsig) ----------------------------------------------------

# cohort -> (patients, events, category sizes in layout.CATEGORIES order)
REAL = {
    "blca": (373, 169, [102, 336, 518, 434, 199, 444]),
    "coadread": (340, 81, [100, 341, 551, 441, 222, 429]),
    "luad": (453, 158, [94, 334, 531, 471, 218, 440]),
    "ucec": (480, 75, [20, 63, 78, 28, 150, 9]),
}


@pytest.mark.parametrize("cohort", sorted(REAL))
def test_real_porpoise_tables(shared_dir: Path, cohort: str, capsys) -> None:
    tcga = shared_dir / "tcga"
    table = tcga / "porpoise_mutsig" / f"tcga_{cohort}_all_clean.csv.zip"
    code = main(["omics-summary", str(table), "--signatures", str(tcga / "signatures.csv")])
    assert code == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    summary = json.loads(lines[0])
    patients, events, sizes = REAL[cohort]
    assert summary["patients"] == patients
    assert summary["events"] == events
    assert summary["censored"] == patients - events
    assert summary["category_sizes"] == dict(zip(CATEGORIES, sizes, strict=True))


def test_real_mcat_luad_matches_published_omic_sizes(shared_dir: Path) -> None:
    """MCAT's LUAD signature table gives its well-known omic sizes."""
    tcga = shared_dir / "tcga"
    summary = summarize(tcga / "mcat_sig" / "tcga_luad_all_clean.csv.zip", tcga / "signatures.csv")
    assert list(summary["category_sizes"].values()) == [89, 334, 534, 471, 1510, 482]


def test_real_blca_multi_slide_patients(shared_dir: Path) -> None:
    table = read_cohort_table(shared_dir / "tcga/porpoise_mutsig/tcga_blca_all_clean.csv.zip")
    assert table.n_rows == 437
    assert sum(len(ids) for ids in table.slides.values()) == 437
    assert max(len(ids) for ids in table.slides.values()) >= 2
    assert all(not sid.endswith(".svs") for ids in table.slides.values() for sid in ids)
    assert (table.qc.status == "dropped").sum() == 0
    assert table.nan_cells == 0


def test_real_raw_gdc_dir_summary(shared_dir: Path, tmp_path: Path, capsys) -> None:
    """A raw directory (TCGA-CDR clinical + a MAF) goes through wsirisk.gdc.assemble."""
    raw = tmp_path / "raw"
    raw.mkdir()
    gdc = shared_dir / "gdc"
    (raw / "cdr.tsv").symlink_to(gdc / "clinical" / "TCGA-CDR-SupplementalTableS1.tsv")
    (raw / "laml.maf.gz").symlink_to(gdc / "maf" / "legacy_tcga_laml_hg19.maf.gz")
    signatures = shared_dir / "tcga" / "signatures.csv"
    assert main(["omics-summary", str(raw), "--signatures", str(signatures)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["patients"] > 100
    assert summary["events"] + summary["censored"] == summary["patients"]
    assert all(size > 0 for size in summary["category_sizes"].values())
