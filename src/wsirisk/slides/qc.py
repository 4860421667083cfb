"""`wsirisk qc-slides`: one TSV row per slide store (status, reason, tiles, resolution, tissue).

With ``--sheet-qc`` (qc/sheet.tsv from ``wsirisk sheet``) every rejected sheet row is added with
status ``rejected``, its reason code (``bad_row``, ``unsafe_id``, ``duplicate_id``,
``missing_file``) and a reason naming the sheet and line; they follow the stores' rows, in
sheet-line order.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from wsirisk.layout import ATTR_REASON, ATTR_STATUS
from wsirisk.store import open_group, write_text

QC_COLUMNS: tuple[str, ...] = (
    "slide_id",
    "patient_id",
    ATTR_STATUS,
    "reason_code",
    ATTR_REASON,
    "n_tiles",
    "mpp",
    "mpp_source",
    "target_mpp",
    "tile_size_px",
    "read_level",
    "read_size_px",
    "tile_size_level0",
    "tissue_area_mm2",
    "n_tissue_pieces",
    "n_holes",
    "level0_width",
    "level0_height",
    "mask_downsample",
    "vendor",
    "preset",
    "params_hash",
    "slide_path",
    "sheet",  # the sample sheet the slide came from and its line (with --sheet / --sheet-qc)
    "sheet_line",
)
_REQUIRED = ("slide_id", ATTR_STATUS)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list | dict):
        return json.dumps(value, sort_keys=True)
    return " ".join(str(value).split())  # no tabs or newlines inside a cell


def store_row(store: Path) -> dict[str, str]:
    """QC row of one slide store (error naming the store if it is missing or not a slide store)."""
    attrs = dict(open_group(Path(store)).attrs)
    missing = [key for key in _REQUIRED if key not in attrs]
    if missing:
        raise ValueError(f"{store}: not a slide store (attributes missing: {', '.join(missing)})")
    return {column: _cell(attrs.get(column)) for column in QC_COLUMNS}


def qc_table(stores: Iterable[Path]) -> list[dict[str, str]]:
    """Rows for ``stores``, sorted by slide_id; a slide_id seen twice is an error."""
    rows: dict[str, dict[str, str]] = {}
    for store in stores:
        row = store_row(Path(store))
        if row["slide_id"] in rows:
            raise ValueError(f"{store}: slide_id {row['slide_id']!r} appears in two stores")
        rows[row["slide_id"]] = row
    return [rows[key] for key in sorted(rows)]


def sheet_rows(path: Path) -> list[dict[str, str]]:
    """QC rows (status ``rejected``) of the rejected sheet rows in ``path`` (qc/sheet.tsv)."""
    from wsirisk.cohort.sheet import QC_COLUMNS as SHEET_QC_COLUMNS
    from wsirisk.cohort.sheet import read_tsv

    records = read_tsv(path, SHEET_QC_COLUMNS, "sheet QC table (--sheet-qc)")
    rows = []
    for record in records:
        row = dict.fromkeys(QC_COLUMNS, "")
        row.update(
            slide_id=_cell(record["slide_id"]),
            patient_id=_cell(record["patient_id"]),
            reason_code=_cell(record["reason_code"]),
            slide_path=_cell(record["path"]),
            sheet=_cell(record["sheet"]),
            sheet_line=_cell(record["line"]),
        )
        row[ATTR_STATUS] = "rejected"
        row[ATTR_REASON] = _cell(record["reason"])
        rows.append(row)
    return rows


def add_sheet_lines(rows: list[dict[str, str]], sheet: Path) -> None:
    """Fill ``sheet`` / ``sheet_line`` of the store rows from the validated sheet (L.sheet)."""
    from wsirisk.cohort.sheet import read_tsv

    where = {
        r["slide_id"]: (r["sheet"], r["line"])
        for r in read_tsv(sheet, ("slide_id", "sheet", "line"), "validated sheet (--sheet)")
    }
    for row in rows:
        if row["slide_id"] in where and not row["sheet"]:
            row["sheet"], row["sheet_line"] = where[row["slide_id"]]


def write_qc(rows: list[dict[str, str]], out: Path) -> None:
    """Write the rows as a tab-separated table (atomically)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(
        buffer, fieldnames=list(QC_COLUMNS), delimiter="\t", lineterminator="\n"
    )
    writer.writeheader()
    writer.writerows(rows)
    write_text(Path(out), buffer.getvalue())


def build_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("stores", nargs="*", type=Path, help="slide stores (.zarr)")
    parser.add_argument("--out", required=True, type=Path, help="qc/slides.tsv")
    parser.add_argument(
        "--sheet-qc", type=Path, help="rejected sheet rows (qc/sheet.tsv from `wsirisk sheet`)"
    )
    parser.add_argument(
        "--sheet", type=Path, help="the validated sheet (`wsirisk sheet --out`): sheet and line"
    )


def run(args: argparse.Namespace) -> int:
    try:
        rows = qc_table(args.stores)
        if args.sheet is not None:
            add_sheet_lines(rows, args.sheet)
        if args.sheet_qc is not None:
            rows += sheet_rows(args.sheet_qc)
    except (FileNotFoundError, ValueError) as exc:
        print(f"wsirisk qc-slides: error: {exc}", file=sys.stderr)
        return 1
    write_qc(rows, args.out)
    counts = Counter(row[ATTR_STATUS] for row in rows)
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    print(f"{len(rows)} slides ({summary}) -> {args.out}", file=sys.stderr)
    return 0
