"""Read the six functional gene categories: our long table (``category<TAB>gene``, one row per
membership, as ``resources/gene_categories.tsv`` ships them) or an MCAT/PORPOISE
``signatures.csv`` (six category columns of gene symbols, ragged)."""

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
    if [c.strip() for c in rows[0][0].split("\t")] == ["category", "gene"]:
        rows = _columns_of_long_table(path, rows)
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


def _columns_of_long_table(path: Path, rows: list[list[str]]) -> list[list[str]]:
    """``category<TAB>gene`` rows as the column layout (header, then ragged rows)."""
    by_category: dict[str, list[str]] = {}
    for number, row in enumerate(rows[1:], start=2):
        cells = row[0].split("\t") if len(row) == 1 else []
        if len(cells) != 2:
            raise ValueError(f"{path}: line {number} is not 'category<TAB>gene': {row}")
        by_category.setdefault(cells[0].strip(), []).append(cells[1])
    header = list(by_category)
    depth = max((len(genes) for genes in by_category.values()), default=0)
    body = [[genes[i] if i < len(genes) else "" for genes in by_category.values()]
            for i in range(depth)]  # fmt: skip
    return [header, *body]
