"""``wsirisk omics``: cohort table + signatures -> omics.zarr (six categories) + qc/omics.tsv.

A category's features are the columns ``<GENE>_rnaseq``, ``<GENE>_cnv`` and ``<GENE>_mut``
present in the table for the category's genes, sorted by name (MCAT's order).  Values are
stored unscaled; NaN cells stay NaN (scaling and imputation happen per training fold).

Nothing vanishes: every dropped, coerced or partial patient is a row of qc/omics.tsv (columns
case_id, column, status, reason, detail; see :mod:`wsirisk.omics.table` for the reasons).
Rules decided here:

- A patient whose six categories are entirely NaN is **kept as "omics absent"** (QC row
  ``kept`` / ``all_nan_omics``): its survival label stays, so models that use slides train on
  it; omics-only models skip it (the trainer's ``unusable``), and ``wsirisk cohort`` lists it
  as ``slides_only`` (or ``dropped`` when it has no usable slide either). Listed in the store
  attribute ``no_omics_patients``.
- NaN cells of the other patients are imputed per training fold with the fold's training mean;
  their count per patient and category is in the attribute ``nan_cells_by_patient``
  (``{case_id: {slug: n}}``, patients with none omitted), per category in ``nan_cells``, and
  in each patient's ``nan_features`` QC row.
- ``--upstream-qc FILE`` (repeatable; e.g. qc/assembly.tsv of the GDC assembly) copies the rows
  of an earlier stage's QC table with the same columns in front of this stage's rows.
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


def read_upstream_qc(path: Path) -> pd.DataFrame:
    """Rows of an earlier stage's QC table (same columns as qc/omics.tsv), as strings."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"upstream QC table not found: {path} (--upstream-qc)")
    try:
        frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: cannot read as a QC table ({exc})") from exc
    missing = [c for c in QC_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{path}: upstream QC table lacks column(s) {missing} (needs {list(QC_COLUMNS)})"
        )
    return frame[list(QC_COLUMNS)]


def nan_counts(
    table: CohortTable, features: dict[str, list[str]]
) -> tuple[dict[str, dict[str, int]], list[str]]:
    """NaN cells per patient and category slug (patients with some NaN), and the patients
    whose every category feature is NaN (omics absent)."""
    by_patient: dict[str, dict[str, int]] = {}
    absent: list[str] = []
    columns = sorted({name for c in CATEGORIES for name in features[c]})
    if not columns:
        return by_patient, absent
    all_nan = table.patients[columns].isna().all(axis=1)
    for case in table.case_ids:
        if all_nan.loc[case]:
            absent.append(case)
            continue
        counts = {
            category_slug(c): int(table.patients.loc[case, features[c]].isna().sum())
            for c in CATEGORIES
        }
        counts = {slug: n for slug, n in counts.items() if n}
        if counts:
            by_patient[case] = counts
    return by_patient, absent


def _patient_qc(
    qc: pd.DataFrame,
    table: CohortTable,
    by_patient: dict[str, dict[str, int]],
    absent: list[str],
    n_features: int,
) -> pd.DataFrame:
    """``nan_features`` rows with their per-category counts; ``all_nan_omics`` rows instead for
    patients without any category value."""
    qc = qc.copy()
    absent_set = set(absent)
    is_nan_row = qc["reason"] == "nan_features"
    qc = qc[~(is_nan_row & qc["case_id"].isin(absent_set))].reset_index(drop=True)
    for index in np.flatnonzero((qc["reason"] == "nan_features").to_numpy()):
        counts = by_patient.get(str(qc.at[index, "case_id"]), {})
        if counts:
            listed = ", ".join(f"{slug} {n}" for slug, n in counts.items())
            qc.at[index, "detail"] = (
                f"{qc.at[index, 'detail']}; in categories: {listed} (imputed per training fold "
                "with the training mean)"
            )
    rows = [
        {
            "case_id": case,
            "column": "",
            "status": "kept",
            "reason": "all_nan_omics",
            "detail": f"all {n_features} category feature(s) NaN: omics absent; kept for its "
            "survival label (models using slides train on it, omics-only models skip it)",
        }
        for case in absent
    ]
    return pd.concat([qc, pd.DataFrame(rows, columns=list(QC_COLUMNS))], ignore_index=True)


def build_omics(
    table_path: Path,
    signatures_path: Path,
    out_path: Path,
    qc_path: Path,
    upstream_qc: list[Path] | None = None,
) -> dict:
    """Build omics.zarr and the QC TSV; return a summary dict.

    Raises ValueError (after writing the QC table) when no patient survives QC.
    """
    upstream = [read_upstream_qc(path) for path in upstream_qc or []]
    signatures = read_signatures(signatures_path)
    table = read_cohort_table(table_path)
    features, missing = group_features(table, signatures)
    by_patient, absent = nan_counts(table, features)
    n_features = len({name for c in CATEGORIES for name in features[c]})
    qc = pd.concat(
        [
            *upstream,
            _patient_qc(table.qc, table, by_patient, absent, n_features),
            pd.DataFrame(_category_qc(signatures, features, missing), columns=QC_COLUMNS),
        ],
        ignore_index=True,
    )
    write_qc(qc_path, qc)
    patients = table.case_ids
    if not patients:
        raise ValueError(f"{table_path}: no patient left after QC (see {qc_path})")
    slugs = {category: category_slug(category) for category in CATEGORIES}
    present = table.patients.loc[[case not in set(absent) for case in patients]]
    nan_cells = {slugs[c]: int(present[features[c]].isna().to_numpy().sum()) for c in CATEGORIES}
    attrs = {
        ATTR_STATUS: "ok",
        "patients": patients,
        "slides": {case: table.slides.get(case, []) for case in patients},
        "categories": list(CATEGORIES),
        "feature_names": {slugs[c]: features[c] for c in CATEGORIES},
        "missing_genes": {slugs[c]: len(missing[c]) for c in CATEGORIES},
        "nan_cells": nan_cells,
        "nan_cells_by_patient": by_patient,
        "no_omics_patients": absent,
        "n_dropped": int((table.qc["status"] == "dropped").sum()),
        "upstream_qc": [str(path) for path in upstream_qc or []],
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
        "no_omics": len(absent),
        "out": str(out_path),
    }


def build_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--table", type=Path, required=True, help="PORPOISE/MCAT CSV (.csv[.zip])")
    parser.add_argument("--signatures", type=Path, required=True, help="MCAT signatures.csv")
    parser.add_argument("--out", type=Path, required=True, help="output omics.zarr")
    parser.add_argument("--qc", type=Path, required=True, help="output QC TSV (qc/omics.tsv)")
    parser.add_argument(
        "--upstream-qc",
        type=Path,
        action="append",
        default=[],
        help="QC TSV of an earlier stage with the same columns (e.g. qc/assembly.tsv); repeatable",
    )


def run(args: argparse.Namespace) -> int:
    try:
        summary = build_omics(args.table, args.signatures, args.out, args.qc, args.upstream_qc)
    except (FileNotFoundError, ValueError) as exc:
        print(f"wsirisk omics: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary, sort_keys=True))
    return 0
