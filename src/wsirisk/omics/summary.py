"""``wsirisk omics-summary SOURCE --signatures FILE``: one JSON line describing a cohort.

SOURCE is a PORPOISE/MCAT table (.csv, .csv.zip, .tsv) or a directory of raw GDC files
(assembled by ``wsirisk.gdc.assemble.table_from_raw_dir``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from wsirisk.layout import CATEGORIES
from wsirisk.omics.build import group_features
from wsirisk.omics.signatures import read_signatures
from wsirisk.omics.table import CohortTable, clean_table, read_cohort_table


def _table_from_raw_dir(path: Path) -> CohortTable:
    try:
        from wsirisk.gdc.assemble import table_from_raw_dir
    except ImportError as exc:
        raise RuntimeError(
            f"{path} is a directory of raw GDC files, but wsirisk.gdc.assemble."
            f"table_from_raw_dir is not available ({exc})"
        ) from exc
    table = table_from_raw_dir(path)
    if isinstance(table, CohortTable):
        return table
    if isinstance(table, pd.DataFrame):
        return clean_table(table, source=str(path))
    return read_cohort_table(Path(table))


def load_source(path: Path) -> CohortTable:
    """A cohort table file, or a raw GDC directory assembled into one."""
    path = Path(path)
    if path.is_dir():
        return _table_from_raw_dir(path)
    return read_cohort_table(path)


def summarize(path: Path, signatures_path: Path) -> dict:
    """patients, events, censored and category_sizes (category name -> number of features)."""
    table = load_source(path)
    features, _ = group_features(table, read_signatures(signatures_path))
    censorship = table.patients["censorship"]
    return {
        "patients": len(table.patients),
        "events": int((censorship == 0).sum()),
        "censored": int((censorship == 1).sum()),
        "category_sizes": {category: len(features[category]) for category in CATEGORIES},
    }


def build_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", type=Path, help="cohort table or raw GDC directory")
    parser.add_argument("--signatures", type=Path, required=True, help="MCAT signatures.csv")


def run(args: argparse.Namespace) -> int:
    try:
        summary = summarize(args.source, args.signatures)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"wsirisk omics-summary: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary))
    return 0
