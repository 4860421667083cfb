"""From a GDC project on the fake server to the assembled table: query, download, assemble.

The commands run in-process (``wsirisk gdc-query``, ``wsirisk download``, ``wsirisk
gdc-assemble``) against the fake GDC on 127.0.0.1 serving the fixture project of
``gdc_fixture`` (real HTTP; faults injected).  test_gdc_dag.py runs the same through Snakemake.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import pandas as pd
import pytest
from fake_gdc import FakeGDC
from gdc_fixture import (
    CDR_FILE_ID,
    DAYS,
    DEAD,
    PROJECT,
    Project,
    build_project,
    cdr_xlsx,
    expected_features,
)
from test_gdc_download import _write_manifest

from wsirisk.cli import main
from wsirisk.gdc import clinical
from wsirisk.gdc.build import Settings, assemble
from wsirisk.gdc.clinical import DAYS_PER_MONTH
from wsirisk.gdc.filemap import read_map
from wsirisk.gdc.manifest import read_manifest
from wsirisk.layout import Layout

REPO = Path(__file__).resolve().parents[1]
SIGNATURES = REPO / "resources" / "gene_categories.tsv"
KINDS = ("slides", "rna", "cnv", "mutations", "clinical")
A = {i: f"TCGA-ZZ-A{i:03d}" for i in range(1, 12)}
FEATURE = r"_(rnaseq|cnv|mut)$"


@pytest.fixture(scope="module")
def project() -> Project:
    return build_project()


def fetch(gdc: FakeGDC, layout: Layout, kind: str, *extra: str) -> None:
    """gdc-query + download of one kind, as the gdc_query / gdc_download rules run them."""
    query = [
        "gdc-query",
        "--kind",
        kind,
        "--endpoint",
        gdc.url,
        "--out-manifest",
        str(layout.gdc_manifest(kind)),
        "--out-map",
        str(layout.gdc_file_map(kind)),
        "--backoff",
        "0.01",
    ]
    if "--manifest" not in extra:
        query += ["--project", PROJECT]
    if kind == "clinical":
        query += ["--cdr-id", CDR_FILE_ID]
    assert main([*query, *extra]) == 0
    download = [
        "download",
        "--manifest",
        str(layout.gdc_manifest(kind)),
        "--out",
        str(layout.gdc_files_dir(kind)),
        "--log",
        str(layout.gdc_download_log(kind)),
        "--endpoint",
        gdc.url,
        "--retries",
        "2",
        "--backoff",
        "0.01",
        "--keep-going",
    ]
    assert main(download) == 0


def fetch_all(project: Project, root: Path) -> tuple[Layout, FakeGDC]:
    layout = Layout(root / "results", root / "data", "tcga_blca")
    with FakeGDC(project.files) as gdc:
        gdc.always[project.named("TCGA-ZZ-A007-01Z").file_id] = ("corrupt",)
        gdc.add_fault(project.named("TCGA-ZZ-A005-01Z").file_id, "drop", 50_000)
        gdc.add_fault(project.named("TCGA-ZZ-A001-01Z").file_id, "status", 500)
        for kind in KINDS:
            fetch(gdc, layout, kind)
    return layout, gdc


@pytest.fixture(scope="module")
def fetched(project: Project, tmp_path_factory: pytest.TempPathFactory) -> tuple[Layout, FakeGDC]:
    return fetch_all(project, tmp_path_factory.mktemp("gdc"))


@pytest.fixture(scope="module")
def assembled(fetched: tuple[Layout, FakeGDC]) -> Layout:
    layout, _ = fetched
    assemble(layout, SIGNATURES, Settings(project=PROJECT))
    return layout


def _qc(layout: Layout) -> pd.DataFrame:
    return pd.read_csv(layout.qc_assembly, sep="\t", dtype=str, keep_default_na=False)


def test_downloads_verified_and_faults_reported(
    project: Project, fetched: tuple[Layout, FakeGDC]
) -> None:
    layout, gdc = fetched
    slides = project.named("TCGA-ZZ-A005-01Z")
    # the truncated body was resumed with a Range request: every byte crossed once
    assert gdc.sent_bytes[slides.file_id] == len(slides.data)
    assert (slides.file_id, "bytes=50000-") in gdc.data_requests
    first = project.named("TCGA-ZZ-A001-01Z")  # 500, then success
    assert [r for f, r in gdc.data_requests if f == first.file_id] == [None, None]
    log = pd.read_csv(layout.gdc_download_log("slides"), sep="\t", keep_default_na=False)
    bad = log[log.status == "failed"]
    assert list(bad.file_name) == [project.named("TCGA-ZZ-A007-01Z").file_name]
    assert bad.attempts.tolist() == [3] and "md5 mismatch" in bad.error.iloc[0]
    assert not (layout.gdc_files_dir("slides") / bad.file_name.iloc[0]).exists()
    for f in project.files:  # every other file verified under its GDC name
        for kind in KINDS:
            path = layout.gdc_files_dir(kind) / f.file_name
            if path.exists():
                assert hashlib.md5(path.read_bytes()).hexdigest() == f.hit()["md5sum"]


def test_file_map_keeps_case_sample_aliquot(fetched: tuple[Layout, FakeGDC]) -> None:
    layout, _ = fetched
    cnv = read_map(layout.gdc_file_map("cnv"))
    one = cnv[cnv.case_id == A[1]]
    assert sorted(one.entity_id) == [f"{A[1]}-01A-11D-A00Y-01", f"{A[1]}-10A-01D-A00Y-01"]
    assert sorted(one.sample_type_code) == ["01", "10"] and set(one.workflow_type) == {"ASCAT3"}
    assert set(one.sample_id) == {f"{A[1]}-01A", f"{A[1]}-10A"}
    # the ASCAT2 file on the server is not the configured source: not even listed
    assert not cnv.file_name.str.contains("ascat2").any()
    clin = read_map(layout.gdc_file_map("clinical"))
    cdr = clin[clin.source == "cdr"]
    assert cdr.file_id.tolist() == [CDR_FILE_ID] and cdr.entity_type.tolist() == ["project"]
    # one folder per kind: nothing overwrites another query's map or manifest
    assert len({layout.gdc_file_map(k) for k in KINDS}) == len(KINDS)
    assert {e.file_id for e in read_manifest(layout.gdc_manifest("clinical"))} >= {CDR_FILE_ID}


def test_table_has_six_categories_with_expected_genes(assembled: Layout) -> None:
    table = pd.read_csv(assembled.gdc_omics_table)
    assert list(table.columns[:3]) == ["case_id", "survival_months", "censorship"]
    by_modality = {
        m: sorted(c.removesuffix("_" + m) for c in table.columns if c.endswith("_" + m))
        for m in ("rnaseq", "cnv", "mut")
    }
    assert by_modality == expected_features()
    # PIK3CA: only Silent calls; ARID1A, TSPAN6, KRT5: in no category; EGFR copy number:
    # no high-level call in 10% of patients
    for absent in ("PIK3CA_mut", "ARID1A_mut", "TSPAN6_rnaseq", "KRT5_cnv", "EGFR_cnv"):
        assert absent not in table.columns
    counts = pd.read_csv(assembled.gdc_features, sep="\t").set_index("category")
    expected = {  # category: (rnaseq, cnv, mut), from resources/gene_categories.tsv
        "Tumor Suppressor Genes": (4, 1, 2),  # TP53 PTEN CDKN2A GATA3 | CDKN2A | TP53 KDM6A
        "Oncogenes": (6, 2, 2),  # KRAS MYC EGFR CDK4 FGFR3 ERBB2 | MYC ERBB2 | KRAS FGFR3
        "Protein Kinases": (4, 1, 1),  # EGFR CDK4 FGFR3 ERBB2 | ERBB2 | FGFR3
        "Cell Differentiation Markers": (4, 1, 1),  # FGFR3 ERBB2 CD44 TGFB1 | ERBB2 | FGFR3
        "Transcription Factors": (4, 1, 1),  # TP53 MYC FOXA1 GATA3 | MYC | TP53
        "Cytokines and Growth Factors": (2, 0, 0),  # IL6 TGFB1
    }
    for category, (rna, cnv, mut) in expected.items():
        assert tuple(counts.loc[category, ["rnaseq", "cnv", "mut"]]) == (rna, cnv, mut)


def test_values_follow_the_stated_rules(project: Project, assembled: Layout) -> None:
    table = pd.read_csv(assembled.gdc_omics_table).set_index("case_id")
    # RNA = log2(TPM + 1) of the 01A file (A002 also has 01B and a normal 11A)
    samples = pd.read_csv(assembled.gdc_samples, sep="\t", keep_default_na=False)
    a2 = samples[(samples.case_id == A[2]) & (samples.modality == "rnaseq")].iloc[0]
    assert a2.entity_id.startswith(f"{A[2]}-01A") and "01B" in a2.others
    star = project.by_name[a2.file_name].data.decode().splitlines()
    tp53 = next(line.split("\t") for line in star if "\tTP53\t" in line)
    assert table.loc[A[2], "TP53_rnaseq"] == pytest.approx(math.log2(float(tp53[6]) + 1), abs=1e-4)
    assert table.loc[A[1], "CDKN2A_cnv"] == -2 and table.loc[A[2], "MYC_cnv"] == 2
    assert table.loc[A[1], "TP53_mut"] == 1 and table.loc[A[3], "TP53_mut"] == 0
    assert table.loc[A[5], "TP53_mut"] == 0  # its only TP53 call is in the 3'UTR
    # patients missing a modality are kept with NaN there (keep_missing_modality)
    assert table.loc[A[8]].filter(regex=FEATURE).isna().all()  # slides only
    assert table.loc[A[10]].filter(like="_rnaseq").isna().all()  # unreadable STAR file
    assert not table.loc[A[10]].filter(like="_cnv").isna().any()


def test_labels_from_cdr_with_clinical_fallback(assembled: Layout) -> None:
    labels = pd.read_csv(assembled.gdc_labels, sep="\t").set_index("case_id")
    assert sorted(labels.index) == [A[i] for i in range(1, 11)]
    assert labels.loc[A[6], "source"] == "clinical"  # not in the CDR: Biotab patient + follow-up
    assert (labels.drop(A[6]).source == "cdr").all()
    for i in range(1, 11):
        case = A[i]
        assert labels.loc[case, "survival_months"] == pytest.approx(DAYS[case] / DAYS_PER_MONTH)
        assert labels.loc[case, "censorship"] == int(not DEAD[case])
    table = pd.read_csv(assembled.gdc_omics_table).set_index("case_id")
    gap = table.survival_months - labels.loc[table.index, "survival_months"]
    assert gap.abs().max() < 1e-4


def test_qc_row_for_every_dropped_or_partial_patient(assembled: Layout) -> None:
    qc = _qc(assembled)
    rows = {(r.case_id, r.column, r.reason) for r in qc.itertuples()}
    assert (A[11], "label", "no_label") in rows and (
        A[11],
        "slides",
        "slides_without_label",
    ) in rows
    assert (A[7], "slides", "download_failed") in rows and (
        A[7],
        "slides",
        "omics_without_slide",
    ) in rows
    assert (A[9], "slides", "omics_without_slide") in rows
    assert (A[8], "slides", "slides_without_omics") in rows
    assert {(A[8], m, "missing_modality") for m in ("rnaseq", "cnv", "mut")} <= rows
    assert (A[10], "rnaseq", "unreadable_file") in rows and (
        A[10],
        "rnaseq",
        "missing_modality",
    ) in rows
    assert (A[1], "rnaseq", "several_cases") in rows and (A[3], "rnaseq", "several_cases") in rows
    assert (A[2], "rnaseq", "duplicate_sample") in rows
    assert (A[2], "rnaseq", "normal_sample_only") in rows
    assert ("", "label", "not_a_survival_table") in rows  # the Biotab drug table
    table = pd.read_csv(assembled.gdc_omics_table)
    partial = table.set_index("case_id").filter(regex=FEATURE).isna().any(axis=1)
    for case in partial[partial].index:  # every NaN patient is explained
        assert ((qc.case_id == case) & (qc.reason == "missing_modality")).any()
    dropped = set(qc.loc[qc.status == "dropped", "case_id"])
    assert dropped == {A[11]} and A[11] not in set(table.case_id)
    # the omics stage reads it: the same columns as qc/omics.tsv
    assert list(qc.columns) == ["case_id", "column", "status", "reason", "detail"]


def test_slide_sheet_all_dx_slides_of_each_patient(project: Project, assembled: Layout) -> None:
    sheet = pd.read_csv(assembled.gdc_sample_sheet, sep="\t")
    assert list(sheet.columns) == ["slide_id", "patient_id", "path"]
    assert sheet[sheet.patient_id == A[2]].slide_id.str.contains("-DX2.").sum() == 1
    assert len(sheet[sheet.patient_id == A[2]]) == 2
    assert A[7] not in set(sheet.patient_id) and A[9] not in set(sheet.patient_id)
    assert A[11] in set(sheet.patient_id)  # listed in QC (no label), the sheet is the inventory
    for row in sheet.itertuples():
        assert Path(row.path).is_file() and row.path.endswith(row.slide_id + ".svs")
        assert row.slide_id.startswith(row.patient_id + "-01Z-00-DX")


def test_drop_missing_modality_and_thresholds(
    fetched: tuple[Layout, FakeGDC], tmp_path: Path
) -> None:
    layout, _ = fetched
    out = Layout(tmp_path / "results", layout.data_dir, layout.cohort)
    settings = Settings(project=PROJECT, keep_missing_modality=False, min_mutation_frequency=0.2)
    summary = assemble(out, SIGNATURES, settings)
    table = pd.read_csv(out.gdc_omics_table)
    assert A[8] not in set(table.case_id) and A[10] not in set(table.case_id)
    qc = _qc(out)
    dropped = qc[qc.status == "dropped"]
    assert {A[8], A[10], A[11]} == set(dropped.case_id)
    assert dropped[dropped.case_id == A[10]].column.tolist() == ["rnaseq"]
    # of the 8 patients with a MAF left, FGFR3 and KDM6A are mutated in 1 (< 20%): dropped
    assert [c for c in table if c.endswith("_mut")] == ["KRAS_mut", "TP53_mut"]
    assert summary["features"]["mut"] == 2


def test_cdr_without_the_project_falls_back_to_clinical(tmp_path: Path) -> None:
    project = build_project(cdr_cases=[], slide_tiles=4)  # a CDR with only LUAD patients
    project.files = [f for f in project.files if not f.file_name.endswith(".svs")]
    layout = Layout(tmp_path / "results", tmp_path / "data", "tcga_blca")
    with FakeGDC(project.files) as gdc:
        for kind in ("rna", "cnv", "mutations", "clinical"):
            fetch(gdc, layout, kind)
    settings = Settings(project=PROJECT, kinds=("rna", "cnv", "mutations", "clinical"))
    summary = assemble(layout, SIGNATURES, settings)
    labels = pd.read_csv(layout.gdc_labels, sep="\t")
    assert set(labels.source) == {"clinical"} and len(labels) == 10
    qc = _qc(layout)
    warning = qc[qc.reason == "cdr_without_project"]
    assert len(warning) == 1 and "TCGA-BLCA" in warning.detail.iloc[0]
    assert summary["label_sources"] == {"clinical": 9}  # A008 has no omics and no slide kind
    assert ((qc.case_id == A[8]) & (qc.reason == "no_data")).any()


def test_user_manifest_with_sheet_and_id_lookup(project: Project, tmp_path: Path) -> None:
    """Manifests given by the user: mapping from the portal sample sheet, else /files by id."""
    star = [f for f in project.files if "star_gene_counts" in f.file_name]
    ascat = [f for f in project.files if "gene_level_copy_number" in f.file_name]
    stray = project.named("nationwidechildrens.org_clinical_drug")  # not an RNA file
    two = project.named("ffff0000-two-cases")

    sheet = [
        "File ID\tFile Name\tData Category\tData Type\tProject ID\tCase ID\tSample ID\tSample Type"
    ]
    for f in star[:3] + [two]:
        cases = ", ".join(c["submitter_id"] for c in f.meta["cases"])
        samples = ", ".join(s["submitter_id"] for c in f.meta["cases"] for s in c["samples"])
        kinds = ", ".join(s["sample_type"] for c in f.meta["cases"] for s in c["samples"])
        sheet.append(
            f"{f.file_id}\t{f.file_name}\tTranscriptome Profiling\tGene Expression Quantification\t{PROJECT}\t{cases}\t{samples}\t{kinds}"
        )
    (tmp_path / "sheet.tsv").write_text("\n".join(sheet) + "\n")
    layout = Layout(tmp_path / "results", tmp_path / "data", "c")
    with FakeGDC(project.files) as gdc:
        rna = _write_manifest(tmp_path / "rna.txt", star[:3] + [two, star[3]])
        fetch(
            gdc,
            layout,
            "rna",
            "--manifest",
            str(rna),
            "--sample-sheet",
            str(tmp_path / "sheet.tsv"),
        )
        rows = read_map(layout.gdc_file_map("rna"))
        # the two-case row of the sheet maps the file to both cases; the 5th file has no row
        assert sorted(rows[rows.file_id == two.file_id].case_id) == [A[1], A[3]]
        missing = rows[rows.file_id == star[3].file_id]
        assert "not listed by" in missing.problem.iloc[0]
        assert {e.file_id for e in read_manifest(layout.gdc_manifest("rna"))} == {
            f.file_id for f in star[:3] + [two]
        }
        # no sheet: /files lookup by id; a file of another data type is reported, not fetched
        cnv = _write_manifest(tmp_path / "cnv.txt", ascat + [stray])
        fetch(gdc, layout, "cnv", "--manifest", str(cnv))
        fetched_ids = {f for f, _ in gdc.data_requests}
    rows = read_map(layout.gdc_file_map("cnv"))
    problem = rows[rows.file_id == stray.file_id].problem.iloc[0]
    assert "unexpected data type 'Clinical Supplement' for kind cnv" in problem
    assert stray.file_id not in fetched_ids
    assert set(rows[rows.file_name.str.contains("ascat2")].workflow_type) == {"ASCAT2"}
    # the ASCAT2 file is downloaded (the user listed it) but never used: ASCAT3 is the source
    qc = Qc_of(layout, Settings(project=PROJECT, kinds=("rna", "cnv")))
    assert ((qc.case_id == A[3]) & (qc.reason == "other_cnv_source")).any()
    assert ((qc.reason == "file_problem") & qc.detail.str.contains("unexpected data type")).any()
    assert ((qc.case_id == A[1]) & (qc.reason == "several_cases")).any()


def Qc_of(layout: Layout, settings: Settings) -> pd.DataFrame:  # noqa: N802
    assemble(layout, SIGNATURES, settings)
    return _qc(layout)


def test_cdr_xlsx_and_tsv_read_alike(tmp_path: Path) -> None:
    cases = [A[1], A[2]]
    xlsx = tmp_path / "cdr.bin"  # recognised by content, not by name
    xlsx.write_bytes(cdr_xlsx(cases))
    assert clinical.detect_format(xlsx) == "cdr"
    table = clinical.read_table(xlsx)
    tsv = tmp_path / "cdr.tsv"
    table.to_csv(tsv, sep="\t", index=False)
    for path in (xlsx, tsv):
        got = clinical.read_cdr(path, project=PROJECT).set_index("case_id")
        assert sorted(got.index) == cases
        assert got.loc[A[2], "survival_months"] == pytest.approx(DAYS[A[2]] / DAYS_PER_MONTH)
        assert got.loc[A[1], "censorship"] == 0  # dead
    assert clinical.read_cdr(xlsx, project="TCGA-UCEC").empty
