"""A directory of raw GDC files -> one PORPOISE/MCAT-layout table (one row per patient)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
from test_gdc_formats import gene_level_file

from wsirisk.gdc.assemble import classify, table_from_raw_dir
from wsirisk.gdc.clinical import DAYS_PER_MONTH

SHEET_HEADER = (
    "File ID\tFile Name\tData Category\tData Type\tProject ID\tCase ID\tSample ID\tSample Type\n"
)


def _link(src: Path, dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(src, dst)
    return dst


@pytest.fixture()
def raw_dir(shared_dir: Path, tmp_path: Path) -> Path:
    """gdc-client layout (<file id>/<name>) with a sample sheet, STAR, CNV, MAF and the CDR."""
    gdc, raw = shared_dir / "gdc", tmp_path / "raw"
    star_a = "aaaa.rna_seq.augmented_star_gene_counts.tsv.gz"
    star_b = "bbbb.rna_seq.augmented_star_gene_counts.tsv"
    star_n = "cccc.rna_seq.augmented_star_gene_counts.tsv"
    gene_cnv = "dddd.ascat3.gene_level_copy_number.v36.tsv"
    seg = "eeee.ascat3.allelic_specific.seg.txt"
    _link(
        gdc / "rnaseq" / "star_counts_fixture.augmented_star_gene_counts.tsv.gz",
        raw / "f-a" / star_a,
    )
    _link(gdc / "rnaseq" / "star_counts_excerpt.tsv", raw / "f-b" / star_b)
    _link(gdc / "rnaseq" / "star_counts_excerpt.tsv", raw / "f-c" / star_n)
    (raw / "f-d").mkdir()
    gene_level_file(raw / "f-d" / gene_cnv)
    _link(next((gdc / "cnv").glob("README_excerpt*ascat3*")), raw / "f-e" / seg)
    for i, maf in enumerate(sorted((gdc / "maf").glob("NGTA_*.maf"))):
        _link(maf, raw / f"f-m{i}" / maf.name)
    _link(gdc / "clinical" / "TCGA-CDR-SupplementalTableS1.tsv", raw / "TCGA-CDR.tsv")
    rows = [
        ("f-a", star_a, "TCGA-DJ-A2Q6", "TCGA-DJ-A2Q6-01A", "Primary Tumor"),
        ("f-b", star_b, "TCGA-EL-A3CT", "TCGA-EL-A3CT-01A", "Primary Tumor"),
        ("f-c", star_n, "TCGA-EL-A3CT", "TCGA-EL-A3CT-11A", "Solid Tissue Normal"),
        ("f-d", gene_cnv, "TCGA-DJ-A2Q6", "TCGA-DJ-A2Q6-01A", "Primary Tumor"),
        ("f-e", seg, "TCGA-EL-A3CT", "TCGA-EL-A3CT-01A", "Primary Tumor"),
        (
            "f-m0",
            "x.maf",
            "TCGA-DJ-A2Q6, TCGA-DJ-A2Q6",
            "TCGA-DJ-A2Q6-01A, TCGA-DJ-A2Q6-10A",
            "Primary Tumor, Blood Derived Normal",
        ),
    ]
    lines = [
        f"{fid}\t{name}\tcat\ttype\tTCGA-THCA\t{case}\t{sample}\t{kind}\n"
        for fid, name, case, sample, kind in rows
    ]
    (raw / "gdc_sample_sheet.2024-01-01.tsv").write_text(SHEET_HEADER + "".join(lines))
    (raw / "download_log.tsv").write_text("file_id\tfile_name\n")
    (raw / "f-z").mkdir()
    (raw / "f-z" / "big.svs.partial").write_bytes(b"\x00" * 10)
    (raw / "README.txt").write_text("notes\n")
    return raw


def test_table_from_raw_dir(raw_dir: Path) -> None:
    table = table_from_raw_dir(raw_dir)
    assert list(table.columns[:4]) == ["case_id", "slide_id", "survival_months", "censorship"]
    assert list(table.case_id) == ["TCGA-DJ-A2Q6", "TCGA-EL-A3CT"]
    assert (table.slide_id == "").all()
    assert table.survival_months.tolist() == pytest.approx(
        [1109 / DAYS_PER_MONTH, 1854 / DAYS_PER_MONTH]
    )
    assert table.censorship.tolist() == [1, 0]  # CDR OS: alive, dead
    rna = [c for c in table if c.endswith("_rnaseq")]
    cnv = [c for c in table if c.endswith("_cnv")]
    mut = [c for c in table if c.endswith("_mut")]
    assert (len(rna), len(cnv), len(mut)) == (95, 7, 58) and table.shape[1] == 4 + 95 + 7 + 58
    row = table.set_index("case_id")
    # tumour STAR file, not the normal 11A one (same content, but it must be the 01A pick)
    assert row.loc["TCGA-EL-A3CT", "TSPAN6_rnaseq"] == pytest.approx(math.log2(44.6685 + 1))
    assert np.isnan(row.loc["TCGA-EL-A3CT", "CD99_rnaseq"])  # gene absent from the excerpt
    assert row.loc["TCGA-DJ-A2Q6", "TSPAN6_rnaseq"] == pytest.approx(
        math.log2(92548.07751878405 + 1)
    )
    # gene-level copy number (DJ-A2Q6) and segments mapped onto genes (EL-A3CT), as -2..2 calls
    assert (
        row.loc["TCGA-DJ-A2Q6", "OR4F5_cnv"] == 1
        and row.loc["TCGA-DJ-A2Q6", "ENSG00000000005_cnv"] == -2
    )
    assert np.isnan(row.loc["TCGA-DJ-A2Q6", "DDX11L1_cnv"])
    assert (
        row.loc["TCGA-EL-A3CT", "TIE35_cnv"] == 1
        and row.loc["TCGA-EL-A3CT", "ENSG00000000005_cnv"] == 1
    )
    assert np.isnan(row.loc["TCGA-EL-A3CT", "GAPGENE_cnv"])
    assert row["BRAF_mut"].tolist() == [1, 1] and row["CYP2C9_mut"].tolist() == [1, 0]
    ignored = set(table.attrs["ignored"])
    assert {"download_log.tsv", "README.txt", "f-z/big.svs.partial"} <= ignored
    assert any("cccc" in note and "not a wanted sample" in note for note in table.attrs["notes"])
    assert table.attrs["files"]["star"] == [
        "aaaa.rna_seq.augmented_star_gene_counts.tsv.gz",
        "bbbb.rna_seq.augmented_star_gene_counts.tsv",
        "cccc.rna_seq.augmented_star_gene_counts.tsv",
    ]


def test_genes_endpoint_and_sample_types(raw_dir: Path) -> None:
    genes = ["TSPAN6", "BRAF", "OR4F5", "NOPE"]
    table = table_from_raw_dir(raw_dir, genes=genes, endpoint="PFI")
    expected = [f"{g}_{kind}" for kind in ("rnaseq", "cnv", "mut") for g in genes]
    assert list(table.columns[4:]) == expected
    assert table["NOPE_mut"].tolist() == [0, 0] and table["NOPE_rnaseq"].isna().all()
    with_normals = table_from_raw_dir(raw_dir, genes=genes, sample_types=range(1, 20))
    assert any("cccc" in n and "already has sample" in n for n in with_normals.attrs["notes"])


def test_clinical_only_and_errors(shared_dir: Path, tmp_path: Path) -> None:
    only = tmp_path / "only"
    _link(shared_dir / "gdc" / "clinical" / "clinical_2020_format_LUSC.tsv", only / "clinical.tsv")
    table = table_from_raw_dir(only)
    assert len(table) == 132 and table.shape[1] == 4
    with pytest.raises(ValueError, match="DSS needs the TCGA-CDR"):
        table_from_raw_dir(only, endpoint="DSS")
    nameless = tmp_path / "nameless"
    _link(
        shared_dir / "gdc" / "clinical" / "clinical_2020_format_LUSC.tsv", nameless / "clinical.tsv"
    )
    _link(shared_dir / "gdc" / "rnaseq" / "star_counts_excerpt.tsv", nameless / "1234.star.tsv")
    with pytest.raises(ValueError, match=r"1234.star.tsv: cannot tell which sample"):
        table_from_raw_dir(nameless)
    barcoded = tmp_path / "barcoded"
    _link(
        shared_dir / "gdc" / "clinical" / "clinical_2020_format_LUSC.tsv", barcoded / "clinical.tsv"
    )
    _link(
        shared_dir / "gdc" / "rnaseq" / "star_counts_excerpt.tsv",
        barcoded / "TCGA-43-5670-01A.star.tsv",
    )
    one = table_from_raw_dir(barcoded)
    assert list(one.case_id) == ["TCGA-43-5670"] and one.shape[1] == 4 + 3
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no clinical file"):
        table_from_raw_dir(empty)


def test_classify_shared_examples(shared_dir: Path) -> None:
    gdc = shared_dir / "gdc"
    kinds = {p.name: classify(p) for p in sorted(gdc.glob("*/*")) if p.parent.name != "docs"}
    assert kinds["gdc_sample_sheet_2020.tsv"] == "sample_sheets"
    assert (
        kinds["gdc_manifest_2020.txt"]
        == kinds["gdc_manifest_coadread_dx_slides.txt"]
        == "manifests"
    )
    assert kinds["star_counts_fixture.augmented_star_gene_counts.tsv.gz"] == "star"
    assert kinds["legacy_tcga_laml_hg19.maf.gz"] == "maf"
    assert {k for n, k in kinds.items() if n.endswith(".seg.txt") or "Segment" in n} == {"segments"}
    assert {kinds[n] for n in kinds if "clinical" in n or "CDR" in n or "follow_up" in n} == {
        "clinical"
    }
    assert None not in kinds.values()
