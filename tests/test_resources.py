"""resources/: the public reference data a real run reads, and defaults that stay inside the repo."""

from __future__ import annotations

import csv
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from wsirisk.layout import CATEGORIES
from wsirisk.omics.signatures import read_signatures
from wsirisk.report.reference import load_reference, paper_row
from wsirisk.training.splits import read_split_dir

REPO = Path(__file__).resolve().parents[1]
RESOURCES = REPO / "resources"


def test_signatures_six_categories() -> None:
    signatures = read_signatures(RESOURCES / "gene_categories.tsv")
    sizes = [len(signatures[c]) for c in CATEGORIES]
    assert sizes == [82, 328, 513, 443, 1536, 452]  # CD markers: 452 cells, 9 repeats
    assert len({g for genes in signatures.values() for g in genes}) == 3047
    assert "TP53" in signatures["Tumor Suppressor Genes"] and "KRAS" in signatures["Oncogenes"]


def test_paper_table1_rows_and_report_layout() -> None:
    with (RESOURCES / "me_mamba_table1.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 145  # 29 method rows x 5 cohorts
    assert {r["cohort"] for r in rows} == {"BLCA", "BRCA", "UCEC", "GBMLGG", "LUAD"}
    assert {r["backbone"] for r in rows} == {"resnet50", "uni", "conch"}
    ours = {
        (r["backbone"], r["cohort"]): float(r["cindex_mean"])
        for r in rows
        if r["model"] == "ME-Mamba"
    }
    assert ours[("resnet50", "BLCA")] == 0.6993 and ours[("conch", "UCEC")] == 0.7596
    reference = load_reference(RESOURCES / "me_mamba_table1.csv")
    row = paper_row(reference, "me_mamba", "tcga_blca", "resnet50_trunc")
    assert row["cohort_column"] == "BLCA" and row["method"] == "ME-Mamba"
    assert (row["cindex_mean"], row["cindex_std"]) == (0.6993, 0.027)


@pytest.mark.parametrize(
    "cohort,n_patients", [("blca", 373), ("luad", 453), ("ucec", 480), ("coadread", 340)]
)
def test_splits_read_by_the_splits_stage(cohort: str, n_patients: int) -> None:
    table = RESOURCES / "splits" / f"tcga_{cohort}.tsv"
    with table.open(newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert {r["fold"] for r in rows} == {"0", "1", "2", "3", "4"}
    everyone = {r["case_id"] for r in rows}
    folds, dropped = read_split_dir(table, 5, everyone)
    assert len(everyone) == n_patients and dropped == [[]] * 5
    vals = [set(f["val"]) for f in folds]
    assert set().union(*vals) == everyone and sum(map(len, vals)) == n_patients  # a partition


def test_shipped_tables_hold_what_the_mcat_porpoise_files_hold(shared_dir: Path) -> None:
    """Our long tables read to the same categories and folds as the source files."""
    source = shared_dir / "tcga"
    if not (source / "signatures.csv").is_file():
        pytest.skip(f"{source} absent")
    assert read_signatures(RESOURCES / "gene_categories.tsv") == read_signatures(
        source / "signatures.csv"
    )
    for cohort in ("blca", "luad", "ucec", "coadread"):
        ours = RESOURCES / "splits" / f"tcga_{cohort}.tsv"
        everyone = {line.split("\t")[2].strip() for line in ours.read_text().splitlines()[1:]}
        theirs = read_split_dir(source / "splits" / f"tcga_{cohort}", 5, everyone)
        assert read_split_dir(ours, 5, everyone) == theirs, cohort


def test_bad_rows_of_our_tables_are_named(tmp_path: Path) -> None:
    splits = tmp_path / "folds.tsv"
    splits.write_text("fold\tpart\tcase_id\n0\ttrain\tA\n0\ttest\tB\n")
    with pytest.raises(ValueError, match=r"folds.tsv: line 3: .*part train or val"):
        read_split_dir(splits, 1, {"A", "B"})
    splits.write_text("fold\tpart\tcase_id\n0\ttrain\tA\n0\tval\tB\n")
    with pytest.raises(ValueError, match="no rows for fold 1"):
        read_split_dir(splits, 2, {"A", "B"})
    genes = tmp_path / "genes.tsv"
    genes.write_text("category\tgene\nOncogenes\tKRAS\nOncogenes\n")
    with pytest.raises(ValueError, match=r"genes.tsv: line 3 is not 'category<TAB>gene'"):
        read_signatures(genes)


def _strings(node: object) -> list[str]:
    if isinstance(node, dict):
        return [s for v in node.values() for s in _strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return [node] if isinstance(node, str) else []


def test_defaults_stay_inside_the_project() -> None:
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    for value in _strings(config):
        assert not value.startswith(("../", "/")) and "shared" not in value, value
    assert (REPO / config["report"]["reference_table"]).is_file()
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    defaults = re.findall(r"default: ([^,}\n]+)", yaml.safe_dump(schema))
    assert not [d for d in defaults if "shared" in d or d.strip().startswith("../")]
    found = subprocess.run(
        ["grep", "-rn", "--exclude-dir=*.egg-info", "shared/", "config.yaml", "workflow", "src"],
        cwd=REPO,
        capture_output=True,
        text=True,
    ).stdout
    assert found == "", found  # no default (nor any path) pointing at ../shared
