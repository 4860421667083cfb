"""GDC copy number: gene-level TSVs and segment files (docs/CNV_Pipeline.md).

Gene level (ASCAT2/3, ABSOLUTE ``*.gene_level_copy_number.*.tsv``): ``gene_id gene_name
chromosome start end copy_number min_copy_number max_copy_number``; integer copy numbers,
empty cells where no segment covers the gene.

Segments, three layouts: DNAcopy ``Sample Chromosome Start End Num_Probes Segment_Mean``
(log2(copy number / 2)), ASCAT ``GDC_Aliquot Chromosome Start End Copy_Number
[Major_Copy_Number Minor_Copy_Number]`` (integers) and the same with ``Sample`` first.

MCAT/PORPOISE ``_cnv`` columns are GISTIC-like calls in -2..2; ``discretise`` maps onto them:

    absolute copy number: 0 -> -2, 1 -> -1, 2 -> 0, 3-4 -> 1, >= 5 -> 2
    log2 ratio:           < -1 -> -2, < -0.3 -> -1, <= 0.3 -> 0, <= 1 -> 1, > 1 -> 2
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from wsirisk.gdc.textio import header_columns, read_tsv, require, to_number

GENE_LEVEL_COLUMNS = ["gene_id", "gene_name", "chromosome", "start", "end", "copy_number"]
COPY_NUMBER = "copy_number"
LOG2_RATIO = "log2_ratio"


def is_gene_level(path: Path) -> bool:
    return set(GENE_LEVEL_COLUMNS) <= set(header_columns(path))


def is_segments(path: Path) -> bool:
    cols = {c.lower() for c in header_columns(path)}
    return {"chromosome", "start", "end"} <= cols and bool({"segment_mean", "copy_number"} & cols)


def _chrom(values: pd.Series) -> pd.Series:
    return values.astype(str).str.strip().str.removeprefix("chr").str.upper()


def read_gene_level(path: Path) -> pd.DataFrame:
    """Gene-level table: gene, chromosome, start, end, copy_number (NaN where empty)."""
    path = Path(path)
    table = read_tsv(path)
    require(table, GENE_LEVEL_COLUMNS, path, "gene-level copy number file")
    symbol = table["gene_name"].str.strip()
    out = pd.DataFrame(
        {
            "gene": symbol.where(symbol != "", table["gene_id"].str.split(".").str[0]),
            "chromosome": _chrom(table["chromosome"]),
            "start": to_number(table["start"], f"{path}: column start"),
            "end": to_number(table["end"], f"{path}: column end"),
            "copy_number": to_number(table["copy_number"], f"{path}: column copy_number"),
        }
    )
    return out


def gene_level_copy_number(path: Path) -> pd.Series:
    """Copy number per gene symbol (first non-empty value for duplicated symbols)."""
    table = read_gene_level(path)
    series = table.groupby("gene", sort=True)["copy_number"].first()
    series.name = COPY_NUMBER
    return series


def read_segments(path: Path) -> pd.DataFrame:
    """Segments: sample, chromosome, start, end, value; ``attrs['kind']`` = copy_number | log2_ratio."""
    path = Path(path)
    table = read_tsv(path)
    lower = {c.lower(): c for c in table.columns}
    sample_col = lower.get("gdc_aliquot") or lower.get("sample") or lower.get("id")
    if sample_col is None:
        raise ValueError(f"{path}: segment file needs a Sample or GDC_Aliquot column")
    if "segment_mean" in lower:
        value_col, kind = lower["segment_mean"], LOG2_RATIO
    elif "copy_number" in lower:
        value_col, kind = lower["copy_number"], COPY_NUMBER
    else:
        raise ValueError(f"{path}: segment file needs a Segment_Mean or Copy_Number column")
    for col in ("chromosome", "start", "end"):
        if col not in lower:
            raise ValueError(f"{path}: segment file lacks column {col!r}")
    out = pd.DataFrame(
        {
            "sample": table[sample_col].str.strip(),
            "chromosome": _chrom(table[lower["chromosome"]]),
            "start": to_number(table[lower["start"]], f"{path}: column {lower['start']}"),
            "end": to_number(table[lower["end"]], f"{path}: column {lower['end']}"),
            "value": to_number(table[value_col], f"{path}: column {value_col}"),
        }
    )
    if (out["end"] < out["start"]).any():
        raise ValueError(f"{path}: a segment ends before it starts")
    out.attrs["kind"] = kind
    return out


def segments_to_genes(segments: pd.DataFrame, genes: pd.DataFrame) -> pd.DataFrame:
    """Gene x sample values from segments, as the GDC does for gene-level copy number.

    ``genes`` has gene, chromosome, start, end.  A gene covered by one segment takes its
    value; by several, the overlap-length-weighted median (ties -> the smaller value); by
    none, NaN.
    """
    genes = genes.dropna(subset=["start", "end"]).drop_duplicates("gene")
    out = pd.DataFrame(index=pd.Index(sorted(genes["gene"]), name="gene"), dtype=float)
    for sample, segs in segments.groupby("sample", sort=True):
        values = pd.Series(np.nan, index=out.index)
        for chrom, g in genes.groupby("chromosome"):
            s = segs[segs["chromosome"] == chrom].sort_values("start")
            if s.empty:
                continue
            values.loc[g["gene"].to_numpy()] = _overlap_values(
                g["start"].to_numpy(float),
                g["end"].to_numpy(float),
                s["start"].to_numpy(float),
                s["end"].to_numpy(float),
                s["value"].to_numpy(float),
            )
        out[sample] = values
    return out


def _overlap_values(
    g_start: np.ndarray, g_end: np.ndarray, s_start: np.ndarray, s_end: np.ndarray, val: np.ndarray
) -> np.ndarray:
    first = np.searchsorted(s_end, g_start, side="left")  # first segment ending at/after gene start
    last = np.searchsorted(s_start, g_end, side="right")  # segments starting at/before gene end
    out = np.full(len(g_start), np.nan)
    single = last - first == 1
    out[single] = val[first[single]]
    for i in np.flatnonzero(last - first > 1):
        idx = np.arange(first[i], last[i])
        overlap = np.minimum(s_end[idx], g_end[i]) - np.maximum(s_start[idx], g_start[i]) + 1
        order = np.argsort(val[idx], kind="stable")
        weights = np.cumsum(overlap[order])
        out[i] = val[idx][order][np.searchsorted(weights, weights[-1] / 2.0, side="left")]
    return out


def discretise(values: pd.DataFrame | pd.Series, kind: str) -> pd.DataFrame | pd.Series:
    """Copy numbers or log2 ratios -> GISTIC-like calls -2..2 (NaN stays NaN); see module doc."""
    x = values.to_numpy(float)
    if kind == COPY_NUMBER:
        conditions = [x < 0.5, x < 1.5, x < 2.5, x < 4.5, x >= 4.5]
    elif kind == LOG2_RATIO:
        conditions = [x < -1.0, x < -0.3, x <= 0.3, x <= 1.0, x > 1.0]
    else:
        raise ValueError(
            f"unknown copy number kind {kind!r}: use {COPY_NUMBER!r} or {LOG2_RATIO!r}"
        )
    calls = np.select(conditions, [-2.0, -1.0, 0.0, 1.0, 2.0], default=np.nan)
    if isinstance(values, pd.Series):
        return pd.Series(calls, index=values.index, name=values.name)
    return pd.DataFrame(calls, index=values.index, columns=values.columns)
