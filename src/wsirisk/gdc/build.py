"""``wsirisk gdc-assemble``: a GDC project's downloaded files -> omics table, labels, slide sheet.

Reads, per kind, ``data/<cohort>/gdc/<kind>/`` (file_map.tsv, download_log.tsv, files/) and
writes under ``results/<cohort>/gdc/`` (paths: ``wsirisk.layout``)::

    omics_table.csv   PORPOISE layout: case_id, survival_months, censorship, <GENE>_rnaseq,
                      <GENE>_cnv, <GENE>_mut (the input of ``wsirisk omics``)
    labels.tsv        case_id, survival_months, censorship, endpoint, source, source_file
    sample_sheet.tsv  slide_id, patient_id, path (relative to the working directory)
    samples.tsv       the sample/aliquot and file each patient's modality came from + the others
    features.tsv      feature counts per functional category and modality
    assembly.json     counts and the settings below
and ``results/<cohort>/qc/assembly.tsv`` (the columns of qc/omics.tsv: case_id, column, status,
reason, detail), one row per dropped or partial patient and per file problem.

Rules:

- Labels: the TCGA-CDR table (``OS``/``OS.time``; any of OS/DSS/DFI/PFI) for the project's
  patients (CDR column ``type``); patients the CDR lacks (or gives no time for) get overall
  survival computed from the clinical files (Biotab patient + follow-up, portal clinical.tsv;
  see ``wsirisk.gdc.clinical``), recorded as ``source=clinical``.  Days / 30.4375 = months.
- One sample per patient and modality: tumour samples (types 01-09) only; the primary tumour
  (01) first, then the TCGA barcode order of the aliquot (``sample_priority``); the others
  are listed in samples.tsv and as ``duplicate_sample`` QC rows.
- RNA: ``tpm_unstranded`` of the STAR counts, log2(TPM + 1), rows sharing a symbol summed.
- Copy number: the gene-level file of the one configured source (``--cnv-source``, e.g.
  ASCAT3; a file of another source is skipped, never picked by file order), absolute copy
  number -> -2..2 (0 -> -2, 1 -> -1, 2 -> 0, 3-4 -> 1, >= 5 -> 2).
- Mutations: 1 if the chosen tumour aliquot has a non-silent call in the gene
  (``wsirisk.gdc.maf.NON_SILENT``: Missense, Nonsense, Frame_Shift_Del/Ins, In_Frame_Del/Ins,
  Splice_Site, Translation_Start_Site, Nonstop), else 0; NaN when the patient has no MAF.
- Genes: those of the six functional categories (the signatures file) only; RNA: every such
  gene the STAR files carry; CNV: those whose high-level call (|call| = 2) frequency among
  the kept patients with CNV is >= ``--min-cnv-frequency``; mutations: those mutated in
  >= ``--min-mutation-frequency`` of the kept patients with a MAF.  (Frequencies use no
  label, so choosing genes on the whole cohort leaks nothing into the folds.)  Defaults 0.1 and
  0.02: in the PORPOISE BLCA/LUAD tables every ``_cnv`` gene has a +-2 call in >= 9.4 % / 8.8 %
  of the patients and every ``_mut`` gene is mutated in >= 4.8 % / 4.9 %.
- Patients: every case of a file; kept when labelled and, with ``--keep-missing-modality``
  (default), whatever modalities it lacks (their columns NaN -> imputed per training fold by
  the omics stage; one ``partial`` QC row per missing modality); with
  ``--drop-missing-modality`` a patient lacking any requested modality is dropped.
- Slide sheet: the slides kind's tumour slides of the chosen type (``--slides DX``: DX1, DX2
  ... all kept), downloaded and verified; slides of patients without omics or label are kept
  in the sheet and listed in QC.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from wsirisk.gdc import clinical, cnv, maf, rnaseq
from wsirisk.gdc.barcodes import (
    TUMOUR_SAMPLE_TYPES,
    parse_barcode,
    sample_priority,
    slide_id_from_filename,
)
from wsirisk.gdc.filemap import read_map
from wsirisk.gdc.query import KINDS
from wsirisk.layout import CATEGORIES, Layout
from wsirisk.omics.signatures import read_signatures
from wsirisk.omics.table import QC_COLUMNS
from wsirisk.store import write_json, write_text

MODALITY = {"rna": "rnaseq", "cnv": "cnv", "mutations": "mut"}  # kind -> column suffix
QC_COLUMN = {**MODALITY, "slides": "slides", "clinical": "label"}  # kind -> QC `column`
OMICS_KINDS = tuple(MODALITY)
SLIDE_TYPES = {"DX": ("DX",), "TS": ("TS", "BS", "MS"), "all": ("",)}
CLINICAL_FORMATS = {"portal", "portal_prefixed", "follow_up", "biotab"}


@dataclass
class Settings:
    """Assembly settings (defaults = the config defaults)."""

    project: str | None = None
    kinds: tuple[str, ...] = KINDS
    cnv_source: str = "ASCAT3"
    slides: str = "DX"
    survival: str = "OS"
    min_mutation_frequency: float = 0.02
    min_cnv_frequency: float = 0.1
    keep_missing_modality: bool = True
    cdr_file: Path | None = None


@dataclass
class Qc:
    """QC rows in the columns of qc/omics.tsv."""

    rows: list[dict[str, str]] = field(default_factory=list)

    def add(self, case: str, column: str, status: str, reason: str, detail: str = "") -> None:
        self.rows.append(
            {
                "case_id": case,
                "column": column,
                "status": status,
                "reason": reason,
                "detail": detail,
            }
        )

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=list(QC_COLUMNS))


@dataclass
class KindFiles:
    """One kind's file map, the files verified on disk and the failed downloads."""

    kind: str
    rows: pd.DataFrame
    paths: dict[str, Path]  # file_id -> verified local file
    failed: dict[str, str]  # file_id -> download error


def load_kind(layout: Layout, kind: str, qc: Qc) -> KindFiles:
    """Read a kind's map and download log; file problems and failed downloads -> QC rows."""
    rows = read_map(layout.gdc_file_map(kind))
    log_path = layout.gdc_download_log(kind)
    log = pd.DataFrame(columns=["file_id", "status", "error"])
    if log_path.is_file():
        log = pd.read_csv(log_path, sep="\t", dtype=str, keep_default_na=False)
    status = dict(zip(log["file_id"], log["status"], strict=True))
    errors = dict(zip(log["file_id"], log["error"], strict=True))
    paths, failed = {}, {}
    files_dir = layout.gdc_files_dir(kind)
    for file_id, group in rows.groupby("file_id", sort=False):
        first = group.iloc[0]
        cases = sorted(set(group["case_id"]) - {""}) or [""]
        if first["problem"]:
            for case in cases:
                qc.add(
                    case,
                    kind,
                    "warning",
                    "file_problem",
                    f"{first['file_name']}: {first['problem']}",
                )
            continue
        path = files_dir / first["file_name"]
        if status.get(file_id) in {"ok", "present"} and path.is_file():
            paths[file_id] = path
            continue
        error = errors.get(file_id) or "not in the download log"
        failed[file_id] = error
        for case in cases:
            qc.add(
                case,
                QC_COLUMN[kind],
                "warning",
                "download_failed",
                f"{first['file_name']}: {error}",
            )
    return KindFiles(kind, rows, paths, failed)


def _tumour(code: str) -> bool | None:
    return int(code) in TUMOUR_SAMPLE_TYPES if code else None


def owners(files: KindFiles, qc: Qc) -> dict[str, list[tuple[str, str, Path]]]:
    """case -> [(entity barcode, file name, path)] for per-patient files (STAR, CNV, slides).

    A file's owner is its tumour entity; files of several patients or of normal samples only
    are skipped with a QC row.
    """
    out: dict[str, list[tuple[str, str, Path]]] = defaultdict(list)
    groups = dict(tuple(files.rows.groupby("file_id", sort=False)))
    for file_id, path in files.paths.items():
        group = groups[file_id]
        kept = group[[_tumour(code) is not False for code in group["sample_type_code"]]]
        cases = sorted(set(kept["case_id"]) - {""})
        name = path.name
        if not cases:
            all_cases = sorted(set(group["case_id"]) - {""}) or [""]
            for case in all_cases:
                qc.add(
                    case,
                    QC_COLUMN[files.kind],
                    "info",
                    "normal_sample_only",
                    f"{name}: not a tumour sample",
                )
            continue
        if len(cases) > 1:
            for case in cases:
                qc.add(
                    case,
                    QC_COLUMN[files.kind],
                    "warning",
                    "several_cases",
                    f"{name} is listed for cases {', '.join(cases)}; a per-patient file cannot "
                    "belong to several patients: skipped",
                )
            continue
        entity = sorted(kept["entity_id"], key=sample_priority)[0]
        out[cases[0]].append((entity, name, path))
    return out


def choose(
    candidates: dict[str, list[tuple[str, str, Path]]], modality: str, qc: Qc, samples: list[dict]
) -> dict[str, tuple[str, Path]]:
    """case -> (entity, path) by the one-sample rule; the others recorded."""
    chosen = {}
    for case, cands in sorted(candidates.items()):
        ordered = sorted(cands, key=lambda c: (sample_priority(c[0]), c[1]))
        entity, name, path = ordered[0]
        others = [f"{e} ({n})" for e, n, _ in ordered[1:]]
        samples.append(
            {
                "case_id": case,
                "modality": modality,
                "entity_id": entity,
                "file_name": name,
                "n_candidates": len(ordered),
                "others": "; ".join(others),
            }
        )
        if others:
            qc.add(
                case,
                modality,
                "info",
                "duplicate_sample",
                f"kept {entity} ({name}); not used: {'; '.join(others)}",
            )
        chosen[case] = (entity, path)
    return chosen


def _named(path: Path, exc: Exception) -> str:
    """An error message that names the file once."""
    return str(exc) if str(path) in str(exc) or path.name in str(exc) else f"{path}: {exc}"


def _read_per_case(
    chosen: dict[str, tuple[str, Path]], reader, modality: str, qc: Qc
) -> dict[str, pd.Series]:
    values = {}
    for case, (_, path) in chosen.items():
        try:
            values[case] = reader(path)
        except (ValueError, OSError, EOFError) as exc:
            qc.add(case, modality, "warning", "unreadable_file", _named(path, exc))
    return values


def rna_block(files: KindFiles, genes: list[str], qc: Qc, samples: list[dict]) -> pd.DataFrame:
    """case x gene log2(TPM + 1) of the signature genes the STAR files carry."""
    chosen = choose(owners(files, qc), "rnaseq", qc, samples)
    values = _read_per_case(chosen, rnaseq.star_log2_tpm, "rnaseq", qc)
    return _block(values, genes)


def cnv_block(
    files: KindFiles, genes: list[str], source: str, qc: Qc, samples: list[dict]
) -> pd.DataFrame:
    """case x gene copy-number calls (-2..2) from the gene-level files of ``source``."""
    other = files.rows[
        (files.rows["workflow_type"] != "") & (files.rows["workflow_type"] != source)
    ]
    for file_id, group in other.groupby("file_id"):
        files.paths.pop(file_id, None)
        for case in sorted(set(group["case_id"]) - {""}):
            qc.add(
                case,
                "cnv",
                "info",
                "other_cnv_source",
                f"{group.iloc[0]['file_name']}: {group.iloc[0]['workflow_type']} "
                f"(configured source {source}): skipped",
            )
    chosen = choose(owners(files, qc), "cnv", qc, samples)

    def calls(path: Path) -> pd.Series:
        return cnv.discretise(cnv.gene_level_copy_number(path), cnv.COPY_NUMBER)

    return _block(_read_per_case(chosen, calls, "cnv", qc), genes)


def mutation_block(files: KindFiles, genes: list[str], qc: Qc, samples: list[dict]) -> pd.DataFrame:
    """case x gene 0/1 non-silent calls of each patient's chosen tumour aliquot."""
    tables, candidates = [], defaultdict(list)
    for file_id, path in sorted(files.paths.items(), key=lambda item: item[1].name):
        try:
            table = maf.read_maf(path)
        except (ValueError, OSError, EOFError) as exc:
            cases = files.rows.loc[files.rows["file_id"] == file_id, "case_id"]
            for case in sorted(set(cases) - {""}) or [""]:
                qc.add(case, "mut", "warning", "unreadable_file", _named(path, exc))
            continue
        table = table.assign(_file=path.name)
        tables.append(table)
        for barcode in sorted(set(table["Tumor_Sample_Barcode"].str.strip())):
            try:
                code = parse_barcode(barcode)
            except ValueError:
                qc.add(
                    "",
                    "mut",
                    "warning",
                    "unreadable_file",
                    f"{path.name}: {barcode!r} is not a TCGA barcode",
                )
                continue
            if code.sample_type is None or code.sample_type in TUMOUR_SAMPLE_TYPES:
                candidates[code.case_id].append((barcode, path.name, path))
    chosen = choose(candidates, "mut", qc, samples)
    if not tables:
        return pd.DataFrame(dtype=float)
    merged = pd.concat(tables, ignore_index=True)
    keep = pd.Series(False, index=merged.index)
    for _case, (barcode, path) in chosen.items():
        keep |= (merged["Tumor_Sample_Barcode"].str.strip() == barcode) & (
            merged["_file"] == path.name
        )
    matrix = maf.mutation_matrix(merged.loc[keep], genes=genes, source="MAF files")
    return matrix.astype(float)


def _block(values: dict[str, pd.Series], genes: list[str]) -> pd.DataFrame:
    if not values:
        return pd.DataFrame(dtype=float)
    frame = pd.DataFrame({case: s.reindex(genes) for case, s in values.items()}).T
    frame.index.name = "case_id"
    return frame.astype(float)


def labels(clinical_files: KindFiles | None, settings: Settings, qc: Qc) -> pd.DataFrame:
    """case_id, survival_months, censorship, endpoint, source, source_file (see the module doc)."""
    paths = sorted(clinical_files.paths.values()) if clinical_files else []
    if settings.cdr_file:
        paths.append(Path(settings.cdr_file))
    formats = {p: clinical.detect_format(p) for p in paths}
    for path, fmt in formats.items():
        if fmt is None:
            qc.add("", "label", "info", "not_a_survival_table", f"{path.name}: ignored")
    cdrs = [p for p, f in formats.items() if f == "cdr"]
    parts, skipped = [], {}
    if cdrs:
        cdr = clinical.read_cdr(cdrs[0], endpoint=settings.survival, project=settings.project)
        skipped.update(cdr.attrs.get("skipped", {}))
        if cdr.empty:
            qc.add(
                "",
                "label",
                "warning",
                "cdr_without_project",
                f"{cdrs[0].name} has no {settings.project} patient with {settings.survival}; "
                "labels from the clinical files",
            )
        parts.append(cdr.assign(source="cdr", source_file=cdrs[0].name))
    else:
        qc.add("", "label", "warning", "no_cdr", "no TCGA-CDR table; labels from clinical files")
    others = [p for p, f in formats.items() if f in CLINICAL_FORMATS]
    if others and settings.survival == "OS":
        try:
            fallback = clinical.read_clinical_files(others, endpoint="OS", project=settings.project)
        except ValueError as exc:
            qc.add("", "label", "warning", "clinical_unreadable", str(exc))
        else:
            for case, reason in fallback.attrs.get("skipped", {}).items():
                skipped[case] = "; ".join(filter(None, [skipped.get(case), reason]))
            have = set(parts[0]["case_id"]) if parts else set()
            extra = fallback[~fallback["case_id"].isin(have)]
            names = ", ".join(p.name for p in others)
            parts.append(extra.assign(source="clinical", source_file=names))
    columns = ["case_id", "survival_months", "censorship", "source", "source_file"]
    parts = [part for part in parts if not part.empty]
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)
    table.insert(3, "endpoint", settings.survival)
    table.attrs["skipped"] = skipped
    return table.sort_values("case_id").reset_index(drop=True)


def slide_sheet(files: KindFiles, settings: Settings, qc: Qc) -> pd.DataFrame:
    """slide_id, patient_id, path of the verified tumour slides of the chosen type."""
    prefixes = SLIDE_TYPES[settings.slides]
    rows = []
    for case, cands in owners(files, qc).items():
        for entity, name, path in cands:
            try:
                slide = parse_barcode(entity).slide or parse_barcode(name).slide or ""
            except ValueError:
                slide = ""
            if not slide.startswith(prefixes):
                qc.add(case, "slides", "info", "other_slide_type", f"{name}: not {settings.slides}")
                continue
            rows.append(
                {"slide_id": slide_id_from_filename(name), "patient_id": case, "path": str(path)}
            )
    sheet = pd.DataFrame(rows, columns=["slide_id", "patient_id", "path"])
    return sheet.sort_values(["patient_id", "slide_id"]).reset_index(drop=True)


def filter_genes(block: pd.DataFrame, modality: str, settings: Settings) -> pd.DataFrame:
    """Drop all-NaN genes; frequency thresholds for cnv and mut (see the module doc)."""
    block = block.dropna(axis=1, how="all")
    if block.empty:
        return block
    if modality == "mut":
        freq = block.mean(axis=0, skipna=True)
        block = block.loc[:, freq >= settings.min_mutation_frequency]
    elif modality == "cnv" and settings.min_cnv_frequency > 0:
        freq = (block.abs() == 2).sum(axis=0) / block.notna().sum(axis=0)
        block = block.loc[:, freq >= settings.min_cnv_frequency]
    return block.reindex(columns=sorted(block.columns))


def category_counts(columns: Iterable[str], signatures: dict[str, list[str]]) -> pd.DataFrame:
    """Features per category and modality (a gene in several categories counts in each)."""
    by_modality: dict[str, set[str]] = defaultdict(set)
    for name in columns:
        gene, _, suffix = name.rpartition("_")
        by_modality[suffix].add(gene)
    rows = []
    for category in CATEGORIES:
        genes = set(signatures[category])
        counts = {m: len(by_modality[m] & genes) for m in MODALITY.values()}
        rows.append({"category": category, **counts, "total": sum(counts.values())})
    unique = {m: len(by_modality[m]) for m in MODALITY.values()}
    rows.append({"category": "all (unique genes)", **unique, "total": sum(unique.values())})
    return pd.DataFrame(rows, columns=["category", *MODALITY.values(), "total"])


def assemble(layout: Layout, signatures_path: Path, settings: Settings) -> dict:
    """Build every output of the module doc; returns the summary (also written as JSON)."""
    qc = Qc()
    signatures = read_signatures(signatures_path)
    genes = sorted({g for category in CATEGORIES for g in signatures[category]})
    kinds = {k: load_kind(layout, k, qc) for k in settings.kinds}
    samples: list[dict] = []
    blocks: dict[str, pd.DataFrame] = {}
    if "rna" in kinds:
        blocks["rnaseq"] = rna_block(kinds["rna"], genes, qc, samples)
    if "cnv" in kinds:
        blocks["cnv"] = cnv_block(kinds["cnv"], genes, settings.cnv_source, qc, samples)
    if "mutations" in kinds:
        blocks["mut"] = mutation_block(kinds["mutations"], genes, qc, samples)
    sheet = slide_sheet(kinds["slides"], settings, qc) if "slides" in kinds else None
    label = labels(kinds.get("clinical"), settings, qc)

    with_data: dict[str, set[str]] = {m: set(b.index) for m, b in blocks.items()}
    slide_cases = set(sheet["patient_id"]) if sheet is not None else set()
    universe = set().union(*with_data.values(), slide_cases)
    for files in kinds.values():
        universe |= set(files.rows["case_id"]) - {""}
    labelled = set(label["case_id"])
    kept = []
    for case in sorted(universe):
        have = [m for m in blocks if case in with_data[m]]
        missing = [m for m in blocks if case not in with_data[m]]
        if case not in labelled:
            reason = label.attrs["skipped"].get(case, "not in the CDR nor the clinical files")
            if case in slide_cases:
                qc.add(case, "slides", "info", "slides_without_label", reason)
            qc.add(case, "label", "dropped", "no_label", reason)
            continue
        if not have and case not in slide_cases:
            qc.add(case, "", "dropped", "no_data", "clinical record only: no omics file, no slide")
            continue
        if sheet is not None and case not in slide_cases and have:
            qc.add(case, "slides", "info", "omics_without_slide", "no usable slide")
        if case in slide_cases and not have:
            qc.add(case, "slides", "info", "slides_without_omics", "no usable omics file")
        if missing and not settings.keep_missing_modality:
            qc.add(case, ",".join(missing), "dropped", "missing_modality", "no usable file")
            continue
        for m in missing:
            qc.add(
                case,
                m,
                "partial",
                "missing_modality",
                f"no usable {m} file: kept, {m} columns NaN (imputed per training fold)",
            )
        kept.append(case)

    label_k = label.set_index("case_id").loc[kept]
    parts = [
        pd.DataFrame(
            {
                "case_id": kept,
                "survival_months": label_k["survival_months"].to_numpy(float),
                "censorship": label_k["censorship"].to_numpy("int8"),
            }
        )
    ]
    for modality, block in blocks.items():
        block = filter_genes(
            block.reindex(index=[c for c in kept if c in block.index]), modality, settings
        )
        block = block.reindex(index=kept)
        block.columns = [f"{g}_{modality}" for g in block.columns]
        parts.append(block.reset_index(drop=True))
    table = pd.concat(parts, axis=1)
    counts = category_counts(table.columns[3:], signatures)

    write_text(layout.gdc_omics_table, table.to_csv(index=False, float_format="%.8g"))
    write_text(layout.gdc_labels, label.to_csv(sep="\t", index=False))
    if sheet is None:
        sheet = pd.DataFrame(columns=["slide_id", "patient_id", "path"])
    write_text(layout.gdc_sample_sheet, sheet.to_csv(sep="\t", index=False))
    samples_frame = pd.DataFrame(
        samples, columns=["case_id", "modality", "entity_id", "file_name", "n_candidates", "others"]
    )
    write_text(layout.gdc_samples, samples_frame.to_csv(sep="\t", index=False))
    write_text(layout.gdc_features, counts.to_csv(sep="\t", index=False))
    write_text(layout.qc_assembly, qc.frame().to_csv(sep="\t", index=False))
    summary = {
        "project": settings.project,
        "patients": len(kept),
        "events": int((table["censorship"] == 0).sum()),
        "slides": int(len(sheet)),
        "patients_with_slides": int(sheet["patient_id"].nunique()),
        "patients_with": {m: int(len(with_data[m] & set(kept))) for m in blocks},
        "label_sources": {k: int(v) for k, v in label_k["source"].value_counts().items()},
        "features": {m: int(sum(c.endswith("_" + m) for c in table.columns)) for m in blocks},
        "failed_downloads": {k: len(f.failed) for k, f in kinds.items()},
        "qc_rows": {reason: int(n) for reason, n in qc.frame()["reason"].value_counts().items()},
        "settings": {
            "kinds": list(settings.kinds),
            "survival": settings.survival,
            "cnv_source": settings.cnv_source,
            "slides": settings.slides,
            "min_mutation_frequency": settings.min_mutation_frequency,
            "min_cnv_frequency": settings.min_cnv_frequency,
            "keep_missing_modality": settings.keep_missing_modality,
            "rna": "log2(TPM + 1) of tpm_unstranded (STAR - Counts)",
            "mutations": sorted(maf.NON_SILENT),
            "sample_rule": "tumour samples (01-09); primary tumour 01 first, then barcode order",
        },
    }
    write_json(layout.gdc_summary, summary)
    return {**summary, "category_counts": counts}


def build_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cohort", required=True)
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument("--results-dir", type=Path, default=Path("results"))
    parser.add_argument("--signatures", type=Path, required=True, help="six-category gene lists")
    parser.add_argument("--project", help="GDC project (e.g. TCGA-BLCA): CDR rows of its type")
    parser.add_argument("--kinds", default=",".join(KINDS), help="comma-separated kinds")
    parser.add_argument("--survival", default="OS", choices=clinical.ENDPOINTS)
    parser.add_argument("--cnv-source", default="ASCAT3")
    parser.add_argument("--slides", default="DX", choices=sorted(SLIDE_TYPES))
    parser.add_argument("--min-mutation-frequency", type=float, default=0.02)
    parser.add_argument("--min-cnv-frequency", type=float, default=0.1)
    parser.add_argument(
        "--drop-missing-modality",
        action="store_true",
        help="drop patients lacking a modality (default: keep them, NaN, with a QC row)",
    )
    parser.add_argument("--cdr", type=Path, help="a local TCGA-CDR table (xlsx or tsv)")


def run(args: argparse.Namespace) -> int:
    kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip())
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        print(f"wsirisk gdc-assemble: unknown kind(s) {unknown}; use {KINDS}", file=sys.stderr)
        return 2
    settings = Settings(
        project=args.project,
        kinds=kinds,
        cnv_source=args.cnv_source,
        slides=args.slides,
        survival=args.survival,
        min_mutation_frequency=args.min_mutation_frequency,
        min_cnv_frequency=args.min_cnv_frequency,
        keep_missing_modality=not args.drop_missing_modality,
        cdr_file=args.cdr,
    )
    layout = Layout(args.results_dir, args.data_dir, args.cohort)
    try:
        summary = assemble(layout, args.signatures, settings)
    except (ValueError, OSError) as exc:
        print(f"wsirisk gdc-assemble: {exc}", file=sys.stderr)
        return 1
    counts = summary.pop("category_counts")
    print(counts.to_string(index=False))
    print(
        f"{summary['patients']} patients ({summary['events']} events), {summary['slides']} slides; "
        f"labels: {summary['label_sources']}; features: {summary['features']}; "
        f"QC ({layout.qc_assembly}): {summary['qc_rows']}"
    )
    if summary["patients"] == 0:  # outputs kept (a failed job would delete the QC that says why)
        print(
            f"wsirisk gdc-assemble: WARNING: no patient kept; see {layout.qc_assembly}",
            file=sys.stderr,
        )
    return 0
