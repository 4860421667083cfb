"""``wsirisk sheet``: validate a slide sample sheet; bad rows become QC rows, the rest go on.

Input: a plain tab-separated file (no quoting) with a header holding ``slide_id``, ``patient_id``, ``path`` and optionally
``mpp_override`` (other columns are ignored). Line numbers are 1-based with the header on line
1; blank lines are skipped. Each row is checked in this order and the first problem rejects it
(reason codes of qc/sheet.tsv):

- ``bad_row``: wrong number of fields, an empty slide_id / patient_id / path, or an
  ``mpp_override`` that is not a positive number;
- ``unsafe_id``: a slide_id or patient_id that is not a safe file name
  (:func:`wsirisk.layout.check_id`, e.g. ``../x``);
- ``duplicate_id``: a slide_id already claimed by an earlier row with a well-formed, safe id
  (the earlier row keeps it, even when that row is then rejected for its file);
- ``missing_file``: ``path`` is not an existing file. Relative paths are relative to the
  working directory (where Snakemake runs) and are written as given.

Output (``--out``): the kept rows in slide_id order with columns slide_id, patient_id, path,
mpp_override, sheet, line, batch, where ``batch = rank in slide_id order // slides_per_job``
(one extraction job per batch). ``--qc`` lists the rejected rows (sheet, line, slide_id,
patient_id, path, reason_code, reason). A sheet with no usable row is not an error here: both
files are written (the output with its header only) and a warning is printed; ``wsirisk
cohort`` then reports the empty slide side. A sheet that cannot be read at all, or whose header
lacks a required column, is an error naming the file and the columns.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from wsirisk.layout import check_id
from wsirisk.store import write_text

REQUIRED = ("slide_id", "patient_id", "path")
OPTIONAL = ("mpp_override",)
SHEET_COLUMNS = ("slide_id", "patient_id", "path", "mpp_override", "sheet", "line", "batch")
QC_COLUMNS = ("sheet", "line", "slide_id", "patient_id", "path", "reason_code", "reason")
REASON_CODES = ("bad_row", "unsafe_id", "duplicate_id", "missing_file")


@dataclass
class SheetResult:
    """Kept rows (slide_id order, with batch) and rejected rows (line order)."""

    kept: list[dict[str, str]]
    rejected: list[dict[str, str]]


def _rows(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header and ``(line, fields)`` of every non-blank row; errors name the file."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise FileNotFoundError(f"sample sheet not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: cannot read the sample sheet ({exc})") from exc
    rows: list[tuple[int, list[str]]] = []
    header: list[str] | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if header is None:
            header = [name.strip() for name in line.split("\t")]
            continue
        if line.strip():
            rows.append((number, line.split("\t")))
    if header is None:
        raise ValueError(f"{path}: empty sample sheet (no header line)")
    missing = [name for name in REQUIRED if name not in header]
    if missing:
        raise ValueError(
            f"{path}: sample sheet lacks required column(s) {missing} (tab-separated header "
            f"line 1 is {header}; required: {list(REQUIRED)}, optional: {list(OPTIONAL)})"
        )
    repeated = sorted(name for name, n in Counter(header).items() if n > 1 and name)
    if repeated:
        raise ValueError(f"{path}: column(s) {repeated} appear twice in the header")
    return header, rows


def _mpp_problem(value: str) -> str | None:
    if not value:
        return None
    try:
        mpp = float(value)
    except ValueError:
        return f"mpp_override {value!r} is not a number"
    if not (math.isfinite(mpp) and mpp > 0):
        return f"mpp_override {value!r} is not a positive number"
    return None


def validate_sheet(path: Path, slides_per_job: int = 16) -> SheetResult:
    """Check every row of the sheet at ``path`` (see the module docstring)."""
    if slides_per_job < 1:
        raise ValueError(f"--slides-per-job must be >= 1, got {slides_per_job}")
    path = Path(path)
    header, rows = _rows(path)
    col = {name: header.index(name) for name in (*REQUIRED, *OPTIONAL) if name in header}
    claimed: dict[str, int] = {}  # slide_id -> line of the row that claimed it
    kept: list[dict[str, str]] = []
    rejected: list[dict[str, str]] = []
    for line, fields in rows:
        cells = [field.strip() for field in fields]
        record = {name: (cells[i] if i < len(cells) else "") for name, i in col.items() if name}
        record.setdefault("mpp_override", "")

        def reject(code: str, why: str, record: dict[str, str] = record, line: int = line) -> None:
            rejected.append(
                {
                    "sheet": str(path),
                    "line": str(line),
                    "slide_id": record["slide_id"],
                    "patient_id": record["patient_id"],
                    "path": record["path"],
                    "reason_code": code,
                    "reason": f"{path} line {line}: {why}",
                }
            )

        if len(cells) != len(header):
            reject(
                "bad_row",
                f"{len(cells)} tab-separated field(s), the header has {len(header)} "
                "(one field per column, empty ones included)",
            )
            continue
        empty = [name for name in REQUIRED if not record[name]]
        if empty:
            reject("bad_row", f"empty {', '.join(empty)}")
            continue
        mpp = _mpp_problem(record["mpp_override"])
        if mpp:
            reject("bad_row", mpp)
            continue
        try:
            check_id(record["slide_id"], "slide_id")
            check_id(record["patient_id"], "patient_id")
        except ValueError as exc:
            reject("unsafe_id", str(exc))
            continue
        first = claimed.get(record["slide_id"])
        if first is not None:
            reject("duplicate_id", f"slide_id {record['slide_id']!r} already on line {first}")
            continue
        claimed[record["slide_id"]] = line
        if not Path(record["path"]).is_file():
            where = "" if Path(record["path"]).is_absolute() else f" (cwd {Path.cwd()})"
            reject("missing_file", f"slide file {record['path']!r} not found{where}")
            continue
        kept.append({**record, "sheet": str(path), "line": str(line)})
    kept.sort(key=lambda r: r["slide_id"])
    for rank, record in enumerate(kept):
        record["batch"] = str(rank // slides_per_job)
    return SheetResult(kept, rejected)


def tsv_text(rows: Iterable[dict[str, str]], columns: tuple[str, ...]) -> str:
    """A tab-separated table with a header (extra keys of the rows ignored)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(
        buffer, fieldnames=list(columns), delimiter="\t", lineterminator="\n", extrasaction="ignore"
    )
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def read_tsv(path: Path, required: tuple[str, ...], what: str) -> list[dict[str, str]]:
    """Rows of a tab-separated table; errors name the file and the missing columns."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t")
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: not a {what} (columns {missing} missing)")
        return list(reader)


def read_validated_sheet(path: Path) -> list[dict[str, str]]:
    """Rows of a sheet written by ``wsirisk sheet``."""
    return read_tsv(path, SHEET_COLUMNS, "validated sheet")


def build_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sheet", type=Path, required=True, help="input sample sheet (TSV)")
    parser.add_argument("--out", type=Path, required=True, help="validated sheet (TSV)")
    parser.add_argument("--qc", type=Path, required=True, help="rejected rows (TSV)")
    parser.add_argument(
        "--slides-per-job", type=int, default=16, help="slides per extraction batch (default 16)"
    )


def run(args: argparse.Namespace) -> int:
    try:
        result = validate_sheet(args.sheet, args.slides_per_job)
    except (FileNotFoundError, ValueError) as exc:
        print(f"wsirisk sheet: error: {exc}", file=sys.stderr)
        return 1
    write_text(args.qc, tsv_text(result.rejected, QC_COLUMNS))
    write_text(args.out, tsv_text(result.kept, SHEET_COLUMNS))
    for row in result.rejected:
        print(f"wsirisk sheet: rejected ({row['reason_code']}) {row['reason']}", file=sys.stderr)
    n_batches = len({r["batch"] for r in result.kept})
    print(
        f"wsirisk sheet: {args.sheet}: {len(result.kept)} slide(s) kept in {n_batches} batch(es), "
        f"{len(result.rejected)} row(s) rejected -> {args.out}, {args.qc}",
        file=sys.stderr,
    )
    if not result.kept:
        print(
            f"wsirisk sheet: WARNING: {args.sheet} has no usable slide row; the cohort has no "
            "slides (see wsirisk cohort)",
            file=sys.stderr,
        )
    return 0
