"""Reading GDC text tables, plain or gzip-compressed (recognised by magic bytes, not name)."""

from __future__ import annotations

import gzip
import io
from pathlib import Path
from typing import IO

import pandas as pd

MISSING = frozenset(
    {
        "",
        "--",
        "'--",
        "NA",
        "N/A",
        "#N/A",
        "nan",
        "NaN",
        "None",
        "null",
        "not reported",
        "Not Reported",
        "unknown",
        "Unknown",
        "[Not Available]",
        "[Not Applicable]",
        "[Not Evaluated]",
        "[Unknown]",
        "[Discrepancy]",
        "[Completed]",
        "[Not Reported]",
    }
)


def is_gzip(path: Path) -> bool:
    with Path(path).open("rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def open_text(path: Path) -> IO[str]:
    """Open a text file, transparently un-gzipping it."""
    path = Path(path)
    if is_gzip(path):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="replace")
    return path.open(encoding="utf-8", errors="replace", newline="")


def head_lines(path: Path, n: int = 40) -> list[str]:
    """The first ``n`` lines (without newlines); [] for unreadable or binary files."""
    lines: list[str] = []
    try:
        with open_text(path) as fh:
            for line in fh:
                lines.append(line.rstrip("\r\n"))
                if len(lines) >= n:
                    break
    except (OSError, EOFError, UnicodeDecodeError, gzip.BadGzipFile):
        return []
    if any("\x00" in line for line in lines):
        return []
    return lines


def header_columns(path: Path) -> list[str]:
    """Tab-separated column names of the first line not starting with '#'."""
    for line in head_lines(path):
        if not line.startswith("#"):
            return line.split("\t")
    return []


def read_tsv(path: Path, *, comment_lines: bool = True) -> pd.DataFrame:
    """A TSV as strings (no NA conversion), skipping leading '#' lines when asked."""
    with open_text(path) as fh:
        lines = fh.read().splitlines()
    if comment_lines:
        while lines and lines[0].startswith("#"):
            lines.pop(0)
    if not lines:
        raise ValueError(f"{path}: no header line")
    return pd.read_csv(
        io.StringIO("\n".join(lines)), sep="\t", dtype=str, keep_default_na=False, quoting=3
    )


def require(table: pd.DataFrame, columns: list[str], path: Path, what: str) -> None:
    """ValueError naming the file and the missing column(s)."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: not a {what}: missing column(s) {missing}")


def to_number(values: pd.Series, where: str) -> pd.Series:
    """Strings -> floats; missing tokens ('--, [Not Available], #N/A ...) -> NaN.

    Anything else that is not a number raises ValueError naming ``where`` (file + column).
    """
    cleaned = values.astype(str).str.strip()
    cleaned = cleaned.where(~cleaned.isin(MISSING))
    numbers = pd.to_numeric(cleaned, errors="coerce")
    bad = cleaned.notna() & numbers.isna()
    if bad.any():
        raise ValueError(f"{where}: non-numeric value(s) {sorted(set(cleaned[bad]))[:5]}")
    return numbers
