"""``wsirisk omics``: cohort table + signatures -> omics.zarr (six categories) + qc/omics.tsv.

A category's features are the columns ``<GENE>_rnaseq``, ``<GENE>_cnv`` and ``<GENE>_mut``
present in the table for the category's genes, sorted by name (MCAT's order).  Values are
stored unscaled; NaN cells stay NaN (scaling and imputation happen per training fold).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from wsirisk.layout import (
    ATTR_STATUS,
    CATEGORIES,
    OMICS_CENSORSHIP,
    OMICS_GROUPS,
    OMICS_MONTHS,
    category_slug,
)
from wsirisk.omics.signatures import read_signatures
from wsirisk.omics.table import FEATURE_SUFFIXES, QC_COLUMNS, CohortTable, read_cohort_table
from wsirisk.store import atomic_group, write_text

MAX_LISTED_GENES = 50  # missing genes named in a QC row's detail (the count is always exact)


def category_features(columns: list[str], genes: list[str]) -> tuple[list[str], list[str]]:
    """(sorted feature columns of ``genes`` present in ``columns``, genes with no column)."""
    present = set(columns)
    features: list[str] = []
    missing: list[str] = []
    for gene in genes:
        found = [gene + suffix for suffix in FEATURE_SUFFIXES if gene + suffix in present]
        features.extend(found)
        if not found:
            missing.append(gene)
    return sorted(set(features)), missing


def group_features(
    table: CohortTable, signatures: dict[str, list[str]]
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Per category (name): feature columns and missing genes."""
    features: dict[str, list[str]] = {}
    missing: dict[str, list[str]] = {}
    for category in CATEGORIES:
        features[category], missing[category] = category_features(
            table.feature_columns, signatures[category]
        )
    return features, missing


def _category_qc(
    signatures: dict[str, list[str]],
    features: dict[str, list[str]],
    missing: dict[str, list[str]],
) -> list[dict]:
    rows = []
    for category in CATEGORIES:
        if missing[category]:
            names = ";".join(missing[category][:MAX_LISTED_GENES])
            more = len(missing[category]) - MAX_LISTED_GENES
            rows.append(
                {
                    "case_id": "",
                    "column": category,
                    "status": "info",
                    "reason": "missing_genes",
                    "detail": f"{len(missing[category])} of {len(signatures[category])} genes "
                    f"have no column: {names}" + (f";... (+{more})" if more > 0 else ""),
                }
            )
        if not features[category]:
            rows.append(
                {
                    "case_id": "",
                    "column": category,
                    "status": "warning",
                    "reason": "empty_category",
                    "detail": "no feature column for any gene of this category",
                }
            )
    return rows


def write_qc(path: Path, rows: pd.DataFrame) -> None:
    """Write the QC table as TSV atomically (header even when empty)."""
    write_text(Path(path), rows.to_csv(sep="\t", index=False, columns=list(QC_COLUMNS)))


def build_omics(table_path: Path, signatures_path: Path, out_path: Path, qc_path: Path) -> dict:
    """Build omics.zarr and the QC TSV; return a summary dict.

    Raises ValueError (after writing the QC table) when no patient survives QC.
    """
    signatures = read_signatures(signatures_path)
    table = read_cohort_table(table_path)
    features, missing = group_features(table, signatures)
    qc = pd.concat(
        [table.qc, pd.DataFrame(_category_qc(signatures, features, missing), columns=QC_COLUMNS)],
        ignore_index=True,
    )
    write_qc(qc_path, qc)
    patients = table.case_ids
    if not patients:
        raise ValueError(f"{table_path}: no patient left after QC (see {qc_path})")
    slugs = {category: category_slug(category) for category in CATEGORIES}
    nan_cells = {
        slugs[c]: int(table.patients[features[c]].isna().to_numpy().sum()) for c in CATEGORIES
    }
    attrs = {
        ATTR_STATUS: "ok",
        "patients": patients,
        "slides": {case: table.slides.get(case, []) for case in patients},
        "categories": list(CATEGORIES),
        "feature_names": {slugs[c]: features[c] for c in CATEGORIES},
        "missing_genes": {slugs[c]: len(missing[c]) for c in CATEGORIES},
        "nan_cells": nan_cells,
        "n_dropped": int((qc["status"] == "dropped").sum()),
        "source": str(table_path),
        "signatures": str(signatures_path),
    }
    n_patients = len(patients)
    with atomic_group(Path(out_path), attrs) as group:
        group.create_array(
            OMICS_MONTHS,
            data=table.patients["survival_months"].to_numpy(dtype=np.float32),
        )
        group.create_array(
            OMICS_CENSORSHIP, data=table.patients["censorship"].to_numpy(dtype=np.int8)
        )
        groups = group.require_group(OMICS_GROUPS)
        for category in CATEGORIES:
            values = table.patients[features[category]].to_numpy(dtype=np.float32)
            array = groups.create_array(
                slugs[category],
                shape=(n_patients, len(features[category])),
                dtype="float32",
                chunks=(n_patients, max(1, len(features[category]))),
                fill_value=np.nan,
            )
            array[:] = values.reshape(n_patients, len(features[category]))
    return {
        "patients": n_patients,
        "events": int((table.patients["censorship"] == 0).sum()),
        "dropped": attrs["n_dropped"],
        "category_sizes": {c: len(features[c]) for c in CATEGORIES},
        "nan_cells": nan_cells,
        "out": str(out_path),
    }


def build_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--table", type=Path, required=True, help="PORPOISE/MCAT CSV (.csv[.zip])")
    parser.add_argument("--signatures", type=Path, required=True, help="MCAT signatures.csv")
    parser.add_argument("--out", type=Path, required=True, help="output omics.zarr")
    parser.add_argument("--qc", type=Path, required=True, help="output QC TSV (qc/omics.tsv)")


def run(args: argparse.Namespace) -> int:
    try:
        summary = build_omics(args.table, args.signatures, args.out, args.qc)
    except (FileNotFoundError, ValueError) as exc:
        print(f"wsirisk omics: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary, sort_keys=True))
    return 0
