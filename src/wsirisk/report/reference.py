"""The paper's Table 1 beside our numbers: reading the reference table and matching our model,
cohort and encoder to its method, cohort column and backbone.

The table (``report.reference_table``, CSV) has the columns ``source, backbone, model,
modalities, cohort, cindex_mean, cindex_std`` (one row per method x backbone x cohort; the
ME-Mamba paper's Table 1 ships as ``resources/me_mamba_table1.csv``). Rows from other papers
(SurvMamba, AdaMHF, ...) can be appended in the same layout; they are matched by method name.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# our model name -> (paper method name, how close the match is, what differs)
PAPER_METHODS: dict[str, tuple[str, str, str]] = {
    "snn": ("SNN", "exact", ""),
    "abmil": ("ABMIL", "exact", ""),
    "abmil_snn": (
        "Porpoise",
        "approximate",
        "ours is ABMIL + SNN with concatenation fusion (PORPOISE's 'concat' option); the paper "
        "does not say which PORPOISE fusion it ran",
    ),
    "transmil": (
        "TransMIL",
        "approximate",
        "the paper's TransMIL is pathology-only; ours adds an SNN genomics branch (concat fusion)",
    ),
    "mcat": ("MCAT", "exact", ""),
    "me_mamba": ("ME-Mamba", "exact", ""),
    "survmamba": ("SurvMamba", "exact", ""),
    "adamhf": ("AdaMHF", "exact", ""),
    "m4survive": (
        "M4Survive",
        "approximate",
        "M4Survive's radiology input has no source here (see the model's docstring)",
    ),
}

# encoder name fragments -> the table's backbone key (paper: ResNet-50, UNI, CONCH)
_BACKBONES = (("resnet50", "resnet50"), ("uni", "uni"), ("conch", "conch"))
BACKBONE_LABELS = {"resnet50": "ResNet-50", "uni": "UNI", "conch": "CONCH"}


def _key(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(text).lower())


def backbone_of(encoder: str | None) -> str | None:
    """'resnet50_trunc' -> 'resnet50', 'hf-hub:MahmoodLab/UNI' -> 'uni'; None when unknown."""
    if not encoder:
        return None
    tokens = re.split(r"[^a-z0-9]+", str(encoder).lower())
    for fragment, backbone in _BACKBONES:
        if any(t == fragment or t.startswith(fragment) for t in tokens if t):
            return backbone
    return None


def cohort_code(cohort: str, known: list[str] | tuple[str, ...] = ()) -> str:
    """The table's cohort column for our cohort name: 'tcga_blca' -> 'BLCA'.

    A token of the name equal to a known column wins ('blca_real_slides' -> 'BLCA'); else the
    name without a leading 'TCGA' token, upper-cased.
    """
    tokens = [t for t in re.split(r"[^A-Za-z0-9]+", cohort.upper()) if t]
    for token in tokens:
        if token in {k.upper() for k in known}:
            return token
    if tokens and tokens[0] == "TCGA" and len(tokens) > 1:
        tokens = tokens[1:]
    return "_".join(tokens) or cohort.upper()


@dataclass
class Reference:
    """The reference table as read, and why it is empty when it is."""

    path: str | None
    status: str  # "ok" | "not_configured" | "missing" | "unreadable"
    rows: list[dict[str, str]] = field(default_factory=list)
    note: str | None = None

    @property
    def cohorts(self) -> list[str]:
        out: list[str] = []
        for row in self.rows:
            if row["cohort"] not in out:
                out.append(row["cohort"])
        return out

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "status": self.status, "note": self.note, "rows": len(self.rows)}


REQUIRED = ("backbone", "model", "modalities", "cohort", "cindex_mean", "cindex_std")


def load_reference(path: str | Path | None, base: Path | None = None) -> Reference:
    """Read the table; a missing or bad file gives an empty Reference with a note (not an error).

    A relative ``path`` is resolved against the working directory, then against ``base``.
    """
    if not path:
        return Reference(None, "not_configured", note="report.reference_table is not set")
    candidates = [Path(path)] + (
        [Path(base) / path] if base and not Path(path).is_absolute() else []
    )
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        return Reference(
            str(path),
            "missing",
            note=f"report.reference_table {path} does not resolve (looked in "
            + ", ".join(str(c.resolve()) for c in candidates)
            + "): the paper's numbers are not shown",
        )
    try:
        with open(found, newline="") as handle:
            rows = list(csv.DictReader(handle))
        missing = [c for c in REQUIRED if rows and c not in rows[0]]
        if missing or not rows:
            raise ValueError(f"columns {missing} missing" if missing else "no rows")
        for row in rows:
            float(row["cindex_mean"]), float(row["cindex_std"])
    except (OSError, ValueError, csv.Error) as err:
        return Reference(str(path), "unreadable", note=f"report.reference_table {path}: {err}")
    return Reference(str(path), "ok", rows)


def paper_method(model: str, reference: Reference) -> tuple[str | None, str, str]:
    """(paper method, match, note) for our model name; method None when the table lacks it."""
    if model in PAPER_METHODS:
        method, match, note = PAPER_METHODS[model]
    else:
        method, match, note = model, "by name", ""
    names = {_key(r["model"]): r["model"] for r in reference.rows}
    if _key(method) in names:
        return names[_key(method)], match, note
    return None, "none", f"no '{method}' row in the reference table"


def paper_row(
    reference: Reference,
    model: str,
    cohort: str,
    encoder: str | None,
    uses_pathology: bool = True,
) -> dict[str, Any]:
    """The reference row for our model, cohort and backbone (or the reason there is none).

    Models without pathology (SNN) match the row whatever the backbone (the paper lists them
    once, under ResNet-50).
    """
    column = cohort_code(cohort, reference.cohorts)
    backbone = backbone_of(encoder) if uses_pathology else None
    out: dict[str, Any] = {
        "cohort_column": column,
        "backbone": backbone,
        "method": None,
        "cindex_mean": None,
        "cindex_std": None,
        "match": "none",
        "note": reference.note,
    }
    if reference.status != "ok":
        return out
    method, match, note = paper_method(model, reference)
    out.update(method=method, match=match, note=note or None)
    if method is None:
        return out
    rows = [r for r in reference.rows if r["model"] == method and r["cohort"] == column]
    if not rows:
        out.update(match="none", note=f"no {method} row for cohort {column} in the table")
        return out
    if uses_pathology:
        if backbone is None:
            out.update(match="none", note=f"encoder {encoder!r} is none of the paper's backbones")
            return out
        rows = [r for r in rows if r["backbone"] == backbone]
        if not rows:
            label = BACKBONE_LABELS.get(backbone, backbone)
            out.update(match="none", note=f"no {method} row with backbone {label} in the table")
            return out
    row = rows[0]
    out.update(
        backbone=row["backbone"],
        cindex_mean=float(row["cindex_mean"]),
        cindex_std=float(row["cindex_std"]),
        modalities=row["modalities"],
        source=row.get("source"),
    )
    return out
