"""The provided TCGA split files against the PORPOISE tables (skips without ../shared)."""

from __future__ import annotations

from pathlib import Path

import pytest

from wsirisk.omics.table import read_table_file
from wsirisk.training.splits import read_split_dir


@pytest.mark.parametrize("cohort", ["blca", "luad", "ucec"])
def test_provided_splits_cover_the_table(shared_dir: Path, cohort: str) -> None:
    table = shared_dir / "tcga" / "porpoise_mutsig" / f"tcga_{cohort}_all_clean.csv.zip"
    cases = set(read_table_file(table)["case_id"])
    folds, dropped = read_split_dir(shared_dir / "tcga" / "splits" / f"tcga_{cohort}", 5, cases)
    assert dropped == [[]] * 5
    vals = [set(f["val"]) for f in folds]
    assert set().union(*vals) == cases and sum(map(len, vals)) == len(cases)
    for fold in folds:
        assert not set(fold["train"]) & set(fold["val"])
        assert set(fold["train"]) | set(fold["val"]) == cases
