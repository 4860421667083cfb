"""``wsirisk gdc-query``: one data kind of a GDC project -> manifest + file map.

    wsirisk gdc-query --kind rna --project TCGA-BLCA --out-manifest M --out-map MAP
    wsirisk gdc-query --kind rna --manifest user_manifest.txt [--sample-sheet sheet.tsv] ...

Kinds and their ``/files`` criteria (``KIND_CRITERIA``)::

    slides     data_type "Slide Image", experimental_strategy "Diagnostic Slide" (--slides DX,
               the default), "Tissue Slide" (TS, BS, MS) or both (all)
    rna        data_type "Gene Expression Quantification", workflow_type "STAR - Counts"
    cnv        data_type "Gene Level Copy Number", workflow_type = --cnv-source (one source:
               ASCAT3, ASCAT2, "ABSOLUTE LiftOver", ...; never chosen by file order)
    mutations  data_type "Masked Somatic Mutation"
    clinical   data_category "Clinical", data_format "BCR Biotab", plus the TCGA-CDR table
               (a GDC publication file, --cdr-id; md5/size from ``/files`` or --cdr-md5/size)

With ``--manifest`` nothing is searched: the manifest's files are used as they are and their
case/sample mapping comes from ``--sample-sheet`` (the portal's sample sheet) or, without
one, from a ``/files`` lookup of their ids.  Files whose data type does not belong to the
kind, or whose name is unsafe, stay in the map with a ``problem`` and are left out of the
manifest (not downloaded).  Output: the manifest (``id filename md5 size state``) and the
map (``wsirisk.gdc.filemap``), both written atomically.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from wsirisk.gdc import api
from wsirisk.gdc.filemap import MAP_COLUMNS, hit_rows, sheet_rows, write_map
from wsirisk.gdc.manifest import FileEntry, read_manifest, write_manifest
from wsirisk.gdc.net import PermanentError, TransientError
from wsirisk.layout import check_id

KINDS = ("slides", "rna", "cnv", "mutations", "clinical")
SLIDE_STRATEGY = {"DX": ["Diagnostic Slide"], "TS": ["Tissue Slide"], "all": None}
DATA_TYPES = {  # data types each kind may hold (others are reported, never downloaded)
    "slides": {"Slide Image"},
    "rna": {"Gene Expression Quantification"},
    "cnv": {"Gene Level Copy Number"},
    "mutations": {"Masked Somatic Mutation"},
    "clinical": {"Clinical Supplement", "Clinical Data", "Clinical data"},
}
CDR_SOURCE = "cdr"
ID_CHUNK = 200  # file ids per /files lookup


def kind_criteria(kind: str, *, slides: str = "DX", cnv_source: str = "ASCAT3") -> dict[str, Any]:
    """``build_filters`` keyword arguments of one kind (see the module doc)."""
    if kind == "slides":
        if slides not in SLIDE_STRATEGY:
            raise ValueError(f"slides: use one of {sorted(SLIDE_STRATEGY)}, got {slides!r}")
        return {"data_type": "Slide Image", "experimental_strategy": SLIDE_STRATEGY[slides]}
    if kind == "rna":
        return {"data_type": "Gene Expression Quantification", "workflow_type": "STAR - Counts"}
    if kind == "cnv":
        if not cnv_source:
            raise ValueError("cnv: name one gene-level copy number source (e.g. ASCAT3)")
        return {"data_type": "Gene Level Copy Number", "workflow_type": cnv_source}
    if kind == "mutations":
        return {"data_type": "Masked Somatic Mutation"}
    if kind == "clinical":
        return {"data_category": "Clinical", "data_format": "BCR Biotab"}
    raise ValueError(f"unknown GDC kind {kind!r}: use one of {KINDS}")


def _check_row(row: dict[str, str], kind: str) -> dict[str, str]:
    """Add a problem when the file's data type or name does not fit the kind."""
    if row["problem"]:
        return row
    try:
        check_id(row["file_name"], "file name")
    except ValueError as exc:
        return {**row, "problem": str(exc)}
    known = row["source"] == CDR_SOURCE or not row["data_type"]  # sheets may omit the type
    if not known and row["data_type"] not in DATA_TYPES[kind]:
        return {
            **row,
            "problem": f"unexpected data type {row['data_type']!r} for kind {kind} "
            f"(expected {sorted(DATA_TYPES[kind])}); not downloaded",
        }
    return row


def entries_of(rows: list[dict[str, str]]) -> list[FileEntry]:
    """One manifest entry per file whose rows carry no problem (first row's md5/size)."""
    entries: dict[str, FileEntry] = {}
    bad = {r["file_id"] for r in rows if r["problem"]}
    for row in rows:
        if row["file_id"] in bad or row["file_id"] in entries:
            continue
        entries[row["file_id"]] = FileEntry(
            row["file_id"], row["file_name"], row["md5"], int(row["size_bytes"]), "released"
        )
    return list(entries.values())


def query_kind(args: argparse.Namespace, token: str | None) -> list[dict[str, str]]:
    """Map rows of one kind from a ``/files`` search of the project."""
    criteria = kind_criteria(args.kind, slides=args.slides, cnv_source=args.cnv_source)
    hits = _search(args, token, api.build_filters(project=args.project, **criteria))
    rows = [r for hit in hits for r in hit_rows(hit)]
    if args.kind == "clinical" and args.cdr_id:
        rows += cdr_rows(args, token)
    return rows


def cdr_rows(args: argparse.Namespace, token: str | None) -> list[dict[str, str]]:
    """The TCGA-CDR table's row: from ``/files`` by id, else from the pinned md5/size."""
    hits = _search(args, token, api.build_filters(file_ids=[args.cdr_id]))
    row = {c: "" for c in MAP_COLUMNS}
    if hits:
        row.update(hit_rows(hits[0])[0])
    elif args.cdr_md5 and args.cdr_size is not None:
        row.update(
            file_id=args.cdr_id,
            file_name=args.cdr_name,
            md5=args.cdr_md5.lower(),
            size_bytes=str(args.cdr_size),
            data_category="Clinical",
            data_type="Clinical Supplement",
            data_format="XLSX",
        )
    else:
        row.update(
            file_id=args.cdr_id,
            file_name=args.cdr_name,
            problem="TCGA-CDR not found by /files and no md5/size given: labels from the "
            "clinical files only",
        )
    row.update(entity_type="project", source=CDR_SOURCE)
    return [row]


def manifest_kind(args: argparse.Namespace, token: str | None) -> list[dict[str, str]]:
    """Map rows of a user manifest: sample sheet rows, else a ``/files`` lookup by id."""
    entries = read_manifest(args.manifest)
    by_id = {e.file_id: e for e in entries}
    if args.sample_sheet:
        found = [r for r in sheet_rows(args.sample_sheet) if r["file_id"] in by_id]
    else:
        ids = list(by_id)
        hits = []
        for start in range(0, len(ids), ID_CHUNK):
            chunk = ids[start : start + ID_CHUNK]
            hits += _search(args, token, api.build_filters(file_ids=chunk))
        found = [r for hit in hits for r in hit_rows(hit)]
    rows = []
    seen = set()
    for row in found:  # md5/size/name from the manifest: it is what gets downloaded
        entry = by_id[row["file_id"]]
        row = {**row, "file_name": entry.file_name, "md5": entry.md5}
        rows.append({**row, "size_bytes": str(entry.size_bytes)})
        seen.add(entry.file_id)
    where = args.sample_sheet or f"{args.endpoint} /files"
    for entry in entries:
        if entry.file_id not in seen:
            row = {c: "" for c in MAP_COLUMNS}
            row.update(
                file_id=entry.file_id,
                file_name=entry.file_name,
                md5=entry.md5,
                size_bytes=str(entry.size_bytes),
                source=str(args.manifest),
                problem=f"not listed by {where}: case and sample unknown; not downloaded",
            )
            rows.append(row)
    return rows


def _search(args: argparse.Namespace, token: str | None, filters: dict) -> list[dict[str, Any]]:
    return api.query_files(
        filters,
        endpoint=args.endpoint,
        page_size=args.page_size,
        timeout_s=args.timeout,
        retries=args.retries,
        backoff_s=args.backoff,
        token=token,
    )


def build_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kind", required=True, choices=KINDS)
    parser.add_argument("--project", help="GDC project, e.g. TCGA-BLCA (a /files search)")
    parser.add_argument("--manifest", type=Path, help="use this GDC manifest instead of a search")
    parser.add_argument("--sample-sheet", type=Path, help="portal sample sheet for --manifest")
    parser.add_argument("--out-manifest", type=Path, required=True)
    parser.add_argument("--out-map", type=Path, required=True)
    parser.add_argument("--endpoint", default=api.DEFAULT_ENDPOINT, help="GDC API base URL")
    parser.add_argument("--token-file", type=Path, help="GDC token (controlled-access files)")
    parser.add_argument("--slides", default="DX", choices=sorted(SLIDE_STRATEGY))
    parser.add_argument("--cnv-source", default="ASCAT3", help="gene-level CNV workflow_type")
    parser.add_argument("--cdr-id", help="GDC file id of the TCGA-CDR table (clinical kind)")
    parser.add_argument("--cdr-name", default="TCGA-CDR-SupplementalTableS1.xlsx")
    parser.add_argument("--cdr-md5", help="md5 of the CDR when /files does not list it")
    parser.add_argument("--cdr-size", type=int, help="size in bytes of the CDR (with --cdr-md5)")
    parser.add_argument("--page-size", type=int, default=500)
    parser.add_argument("--retries", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--backoff", type=float, default=1.0)


def run(args: argparse.Namespace) -> int:
    if bool(args.project) == bool(args.manifest):
        print("wsirisk gdc-query: give either --project or --manifest", file=sys.stderr)
        return 2
    if args.sample_sheet and not args.manifest:
        print("wsirisk gdc-query: --sample-sheet goes with --manifest", file=sys.stderr)
        return 2
    try:
        token = args.token_file.read_text().strip() if args.token_file else None
        if args.manifest:
            rows = manifest_kind(args, token)
        else:
            rows = query_kind(args, token)
        rows = [_check_row(r, args.kind) for r in rows]
        entries = entries_of(rows)
    except (ValueError, OSError, TransientError, PermanentError) as exc:
        hint = ""
        if isinstance(exc, TransientError | PermanentError):
            hint = (
                " (offline? give gdc.manifests.<kind> with gdc.sample_sheets.<kind>, "
                "and put the files in the kind's files/ folder)"
            )
        print(f"wsirisk gdc-query --kind {args.kind}: {exc}{hint}", file=sys.stderr)
        return 1
    write_map(args.out_map, rows)
    write_manifest(args.out_manifest, entries)
    problems = [r for r in rows if r["problem"]]
    for row in {r["file_id"]: r for r in problems}.values():
        print(
            f"{args.kind}: {row['file_name'] or row['file_id']}: {row['problem']}", file=sys.stderr
        )
    cases = {r["case_id"] for r in rows if r["case_id"]}
    total = sum(e.size_bytes for e in entries)
    print(
        f"{args.kind}: {len(entries)} files ({total / 1e9:.2f} GB) for {len(cases)} cases; "
        f"{len({r['file_id'] for r in problems})} with problems; manifest {args.out_manifest}"
    )
    return 0
