"""A directory of raw GDC files -> one PORPOISE/MCAT-layout table, one row per patient.

``table_from_raw_dir(dir)`` walks ``dir`` recursively (the gdc-client ``<uuid>/<name>``
layout and flat ``wsirisk download`` folders both work) and recognises files by their
header, never by extension alone (gzip is detected by magic bytes):

==================  ===================================================================
sample sheet        first line starts ``File ID<TAB>File Name`` (portal sample sheet)
manifest            header ``id filename md5 size ...`` (ignored: no sample information)
STAR counts         ``# gene-model`` line or ``gene_id, gene_name, tpm_unstranded`` columns
gene-level CNV      ``gene_id, gene_name, chromosome, start, end, copy_number`` columns
segments            ``Chromosome, Start, End`` + ``Segment_Mean`` or ``Copy_Number``
MAF                 ``Hugo_Symbol, Variant_Classification, Tumor_Sample_Barcode``
clinical            TCGA-CDR, portal clinical.tsv (2020, 2022, 2024+), follow_up.tsv, Biotab
==================  ===================================================================

Hidden files, ``*.partial`` downloads, ``download_log.tsv`` and anything else are skipped
(listed in ``attrs['ignored']``).  STAR counts, gene-level CNV and UUID-named segment files
hold no barcode: their sample comes from a sample sheet row whose File Name (or File ID =
parent folder) matches, else from a TCGA barcode at the start of the file name, else a
ValueError names the file.  Only tumour samples (types 01-09 unless ``sample_types`` says
otherwise) are used; a case with several samples of one kind uses the first by barcode.

Output columns: case_id, slide_id (empty), survival_months, censorship (1 = censored),
then ``<GENE>_rnaseq`` (log2(TPM+1)), ``<GENE>_cnv`` (-2..2, see ``wsirisk.gdc.cnv``) and
``<GENE>_mut`` (0/1 non-silent).  Patients are those with survival and, when any omics file
is present, at least one omics modality; a modality a patient lacks is NaN.
``attrs``: ``skipped`` (case -> reason), ``files`` (kind -> names), ``ignored``, ``notes``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from wsirisk.gdc import clinical, cnv, maf, rnaseq
from wsirisk.gdc.barcodes import TUMOUR_SAMPLE_TYPES, parse_barcode
from wsirisk.gdc.manifest import MANIFEST_COLUMNS, is_sample_sheet, read_sample_sheet
from wsirisk.gdc.textio import header_columns

SKIP_NAMES = frozenset({"download_log.tsv"})


@dataclass
class RawFiles:
    """Files of a raw directory, by kind."""

    sample_sheets: list[Path] = field(default_factory=list)
    manifests: list[Path] = field(default_factory=list)
    star: list[Path] = field(default_factory=list)
    gene_cnv: list[Path] = field(default_factory=list)
    segments: list[Path] = field(default_factory=list)
    maf: list[Path] = field(default_factory=list)
    clinical: list[Path] = field(default_factory=list)
    ignored: list[Path] = field(default_factory=list)


def classify(path: Path) -> str | None:
    """Kind of one file (a RawFiles field name) or None; see the module doc."""
    if is_sample_sheet(path):
        return "sample_sheets"
    cols = header_columns(path)
    if not cols:
        return None
    if cols[: len(MANIFEST_COLUMNS) - 1] == list(MANIFEST_COLUMNS[:-1]):
        return "manifests"
    if rnaseq.is_star_counts(path):
        return "star"
    if cnv.is_gene_level(path):
        return "gene_cnv"
    if maf.is_maf(path):
        return "maf"
    if cnv.is_segments(path):
        return "segments"
    if clinical.detect_format(path) is not None:
        return "clinical"
    return None


def scan(directory: Path) -> RawFiles:
    """Classify every regular file under ``directory`` (sorted, recursive)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"raw GDC directory not found: {directory}")
    found = RawFiles()
    for path in sorted(directory.rglob("*")):
        rel = path.relative_to(directory)
        if not path.is_file() or any(part.startswith(".") for part in rel.parts):
            continue
        if path.name.endswith(".partial") or path.name in SKIP_NAMES:
            found.ignored.append(path)
            continue
        kind = classify(path)
        getattr(found, kind or "ignored").append(path)
    return found


@dataclass
class _SampleIndex:
    """File name / file id -> [(case_id, sample barcode)] from sample sheets."""

    by_name: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    by_id: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    @classmethod
    def from_sheets(cls, sheets: Iterable[Path]) -> _SampleIndex:
        index = cls()
        for sheet in sheets:
            for row in read_sample_sheet(sheet).itertuples(index=False):
                pair = (row.case_id, row.sample_id)
                index.by_name.setdefault(row.file_name, []).append(pair)
                index.by_id.setdefault(row.file_id, []).append(pair)
        return index

    def lookup(self, path: Path) -> list[tuple[str, str]]:
        return self.by_name.get(path.name) or self.by_id.get(path.parent.name) or []


def _sample_of(path: Path, index: _SampleIndex, wanted: set[int]) -> tuple[str, str] | None:
    """(case_id, sample barcode) of a single-sample file, None if not a wanted (tumour) sample."""
    pairs = index.lookup(path)
    if not pairs:
        try:
            code = parse_barcode(path.name)
        except ValueError:
            raise ValueError(
                f"{path}: cannot tell which sample this file belongs to; put the GDC sample "
                "sheet (File ID, File Name, Case ID, Sample ID ...) in the directory"
            ) from None
        pairs = [(code.case_id, code.sample_id or code.case_id)]
    kept = []
    for case, sample in pairs:
        try:
            code = parse_barcode(sample or case)
        except ValueError:  # not a TCGA barcode (other programmes): keep as listed
            kept.append((case, sample))
            continue
        if code.sample_type is None or code.sample_type in wanted:
            kept.append((code.case_id, sample or case))
    return sorted(kept)[0] if kept else None


def _per_case(
    files: list[Path], index: _SampleIndex, wanted: set[int], notes: list[str]
) -> dict[str, Path]:
    """case -> the file of its first wanted sample (by barcode)."""
    chosen: dict[str, tuple[str, Path]] = {}
    for path in files:
        owner = _sample_of(path, index, wanted)
        if owner is None:
            notes.append(f"{path.name}: not a wanted sample type, skipped")
            continue
        case, sample = owner
        if case in chosen and chosen[case][0] <= sample:
            notes.append(f"{path.name}: {case} already has sample {chosen[case][0]}, skipped")
            continue
        if case in chosen:
            notes.append(f"{chosen[case][1].name}: {case} has earlier sample {sample}, replaced")
        chosen[case] = (sample, path)
    return {case: path for case, (_, path) in sorted(chosen.items())}


def _segment_calls(
    files: RawFiles, index: _SampleIndex, wanted: set[int], notes: list[str]
) -> pd.DataFrame:
    """Case x gene CNV calls from segment files, using gene coordinates of gene-level files."""
    if not files.segments:
        return pd.DataFrame()
    if not files.gene_cnv:
        notes.append("segment files skipped: no gene-level CNV file to take gene coordinates from")
        return pd.DataFrame()
    genes = cnv.read_gene_level(files.gene_cnv[0])
    calls: dict[str, pd.Series] = {}
    for path in files.segments:
        segs = cnv.read_segments(path)
        for sample, part in segs.groupby("sample", sort=True):
            try:
                owner: tuple[str, str] | None = None
                code = parse_barcode(sample)
                if code.sample_type is None or code.sample_type in wanted:
                    owner = (code.case_id, sample)
            except ValueError:
                owner = _sample_of(path, index, wanted)
            if owner is None or owner[0] in calls:
                continue
            values = cnv.segments_to_genes(part, genes)[sample]
            calls[owner[0]] = cnv.discretise(values, segs.attrs["kind"])
    return pd.DataFrame(calls).T


def table_from_raw_dir(
    path: Path,
    *,
    endpoint: str = "OS",
    genes: Iterable[str] | None = None,
    sample_types: Iterable[int] = TUMOUR_SAMPLE_TYPES,
    project: str | None = None,
) -> pd.DataFrame:
    """PORPOISE/MCAT-layout table from a directory of raw GDC files (see module doc)."""
    path = Path(path)
    files = scan(path)
    wanted = set(sample_types)
    notes: list[str] = []
    if not files.clinical:
        raise ValueError(
            f"{path}: no clinical file (TCGA-CDR, portal clinical.tsv or Biotab) found"
        )
    survival = clinical.read_clinical_files(files.clinical, endpoint=endpoint, project=project)
    skipped = dict(survival.attrs.get("skipped", {}))
    index = _SampleIndex.from_sheets(files.sample_sheets)

    blocks: dict[str, pd.DataFrame] = {}
    star = _per_case(files.star, index, wanted, notes)
    if star:
        blocks["rnaseq"] = rnaseq.star_matrix(star).T
    gene_cnv = _per_case(files.gene_cnv, index, wanted, notes)
    cnv_calls = {
        case: cnv.discretise(cnv.gene_level_copy_number(p), cnv.COPY_NUMBER)
        for case, p in gene_cnv.items()
    }
    seg_calls = _segment_calls(files, index, wanted, notes)
    cnv_table = pd.DataFrame(cnv_calls).T if cnv_calls else pd.DataFrame()
    if not seg_calls.empty:
        extra = seg_calls.loc[~seg_calls.index.isin(cnv_table.index)]
        cnv_table = pd.concat([cnv_table, extra]) if not cnv_table.empty else extra
    if not cnv_table.empty:
        blocks["cnv"] = cnv_table
    if files.maf:
        blocks["mut"] = maf.maf_mutations(files.maf, sample_types=wanted, genes=genes)

    surv = survival.set_index("case_id")
    omics_cases = set().union(*(set(b.index) for b in blocks.values())) if blocks else set()
    if blocks:
        for case in sorted(omics_cases - set(surv.index)):
            skipped.setdefault(case, "omics but no usable survival")
        cases = sorted(omics_cases & set(surv.index))
    else:
        cases = sorted(surv.index)
    table = pd.DataFrame(
        {
            "case_id": cases,
            "slide_id": "",
            "survival_months": surv.loc[cases, "survival_months"].to_numpy(float),
            "censorship": surv.loc[cases, "censorship"].to_numpy("int8"),
        }
    )
    gene_list = list(dict.fromkeys(genes)) if genes is not None else None
    parts = [table]
    for suffix, block in blocks.items():
        block = block.reindex(index=cases)
        if gene_list is not None:
            block = block.reindex(columns=gene_list)
        else:
            block = block.reindex(columns=sorted(block.columns))
        block.columns = [f"{gene}_{suffix}" for gene in block.columns]
        parts.append(block.reset_index(drop=True).astype(float))
    out = pd.concat(parts, axis=1)
    out.attrs.update(
        skipped=skipped,
        files={k: [p.name for p in v] for k, v in vars(files).items() if k != "ignored"},
        ignored=[str(p.relative_to(path)) for p in files.ignored],
        notes=notes,
    )
    return out
