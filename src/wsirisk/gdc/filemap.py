"""Which case, sample and aliquot each GDC file belongs to: the per-kind ``file_map.tsv``.

One row per (file, entity).  The entity is what the GDC attached the file to: an aliquot
(STAR counts; copy number and MAFs list the tumour and the normal aliquot), a slide, or a case
(clinical).  Rows come from the ``/files`` response (``associated_entities`` and
``cases.samples``) or from a portal sample sheet, whose cells may list several cases or samples
(``"TCGA-A, TCGA-B"``); a row that cannot be zipped case-by-sample is kept per case with the
``problem`` column saying why, never dropped.

Columns (``MAP_COLUMNS``): file_id, file_name, md5, size_bytes, data_category, data_type,
data_format, workflow_type, experimental_strategy, access, project_id, case_id (12-character
barcode), sample_id (``TCGA-XX-XXXX-01A``), sample_type (text), sample_type_code (01..99, empty
when unknown), entity_id (aliquot / slide barcode), entity_type, source (``api`` or
``<sheet>:<line>``), problem.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from wsirisk.gdc.barcodes import parse_barcode, split_cell
from wsirisk.store import write_text

MAP_COLUMNS = (
    "file_id",
    "file_name",
    "md5",
    "size_bytes",
    "data_category",
    "data_type",
    "data_format",
    "workflow_type",
    "experimental_strategy",
    "access",
    "project_id",
    "case_id",
    "sample_id",
    "sample_type",
    "sample_type_code",
    "entity_id",
    "entity_type",
    "source",
    "problem",
)


def _barcode_parts(entity: str) -> tuple[str, str, str]:
    """(case_id, sample_id, sample_type_code) of a TCGA barcode; empty strings if not one."""
    try:
        code = parse_barcode(entity)
    except ValueError:
        return "", "", ""
    sample = code.sample_id or ""
    type_code = f"{code.sample_type:02d}" if code.sample_type is not None else ""
    return code.case_id, sample, type_code


def hit_rows(hit: dict[str, Any]) -> list[dict[str, str]]:
    """Map rows of one ``/files`` hit (see the module doc)."""
    base = {
        "file_id": str(hit.get("file_id") or hit.get("id") or ""),
        "file_name": str(hit.get("file_name", "")),
        "md5": str(hit.get("md5sum", "")).lower(),
        "size_bytes": str(hit.get("file_size", "")),
        "data_category": str(hit.get("data_category", "")),
        "data_type": str(hit.get("data_type", "")),
        "data_format": str(hit.get("data_format", "")),
        "workflow_type": str((hit.get("analysis") or {}).get("workflow_type", "")),
        "experimental_strategy": str(hit.get("experimental_strategy", "")),
        "access": str(hit.get("access", "")),
        "source": "api",
        "problem": "",
    }
    cases = hit.get("cases") or []
    by_uuid = {c.get("case_id"): c for c in cases if c.get("case_id")}
    sample_types = {
        s.get("submitter_id", ""): s.get("sample_type", "")
        for c in cases
        for s in c.get("samples") or []
    }
    projects = sorted({(c.get("project") or {}).get("project_id", "") for c in cases} - {""})
    base["project_id"] = ",".join(projects)
    rows = []
    for entity in hit.get("associated_entities") or []:
        entity_id = str(entity.get("entity_submitter_id", ""))
        case_id, sample_id, type_code = _barcode_parts(entity_id)
        owner = by_uuid.get(entity.get("case_id"), {})
        case_id = case_id or str(owner.get("submitter_id", ""))
        rows.append(
            {
                **base,
                "case_id": case_id,
                "sample_id": sample_id,
                "sample_type": sample_types.get(sample_id, ""),
                "sample_type_code": type_code,
                "entity_id": entity_id,
                "entity_type": str(entity.get("entity_type", "")),
            }
        )
    if not rows:  # no associated entities: one row per case (clinical), per sample if listed
        for case in cases:
            case_id = str(case.get("submitter_id", ""))
            samples = case.get("samples") or [{}]
            for sample in samples:
                sample_id = str(sample.get("submitter_id", ""))
                rows.append(
                    {
                        **base,
                        "case_id": case_id,
                        "sample_id": sample_id,
                        "sample_type": str(sample.get("sample_type", "")),
                        "sample_type_code": _barcode_parts(sample_id)[2] if sample_id else "",
                        "entity_id": sample_id or case_id,
                        "entity_type": "sample" if sample_id else "case",
                    }
                )
    if not rows:
        rows.append({**base, "entity_type": "project"})
    return [{c: row.get(c, "") for c in MAP_COLUMNS} for row in rows]


def sheet_rows(path: Path) -> list[dict[str, str]]:
    """Map rows of a GDC portal sample sheet (no md5/size: those come from the manifest)."""
    path = Path(path)
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    missing = [c for c in ("File ID", "File Name", "Case ID", "Sample ID") if c not in table]
    if missing:
        raise ValueError(f"{path}: sample sheet lacks column(s) {missing}")
    rows: list[dict[str, str]] = []
    for line, rec in enumerate(table.to_dict("records"), start=2):
        base = {c: "" for c in MAP_COLUMNS}
        base.update(
            file_id=rec["File ID"].strip(),
            file_name=rec["File Name"].strip(),
            data_category=rec.get("Data Category", "").strip(),
            data_type=rec.get("Data Type", "").strip(),
            project_id=rec.get("Project ID", "").strip(),
            source=f"{path}:{line}",
        )
        cases = split_cell(rec["Case ID"])
        samples = split_cell(rec["Sample ID"])
        types = split_cell(rec.get("Sample Type", ""))
        for case, sample, kind, problem in _zip_cells(cases, samples, types):
            case_id, sample_id, type_code = _barcode_parts(sample or case)
            rows.append(
                {
                    **base,
                    "case_id": case_id or case,
                    "sample_id": sample_id or sample,
                    "sample_type": kind,
                    "sample_type_code": type_code,
                    "entity_id": sample or case,
                    "entity_type": "sample" if sample else "case",
                    "problem": problem,
                }
            )
        if not cases and not samples:
            rows.append({**base, "entity_type": "project", "problem": "no Case ID"})
    return rows


def _zip_cells(
    cases: list[str], samples: list[str], types: list[str]
) -> Iterable[tuple[str, str, str, str]]:
    """(case, sample, sample type, problem) from a sheet row's possibly multi-valued cells."""
    if not samples:  # case-level rows (clinical Biotab lists every case of the project)
        return [(case, "", "", "") for case in cases]
    if len(cases) == 1:
        cases = cases * len(samples)
    if len(types) <= 1:
        types = (types or [""]) * len(samples)
    if len(cases) == len(samples) == len(types):
        return list(zip(cases, samples, types, [""] * len(samples), strict=True))
    problem = f"Case ID/Sample ID/Sample Type list {len(cases)}/{len(samples)}/{len(types)} values"
    return [(case, "", "", problem) for case in dict.fromkeys(cases)]


def write_map(path: Path, rows: list[dict[str, str]]) -> None:
    """Write map rows as TSV (atomically; header even when empty)."""
    frame = pd.DataFrame(rows, columns=list(MAP_COLUMNS)).fillna("")
    write_text(Path(path), frame.to_csv(sep="\t", index=False))


def read_map(path: Path) -> pd.DataFrame:
    """A file map as strings; ValueError naming the file and missing columns."""
    path = Path(path)
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    missing = [c for c in MAP_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: not a file map: missing column(s) {missing}")
    return table
