"""Two-level gene hierarchy (gene -> function -> process) for SurvMamba's genomic tokens.

A hierarchy file is a TSV with a header naming the columns ``gene``, ``function`` and
``process`` (any order, other columns ignored, ``#`` lines skipped). A gene may sit in several
functions; a function belongs to exactly one process (KEGG: pathway -> pathway class).

:func:`build_hierarchy` maps the model's genomic input (six category vectors whose feature names
are ``<GENE>_rnaseq``, ``<GENE>_cnv``, ``<GENE>_mut``) onto it:

- **No file** (``rows=None``, the default): each input category is a process and each gene of a
  category is a function holding that gene's features (rnaseq, cnv, mut) - the MCAT categories
  as processes, genes as functions. Without feature names each feature is its own function.
- **File**: a feature belongs to every function of its gene. A feature column is used once even
  when its gene appears in several categories (MCAT repeats such columns with equal values).
  Features of genes absent from the file are kept, not dropped: per input category they form one
  function ``unmapped:<category>`` in the process ``unmapped``; their count is reported in
  :attr:`GeneHierarchy.n_unmapped`. Functions and processes without any feature in this
  cohort are left out.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from wsirisk.layout import CATEGORIES

SUFFIXES = ("_rnaseq", "_cnv", "_mut")  # as wsirisk.omics.table.FEATURE_SUFFIXES
COLUMNS = ("gene", "function", "process")
UNMAPPED = "unmapped"


def gene_of(feature: str) -> str:
    """``"TP53_rnaseq"`` -> ``"TP53"``; a name without a known suffix is its own gene."""
    for suffix in SUFFIXES:
        if feature.endswith(suffix) and len(feature) > len(suffix):
            return feature[: -len(suffix)]
    return feature


def read_gene_hierarchy(path: str | Path) -> list[list[str]]:
    """Rows ``[gene, function, process]`` of a hierarchy TSV; errors name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"gene hierarchy file not found: {path}")
    rows: list[list[str]] = []
    header: list[str] | None = None
    process_of: dict[str, tuple[str, int]] = {}
    with path.open(newline="", encoding="utf-8") as handle:
        for line_no, row in enumerate(csv.reader(handle, delimiter="\t"), start=1):
            if not row or not "".join(row).strip() or row[0].startswith("#"):
                continue
            if header is None:
                header = [c.strip().lower() for c in row]
                missing = [c for c in COLUMNS if c not in header]
                if missing:
                    raise ValueError(f"{path}:{line_no}: header lacks column(s) {missing}")
                cols = [header.index(c) for c in COLUMNS]
                continue
            if len(row) <= max(cols):
                raise ValueError(f"{path}:{line_no}: expected {len(header)} columns, got {row}")
            gene, function, process = (row[c].strip() for c in cols)
            if not (gene and function and process):
                raise ValueError(f"{path}:{line_no}: empty gene, function or process: {row}")
            seen = process_of.setdefault(function, (process, line_no))
            if seen[0] != process:
                raise ValueError(
                    f"{path}:{line_no}: function {function!r} is in process {process!r} here "
                    f"but in {seen[0]!r} on line {seen[1]}; a function has one process"
                )
            rows.append([gene, function, process])
    if not rows:
        raise ValueError(f"{path}: no gene rows")
    return rows


@dataclass(frozen=True)
class GeneHierarchy:
    """Functions (grouped by process, in process order) and their input features.

    ``members`` lists ``(feature, function)`` pairs, ``feature`` an index into the six input
    vectors concatenated in ``CATEGORIES`` order. ``rows`` rebuilds the same hierarchy from the
    same feature names without the file (what a checkpoint stores).
    """

    processes: list[str]
    functions: list[str]
    function_process: list[int]
    members: list[tuple[int, int]]
    n_unmapped: int
    rows: list[list[str]]  # the hierarchy rows of the genes present, in file order ([] = none)


def build_hierarchy(
    omics_sizes: list[int],
    feature_names: list[list[str]] | None = None,
    rows: list[list[str]] | None = None,
) -> GeneHierarchy:
    """Resolve the genomic input onto functions and processes (see the module docstring)."""
    if feature_names is not None:
        if len(feature_names) != len(omics_sizes) or any(
            len(n) != s for n, s in zip(feature_names, omics_sizes, strict=True)
        ):
            got = [len(n) for n in feature_names]
            raise ValueError(f"feature_names sizes {got} do not match omics_sizes {omics_sizes}")
    categories = list(CATEGORIES) if len(omics_sizes) == len(CATEGORIES) else [
        f"group{g}" for g in range(len(omics_sizes))
    ]  # fmt: skip
    offsets = [sum(omics_sizes[:g]) for g in range(len(omics_sizes))]
    # (process, function) -> features, in order of first appearance
    groups: dict[tuple[str, str], list[int]] = {}
    n_unmapped = 0
    used_rows: list[list[str]] = []
    if rows is None:
        for g, (category, size) in enumerate(zip(categories, omics_sizes, strict=True)):
            for i in range(size):
                name = feature_names[g][i] if feature_names is not None else f"feature{i}"
                key = (category, f"{category}:{gene_of(name)}")
                groups.setdefault(key, []).append(offsets[g] + i)
    else:
        if feature_names is None:
            raise ValueError("a gene hierarchy file needs the genomic feature names")
        functions_of: dict[str, list[tuple[str, str]]] = {}
        for gene, function, process in rows:
            functions_of.setdefault(gene, []).append((process, function))
        present = {gene_of(n) for names in feature_names for n in names}
        used_rows = [list(r) for r in rows if r[0] in present]
        seen: set[str] = set()
        for g, category in enumerate(categories):
            for i, name in enumerate(feature_names[g]):
                if name in seen:
                    continue
                seen.add(name)
                targets = functions_of.get(gene_of(name))
                if not targets:
                    n_unmapped += 1
                    targets = [(UNMAPPED, f"{UNMAPPED}:{category}")]
                for key in dict.fromkeys(targets):
                    groups.setdefault(key, []).append(offsets[g] + i)
    processes = list(dict.fromkeys(p for p, _ in groups))
    if UNMAPPED in processes:  # the catch-all process goes last
        processes = [p for p in processes if p != UNMAPPED] + [UNMAPPED]
    functions: list[str] = []
    function_process: list[int] = []
    members: list[tuple[int, int]] = []
    for p, process in enumerate(processes):
        for (proc, function), feats in groups.items():
            if proc != process:
                continue
            k = len(functions)
            functions.append(function)
            function_process.append(p)
            members.extend((f, k) for f in feats)
    if not functions:
        raise ValueError("the genomic input has no features to build functions from")
    return GeneHierarchy(processes, functions, function_process, members, n_unmapped, used_rows)
