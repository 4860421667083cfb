"""`wsirisk paper-table`: several cohorts' results in the paper's layout (methods x cohorts,
C-index mean ± std over folds), our rows under the paper's rows for the same method and backbone.

    wsirisk paper-table results/tcga_blca results/tcga_luad --out table.md
    wsirisk paper-table results --out table.csv --reference resources/me_mamba_table1.csv

Each argument is a cohort folder (``results/<cohort>``, holding ``report/*/summary.json``) or a
results folder holding cohort folders. ``.md`` writes a Markdown table, ``.csv`` the same table
with a ``source`` column (paper / ours).
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
import sys
from pathlib import Path
from typing import Any

from wsirisk.report.cohort_page import find_summaries
from wsirisk.report.html import mean_std
from wsirisk.report.reference import (
    BACKBONE_LABELS,
    Reference,
    load_reference,
    paper_row,
)
from wsirisk.store import write_text

log = logging.getLogger("wsirisk.report")
DEFAULT_REFERENCE = "resources/me_mamba_table1.csv"


def cohort_dirs(paths: list[Path]) -> list[Path]:
    """Cohort folders named directly or found one level below a results folder."""
    found: list[Path] = []
    for path in paths:
        path = Path(path)
        if (path / "report").is_dir():
            found.append(path)
            continue
        children = sorted(p for p in path.glob("*") if (p / "report").is_dir())
        if not children:
            raise FileNotFoundError(
                f"{path}: neither a cohort folder (report/) nor a results folder"
            )
        found += children
    return list(dict.fromkeys(found))


def gather(paths: list[Path]) -> list[dict[str, Any]]:
    """Every per-model summary of the given cohort folders."""
    out = []
    for cohort_dir in cohort_dirs(paths):
        summaries = find_summaries(cohort_dir / "report")
        if not summaries:
            log.warning("%s: no report/*/summary.json", cohort_dir)
        out += list(summaries.values())
    return out


def build_table(
    summaries: list[dict[str, Any]], ref: Reference, all_backbones: bool = False
) -> tuple[list[str], list[dict[str, Any]]]:
    """(cohort columns, rows); a row: {"source", "label", "modalities", cells by column}."""
    ours: dict[tuple[str, str | None], dict[str, Any]] = {}
    anchors: dict[tuple[str, str | None], tuple[str, str] | None] = {}
    columns = list(ref.cohorts)
    for s in summaries:
        uses_path = "pathology" in s["modalities"]
        paper = paper_row(ref, s["model"], s["cohort"], s["encoder"], uses_path)
        column = paper["cohort_column"]
        if column not in columns:
            columns.append(column)
        key = (s["model"], s["encoder"] if uses_path else None)
        row = ours.setdefault(
            key,
            {
                "source": "ours",
                "label": f"ours: {s['model']}" + (f" ({key[1]})" if key[1] else ""),
                "modalities": "+".join(s["modalities"]),
                "cells": {},
            },
        )
        if column in row["cells"]:
            log.warning("%s: two reports for %s on %s; keeping the first", key, s["model"], column)
            continue
        row["cells"][column] = mean_std(s["cindex_mean"], s["cindex_std"])
        if paper["method"] and anchors.get(key) is None:
            anchors[key] = (paper["method"], paper["backbone"] or "resnet50")
    shown = {a[1] for a in anchors.values() if a} or {r["backbone"] for r in ref.rows}
    methods: dict[tuple[str, str], dict[str, Any]] = {}
    for r in ref.rows:
        if not all_backbones and r["backbone"] not in shown:
            continue
        label = f"{r['model']} ({BACKBONE_LABELS.get(r['backbone'], r['backbone'])})"
        entry = methods.setdefault(
            (r["model"], r["backbone"]),
            {"source": "paper", "label": label, "modalities": r["modalities"], "cells": {}},
        )
        entry["cells"][r["cohort"]] = mean_std(float(r["cindex_mean"]), float(r["cindex_std"]))
    rows: list[dict[str, Any]] = []
    placed = set()
    for key, entry in methods.items():
        rows.append(entry)
        for our_key, anchor in anchors.items():
            if anchor == key:
                rows.append(ours[our_key])
                placed.add(our_key)
    rows += [row for key, row in ours.items() if key not in placed]
    return columns, rows


def to_markdown(columns: list[str], rows: list[dict[str, Any]], ref: Reference) -> str:
    lines = []
    if ref.status != "ok":
        lines += [f"> **Paper's table not shown**: {ref.note}", ""]
    header = ["method (backbone)", "modalities", *columns]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join(["---"] * 2 + ["---:"] * len(columns)) + "|")
    for row in rows:
        label = f"**{row['label']}**" if row["source"] == "ours" else row["label"]
        cells = [row["cells"].get(c, "") for c in columns]
        lines.append("| " + " | ".join([label, row["modalities"], *cells]) + " |")
    lines += [
        "",
        "C-index mean ± std over folds (ours: last epoch, Harrell's C per validation fold). "
        "Paper rows: " + (ref.path or "none") + ".",
    ]
    return "\n".join(lines) + "\n"


def to_csv(columns: list[str], rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["source", "method", "modalities", *columns])
    for row in rows:
        writer.writerow(
            [row["source"], row["label"], row["modalities"]]
            + [row["cells"].get(c, "") for c in columns]
        )
    return buffer.getvalue()


def build_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", type=Path, nargs="+", help="cohort or results folders")
    parser.add_argument("--out", type=Path, required=True, help="table.md or table.csv")
    parser.add_argument(
        "--reference",
        default=DEFAULT_REFERENCE,
        help=f"the paper's table (default {DEFAULT_REFERENCE})",
    )
    parser.add_argument(
        "--all-backbones", action="store_true", help="paper rows of every backbone, not only ours"
    )


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.out.suffix not in {".md", ".csv"}:
        raise ValueError(f"--out {args.out}: use a .md or .csv file name")
    ref = load_reference(args.reference)
    if ref.status != "ok":
        log.warning("%s", ref.note)
    summaries = gather(args.results)
    columns, rows = build_table(summaries, ref, args.all_backbones)
    markdown = to_markdown(columns, rows, ref)
    write_text(args.out, markdown if args.out.suffix == ".md" else to_csv(columns, rows))
    sys.stdout.write(markdown)
    print(f"{len(summaries)} report(s) -> {args.out}", file=sys.stderr)
    return 0
