"""``wsirisk extra``: per-patient vector tables -> extra.zarr (the open modality list).

    wsirisk extra --table radiology=tables/mri_embeddings.csv [--table clinical=...] \\
        --out results/<cohort>/extra.zarr [--qc results/<cohort>/qc/extra.tsv]

A table is a CSV (``.csv``, ``.csv.gz``, ``.csv.zip``) or TSV (``.tsv``) with a ``case_id``
column and numeric feature columns (one row per patient): e.g. a radiology foundation model's
embedding of each patient's scan, M4Survive's modality that has no source here. Values are
stored unscaled, NaN kept (scaling and imputation happen per training fold, like omics). A
patient whose row is entirely empty has no such modality (a QC row); a duplicated case_id, a
non-numeric column or a table without ``case_id`` stops the stage with a message naming the
file, row or column.

Store layout: root attrs ``format``, ``tables`` (names, in the order given); one group per
table with the float32 array ``values`` (P, F) and attrs ``patients``, ``columns``,
``source``.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from wsirisk.store import atomic_group, open_group, write_text

EXTRA_FORMAT = "wsirisk-extra/1"
EXTRA_VALUES = "values"
RESERVED = {"pathology", "genomics", "fusion"}
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
QC_HEADER = "table\tcase_id\tstatus\treason"


@dataclass
class ExtraTable:
    """One modality: ``values`` (P, F) float32 (NaN allowed), rows follow ``patients``."""

    name: str
    patients: list[str]
    columns: list[str]
    values: np.ndarray
    source: str = ""


def check_name(name: str) -> str:
    """A modality name usable as a zarr key and a model input name."""
    if not _NAME.match(name) or name in RESERVED:
        raise ValueError(
            f"extra modality name {name!r}: use letters, digits and '_' (starting with a "
            f"letter), not one of {sorted(RESERVED)}"
        )
    return name


def parse_table_arg(text: str) -> tuple[str, Path]:
    """``NAME=PATH`` -> (name, path)."""
    name, sep, path = text.partition("=")
    if not sep or not path:
        raise ValueError(f"--table {text!r}: expected NAME=PATH")
    return check_name(name.strip()), Path(path.strip())


def read_table(name: str, path: Path) -> tuple[ExtraTable, list[str]]:
    """Parse one table; returns it (patients with no value dropped) and its QC lines."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: extra table {name!r} not found")
    sep = "\t" if path.name.endswith((".tsv", ".tsv.gz")) else ","
    frame = pd.read_csv(path, sep=sep, dtype={"case_id": str})
    if "case_id" not in frame.columns:
        raise ValueError(f"{path}: no 'case_id' column (columns: {list(frame.columns)[:10]})")
    frame["case_id"] = frame["case_id"].str.strip()
    empty_id = frame.index[frame["case_id"].isna() | (frame["case_id"] == "")]
    if len(empty_id):
        raise ValueError(f"{path}: row {int(empty_id[0]) + 2} has no case_id")
    dup = frame["case_id"][frame["case_id"].duplicated()]
    if len(dup):
        raise ValueError(f"{path}: case_id {dup.iloc[0]!r} appears more than once")
    columns = [c for c in frame.columns if c != "case_id"]
    if not columns:
        raise ValueError(f"{path}: no feature column besides 'case_id'")
    values = np.empty((len(frame), len(columns)), dtype=np.float32)
    for j, col in enumerate(columns):
        parsed = pd.to_numeric(frame[col], errors="coerce")
        bad = parsed.isna() & frame[col].notna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise ValueError(
                f"{path}: column {col!r} row {row + 2} is not numeric ({frame[col].iloc[row]!r})"
            )
        values[:, j] = parsed.to_numpy(dtype=np.float64)
    values[~np.isfinite(values)] = np.nan
    has_value = np.isfinite(values).any(axis=1)
    cases = frame["case_id"].tolist()
    qc = [f"{name}\t{cases[i]}\tskipped\tno value in {path}" for i in np.flatnonzero(~has_value)]
    table = ExtraTable(
        name=name,
        patients=[c for c, ok in zip(cases, has_value, strict=True) if ok],
        columns=[str(c) for c in columns],
        values=values[has_value],
        source=str(path),
    )
    return table, qc


def build_extra(tables: dict[str, Path], out: Path, qc: Path | None = None) -> dict:
    """Read every table and write the store (and the QC file); returns a summary."""
    if not tables:
        raise ValueError("no extra table given (--table NAME=PATH)")
    parsed: list[ExtraTable] = []
    qc_lines: list[str] = []
    for name, path in tables.items():
        table, lines = read_table(check_name(name), path)
        parsed.append(table)
        qc_lines.extend(lines)
    with atomic_group(out, {"format": EXTRA_FORMAT, "tables": [t.name for t in parsed]}) as root:
        for table in parsed:
            group = root.create_group(table.name)
            group.attrs.update(
                {"patients": table.patients, "columns": table.columns, "source": table.source}
            )
            group.create_array(EXTRA_VALUES, data=table.values)
    if qc is not None:
        write_text(qc, "\n".join([QC_HEADER, *qc_lines]) + "\n")
    return {t.name: {"patients": len(t.patients), "features": len(t.columns)} for t in parsed} | {
        "qc_rows": len(qc_lines)
    }


def load_extra(path: Path) -> dict[str, ExtraTable]:
    """Read extra.zarr; errors name the path and the bad key."""
    path = Path(path)
    root = open_group(path)
    attrs = dict(root.attrs)
    if attrs.get("format") != EXTRA_FORMAT:
        raise ValueError(f"{path}: not an extra store (format {attrs.get('format')!r})")
    out: dict[str, ExtraTable] = {}
    for name in attrs.get("tables", []):
        if name not in root:
            raise ValueError(f"{path}: table group {name!r} missing")
        group = root[name]
        meta = dict(group.attrs)
        values = np.asarray(group[EXTRA_VALUES][...], dtype=np.float32)
        patients, columns = list(meta["patients"]), list(meta["columns"])
        if values.shape != (len(patients), len(columns)):
            raise ValueError(
                f"{path}: {name}/{EXTRA_VALUES} has shape {values.shape}, expected "
                f"({len(patients)}, {len(columns)})"
            )
        out[name] = ExtraTable(name, patients, columns, values, str(meta.get("source", "")))
    return out


def build_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--table",
        action="append",
        required=True,
        metavar="NAME=PATH",
        help="a per-patient table (case_id + numeric columns); repeat for several modalities",
    )
    parser.add_argument("--out", type=Path, required=True, help="extra.zarr to write")
    parser.add_argument("--qc", type=Path, help="TSV of patients skipped (empty rows)")


def run(args: argparse.Namespace) -> int:
    tables: dict[str, Path] = {}
    for text in args.table:
        name, path = parse_table_arg(text)
        if name in tables:
            raise ValueError(f"--table: modality {name!r} given twice")
        tables[name] = path
    summary = build_extra(tables, args.out, args.qc)
    print(f"extra modalities {summary} -> {args.out}", file=sys.stderr)
    return 0
