"""TCGA barcodes, manifests with slides and GDC sample sheets."""

from __future__ import annotations

from pathlib import Path

import pytest

from wsirisk.gdc.barcodes import (
    case_id,
    keep_sample,
    parse_barcode,
    parse_sample_types,
    slide_id_from_filename,
    slides_by_case,
    split_cell,
)
from wsirisk.gdc.manifest import read_manifest, read_sample_sheet


@pytest.mark.parametrize(
    ("text", "level", "case", "sample_type"),
    [
        ("TCGA-02-0001", "case", "TCGA-02-0001", None),
        ("TCGA-02-0001-01", "sample", "TCGA-02-0001", 1),
        ("TCGA-02-0001-11A", "sample", "TCGA-02-0001", 11),
        ("TCGA-02-0001-01C-01", "portion", "TCGA-02-0001", 1),
        ("TCGA-02-0001-01C-01D", "analyte", "TCGA-02-0001", 1),
        ("TCGA-DJ-A2Q6-01A-11D-A18F-08", "aliquot", "TCGA-DJ-A2Q6", 1),
        ("TCGA-02-0001-01C-01-TS1", "slide", "TCGA-02-0001", 1),
        (
            "TCGA-DM-A28K-01Z-00-DX1.766edac4-a5c8-45ef-aff6-73e308c1f442.svs",
            "slide",
            "TCGA-DM-A28K",
            1,
        ),
        ("tcga-dj-a2q6-10a", "sample", "TCGA-DJ-A2Q6", 10),
    ],
)
def test_parse_levels(text: str, level: str, case: str, sample_type: int | None) -> None:
    code = parse_barcode(text)
    assert (code.level, code.case_id, code.sample_type) == (level, case, sample_type)


def test_tumour_types_and_sample_ids() -> None:
    assert parse_barcode("TCGA-DJ-A2Q6-01A-11D-A18F-08").sample_id == "TCGA-DJ-A2Q6-01A"
    assert parse_barcode("TCGA-DJ-A2Q6-01A").is_tumour is True
    assert parse_barcode("TCGA-DJ-A2Q6-10A").is_tumour is False
    assert parse_barcode("TCGA-DJ-A2Q6").is_tumour is None
    assert keep_sample("TCGA-DJ-A2Q6-06A") and not keep_sample("TCGA-DJ-A2Q6-11A")
    assert keep_sample("TCGA-DJ-A2Q6-11A", parse_sample_types("01-09,11"))
    assert keep_sample("TCGA-DJ-A2Q6")  # case-level: type unknown, kept
    assert case_id("TCGA-EL-A3CT-01A-12D-A202-08") == "TCGA-EL-A3CT"
    assert parse_sample_types("01-03, 06") == frozenset({1, 2, 3, 6})
    for bad in ("x", "09-01", ""):
        with pytest.raises(ValueError, match="sample type"):
            parse_sample_types(bad)
    for bad in ("not-a-barcode", "TCGA-02", "../TCGA-02-0001"):
        with pytest.raises(ValueError, match="not a TCGA barcode"):
            parse_barcode(bad)


def test_split_cell() -> None:
    assert split_cell("TCGA-A-01A, TCGA-A-10A") == ["TCGA-A-01A", "TCGA-A-10A"]
    assert split_cell("") == [] and split_cell(None) == [] and split_cell("one") == ["one"]


def test_slides_several_per_case(shared_dir: Path) -> None:
    slides = read_manifest(shared_dir / "gdc" / "manifest" / "gdc_manifest_coadread_dx_slides.txt")
    by_case = slides_by_case(e.file_name for e in slides)
    assert len(by_case) == 252 and sum(map(len, by_case.values())) == 258
    multi = {c: s for c, s in by_case.items() if len(s) > 1}
    assert len(multi) == 5
    assert all(parse_barcode(s).slide.startswith("DX") for ss in by_case.values() for s in ss)
    name = "TCGA-T9-A92H-01Z-00-DX3.1DE7D5ED-60F7-4645-8243-AB0C027B3ED7.svs"
    assert slide_id_from_filename(name) == name[:-4]
    assert slide_id_from_filename(name) in by_case["TCGA-T9-A92H"]


def test_sample_sheet_2020(shared_dir: Path) -> None:
    sheet = read_sample_sheet(shared_dir / "gdc" / "manifest" / "gdc_sample_sheet_2020.tsv")
    assert len(sheet) == 149 and sheet.file_id.is_unique
    assert sheet.case_id.nunique() == 135
    tumour = sheet[sheet.sample_id.map(keep_sample)]
    assert len(tumour) == 100 and set(tumour.sample_type) == {"Primary Tumor"}
    assert set(sheet.sample_type) == {"Primary Tumor", "Solid Tissue Normal"}
    manifest = read_manifest(shared_dir / "gdc" / "manifest" / "gdc_manifest_2020.txt")
    assert {e.file_id for e in manifest} == set(sheet.file_id)


def test_sample_sheet_multi_sample_cells(tmp_path: Path) -> None:
    sheet = tmp_path / "gdc_sample_sheet.tsv"
    sheet.write_text(
        "File ID\tFile Name\tData Category\tData Type\tProject ID\tCase ID\tSample ID\tSample Type\n"
        "f1\ta.maf.gz\tSimple Nucleotide Variation\tMasked Somatic Mutation\tTCGA-THCA\t"
        "TCGA-DJ-A2Q6, TCGA-DJ-A2Q6\tTCGA-DJ-A2Q6-01A, TCGA-DJ-A2Q6-10A\t"
        "Primary Tumor, Blood Derived Normal\n"
        "f2\tb.tsv\tTranscriptome Profiling\tGene Expression Quantification\tTCGA-THCA\t"
        "TCGA-EL-A3CT\tTCGA-EL-A3CT-01A\tPrimary Tumor\n"
    )
    table = read_sample_sheet(sheet)
    assert list(table.sample_id) == ["TCGA-DJ-A2Q6-01A", "TCGA-DJ-A2Q6-10A", "TCGA-EL-A3CT-01A"]
    assert list(table.sample_type) == ["Primary Tumor", "Blood Derived Normal", "Primary Tumor"]
    assert list(table.file_id) == ["f1", "f1", "f2"]
    bad = tmp_path / "bad.tsv"
    bad.write_text(
        "File ID\tFile Name\tCase ID\tSample ID\tSample Type\n"
        "f1\ta\tTCGA-A, TCGA-B, TCGA-C\tS1, S2\tPrimary Tumor\n"
    )
    with pytest.raises(ValueError, match=r"bad.tsv:2.*Case ID"):
        read_sample_sheet(bad)
