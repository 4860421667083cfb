"""Read an MCAT/PORPOISE ``signatures.csv``: six category columns of gene symbols (ragged)."""

from __future__ import annotations

import csv
from pathlib import Path

from wsirisk.layout import CATEGORIES


def read_signatures(path: Path) -> dict[str, list[str]]:
    """Return ``{category: [gene, ...]}`` in ``layout.CATEGORIES`` order.

    Empty cells are skipped, symbols are stripped, repeats within a category are dropped
    (first occurrence kept).  A gene may belong to several categories (as in MCAT).
    Raises FileNotFoundError / ValueError naming the file and the missing columns.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"signatures file not found: {path}")
    with path.open(newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        raise ValueError(f"{path}: empty signatures file")
    header = [name.strip() for name in rows[0]]
    missing = [category for category in CATEGORIES if category not in header]
    if missing:
        raise ValueError(f"{path}: missing category column(s) {missing}; header is {header}")
    signatures: dict[str, list[str]] = {}
    for category in CATEGORIES:
        column = header.index(category)
        genes: list[str] = []
        seen: set[str] = set()
        for row in rows[1:]:
            symbol = row[column].strip() if column < len(row) else ""
            if symbol and symbol not in seen:
                seen.add(symbol)
                genes.append(symbol)
        if not genes:
            raise ValueError(f"{path}: category column {category!r} has no genes")
        signatures[category] = genes
    return signatures
