"""GDC manifests (``id filename md5 size state``) and portal sample sheets.

A manifest is what the GDC portal's "Manifest" button (or ``/files?return_type=manifest``)
writes: tab-separated, header ``id filename md5 size state``.  A sample sheet is the portal's
"Sample Sheet" TSV (``File ID, File Name, Data Category, Data Type, Project ID, Case ID,
Sample ID, Sample Type``); for multi-sample files (MAF, tumour/normal pairs) the case,
sample and type cells list several values separated by ``", "``.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from wsirisk.layout import check_id
from wsirisk.store import write_text

MANIFEST_COLUMNS = ("id", "filename", "md5", "size", "state")
SAMPLE_SHEET_COLUMNS = (
    "File ID",
    "File Name",
    "Data Category",
    "Data Type",
    "Project ID",
    "Case ID",
    "Sample ID",
    "Sample Type",
)
_MD5 = re.compile(r"^[0-9a-fA-F]{32}$")


@dataclass(frozen=True)
class FileEntry:
    """One file to fetch: GDC UUID, safe local name, expected md5 and size in bytes."""

    file_id: str
    file_name: str
    md5: str
    size_bytes: int
    state: str = ""


def read_manifest(path: Path) -> list[FileEntry]:
    """Read a GDC manifest; ValueError naming file, line and column on bad or unsafe values."""
    path = Path(path)
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh, delimiter="\t"))
    if not rows:
        raise ValueError(f"{path}: empty manifest")
    header = [c.strip() for c in rows[0]]
    missing = [c for c in MANIFEST_COLUMNS[:4] if c not in header]
    if missing:
        raise ValueError(f"{path}: manifest lacks column(s) {missing} (header {header})")
    col = {name: header.index(name) for name in header}
    entries: list[FileEntry] = []
    seen: set[str] = set()
    for line_no, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) < len(header):
            raise ValueError(f"{path}:{line_no}: {len(row)} fields, header has {len(header)}")
        cell = {name: row[i].strip() for name, i in col.items()}
        entries.append(_entry(cell, f"{path}:{line_no}"))
        if entries[-1].file_id in seen:
            raise ValueError(f"{path}:{line_no}: duplicate id {entries[-1].file_id}")
        seen.add(entries[-1].file_id)
    return entries


def _entry(cell: dict[str, str], where: str) -> FileEntry:
    try:
        file_id = check_id(cell["id"], "file id")
        file_name = check_id(cell["filename"], "filename")
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    if not _MD5.match(cell["md5"]):
        raise ValueError(f"{where}: column md5: not an md5 hex digest: {cell['md5']!r}")
    try:
        size = int(cell["size"])
    except ValueError:
        raise ValueError(f"{where}: column size: not an integer: {cell['size']!r}") from None
    if size < 0:
        raise ValueError(f"{where}: column size: negative size {size}")
    return FileEntry(file_id, file_name, cell["md5"].lower(), size, cell.get("state", ""))


def write_manifest(path: Path, entries: list[FileEntry]) -> None:
    """Write entries as a GDC manifest (atomically)."""
    lines = ["\t".join(MANIFEST_COLUMNS)]
    lines += [f"{e.file_id}\t{e.file_name}\t{e.md5}\t{e.size_bytes}\t{e.state}" for e in entries]
    write_text(path, "\n".join(lines) + "\n")


def is_sample_sheet(path: Path) -> bool:
    """True when the file's header starts with the sample sheet's ``File ID\\tFile Name``."""
    try:
        with Path(path).open(newline="") as fh:
            first = fh.readline()
    except (OSError, UnicodeDecodeError):
        return False
    return first.startswith("File ID\tFile Name\t")


def read_sample_sheet(path: Path) -> pd.DataFrame:
    """One row per (file, sample): multi-sample cells are split and zipped.

    Columns: file_id, file_name, data_category, data_type, project_id, case_id, sample_id,
    sample_type.  Cells listing several samples (``"TCGA-A-01A, TCGA-A-10A"``) give one row each;
    a single case id cell applies to all of them; a row listing cases but no sample (clinical
    Biotab files) gives one row per case.  Cells that cannot be zipped raise ValueError naming
    the file and line (``wsirisk.gdc.filemap.sheet_rows`` keeps them, with a ``problem``).
    """
    from wsirisk.gdc.filemap import sheet_rows

    rows = sheet_rows(path)
    bad = [row for row in rows if row["problem"]]
    if bad:
        raise ValueError(f"{bad[0]['source']}: {bad[0]['problem']}; expected equal counts")
    columns = [
        "file_id",
        "file_name",
        "data_category",
        "data_type",
        "project_id",
        "case_id",
        "sample_id",
        "sample_type",
    ]
    return pd.DataFrame(rows, columns=[*columns, "problem"])[columns]


def write_sample_sheet(path: Path, rows: list[dict[str, str]]) -> None:
    """Write a portal-style sample sheet from dicts keyed by SAMPLE_SHEET_COLUMNS (atomically)."""
    lines = ["\t".join(SAMPLE_SHEET_COLUMNS)]
    for row in rows:
        lines.append(
            "\t".join(str(row.get(c, "")).replace("\t", " ") for c in SAMPLE_SHEET_COLUMNS)
        )
    write_text(path, "\n".join(lines) + "\n")
