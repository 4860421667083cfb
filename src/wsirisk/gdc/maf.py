"""Masked somatic MAFs -> per-case, per-gene non-silent mutation 0/1 (docs/MAF_Format.md).

GDC MAFs start with ``#version``/``#annotation.spec``/... lines, then a header with
``Hugo_Symbol``, ``Variant_Classification`` and ``Tumor_Sample_Barcode`` (an aliquot barcode
such as ``TCGA-DJ-A2Q6-01A-11D-A18F-08``; legacy MAFs may hold a case barcode).  Non-silent
= the protein-altering classes of ``NON_SILENT`` (the maftools default); Silent, UTR, flank,
intron, IGR, RNA and Splice_Region variants do not count.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from wsirisk.gdc.barcodes import TUMOUR_SAMPLE_TYPES, parse_barcode
from wsirisk.gdc.textio import header_columns, read_tsv, require

MAF_COLUMNS = ["Hugo_Symbol", "Variant_Classification", "Tumor_Sample_Barcode"]
NON_SILENT = frozenset(
    {
        "Frame_Shift_Del",
        "Frame_Shift_Ins",
        "In_Frame_Del",
        "In_Frame_Ins",
        "Missense_Mutation",
        "Nonsense_Mutation",
        "Nonstop_Mutation",
        "Splice_Site",
        "Translation_Start_Site",
    }
)


def is_maf(path: Path) -> bool:
    return set(MAF_COLUMNS) <= set(header_columns(path))


def read_maf(path: Path) -> pd.DataFrame:
    """A MAF as strings (``#`` lines skipped); ValueError naming file and missing columns."""
    path = Path(path)
    table = read_tsv(path)
    require(table, MAF_COLUMNS, path, "MAF")
    return table


def mutation_matrix(
    maf: pd.DataFrame,
    *,
    sample_types: Iterable[int] = TUMOUR_SAMPLE_TYPES,
    genes: Iterable[str] | None = None,
    source: str = "MAF",
) -> pd.DataFrame:
    """Case x gene int8 matrix: 1 if any wanted tumour sample of the case has a non-silent
    mutation in the gene.  Every case with a wanted sample gets a row (all 0 if none);
    columns are the mutated genes, plus ``genes`` when given (then only those).
    """
    wanted = set(sample_types)
    barcodes = maf["Tumor_Sample_Barcode"].astype(str).str.strip()
    parsed = {}
    for code in barcodes.unique():
        try:
            parsed[code] = parse_barcode(code)
        except ValueError:
            raise ValueError(
                f"{source}: column Tumor_Sample_Barcode: {code!r} is not a TCGA barcode"
            ) from None
    keep = barcodes.map(lambda c: parsed[c].sample_type is None or parsed[c].sample_type in wanted)
    cases = barcodes.map(lambda c: parsed[c].case_id)
    all_cases = sorted(set(cases[keep]))
    hits = maf.loc[keep & maf["Variant_Classification"].isin(NON_SILENT)]
    hit_cases = cases[hits.index]
    symbols = hits["Hugo_Symbol"].astype(str).str.strip()
    valid = symbols.ne("") & symbols.ne("Unknown")
    pairs = pd.DataFrame({"case": hit_cases[valid], "gene": symbols[valid]}).drop_duplicates()
    columns = sorted(set(pairs["gene"])) if genes is None else list(dict.fromkeys(genes))
    table = pd.crosstab(pairs["case"], pairs["gene"]).clip(upper=1)
    out = table.reindex(index=all_cases, columns=columns, fill_value=0).astype("int8")
    out.index.name = "case_id"
    out.columns.name = None
    return out


def maf_mutations(paths: Iterable[Path], **kwargs: object) -> pd.DataFrame:
    """``mutation_matrix`` over the concatenation of several MAF files."""
    paths = [Path(p) for p in paths]
    tables = [read_maf(p) for p in paths]
    if not tables:
        return pd.DataFrame(dtype="int8")
    merged = pd.concat(tables, ignore_index=True)
    source = ", ".join(str(p) for p in paths)
    return mutation_matrix(merged, source=source, **kwargs)  # type: ignore[arg-type]
