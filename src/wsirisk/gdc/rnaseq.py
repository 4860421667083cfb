"""GDC STAR gene counts (``*.rna_seq.augmented_star_gene_counts.tsv``) -> log2(TPM + 1).

Layout (docs/Expression_mRNA_Pipeline.md): a ``# gene-model: GENCODE v36`` line, the header
``gene_id gene_name gene_type unstranded stranded_first stranded_second tpm_unstranded
fpkm_unstranded fpkm_uq_unstranded``, four STAR summary rows (``N_unmapped``,
``N_multimapping``, ``N_noFeature``, ``N_ambiguous``) and then one row per gene with a
versioned Ensembl ID (``ENSG00000000003.15``; PAR copies end in ``_PAR_Y``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from wsirisk.gdc.textio import head_lines, read_tsv, require, to_number

STAR_COLUMNS = ["gene_id", "gene_name", "tpm_unstranded"]


def strip_version(gene_id: str) -> str:
    """``ENSG00000000003.15`` -> ``ENSG00000000003``; ``ENSG...5.20_PAR_Y`` -> ``ENSG...5``."""
    return str(gene_id).split(".", 1)[0].split("_", 1)[0]


def is_star_counts(path: Path) -> bool:
    """True for a STAR counts file (gene-model line or its header columns)."""
    lines = head_lines(path, 3)
    if not lines:
        return False
    header = lines[1] if lines[0].startswith("#") and len(lines) > 1 else lines[0]
    return lines[0].startswith("# gene-model") or set(STAR_COLUMNS) <= set(header.split("\t"))


def read_star_counts(path: Path) -> pd.DataFrame:
    """Gene rows of a STAR counts file (``N_*`` summary rows dropped), with ``ensembl_id``."""
    path = Path(path)
    table = read_tsv(path)
    require(table, STAR_COLUMNS, path, "STAR counts file")
    table = table[~table["gene_id"].str.startswith("N_")].copy()
    if table.empty:
        raise ValueError(f"{path}: STAR counts file has no gene rows")
    table["ensembl_id"] = table["gene_id"].map(strip_version)
    table["tpm_unstranded"] = to_number(table["tpm_unstranded"], f"{path}: column tpm_unstranded")
    if table["tpm_unstranded"].lt(0).any():
        raise ValueError(f"{path}: column tpm_unstranded has negative values")
    return table.reset_index(drop=True)


def star_log2_tpm(path: Path) -> pd.Series:
    """log2(TPM + 1) per gene symbol (TPM of rows sharing a symbol summed first).

    Rows without a gene name fall back to the unversioned Ensembl ID; missing TPM -> NaN.
    """
    table = read_star_counts(path)
    symbol = table["gene_name"].str.strip()
    symbol = symbol.where(symbol != "", table["ensembl_id"])
    tpm = table["tpm_unstranded"].groupby(symbol.to_numpy()).sum(min_count=1)
    out = np.log2(tpm + 1.0)
    out.index.name = "gene"
    out.name = "log2_tpm1"
    return out


def star_matrix(paths: Mapping[str, Path]) -> pd.DataFrame:
    """Gene symbol x sample matrix of log2(TPM + 1) from ``{sample_id: path}``."""
    columns = {sample: star_log2_tpm(path) for sample, path in paths.items()}
    if not columns:
        return pd.DataFrame(dtype=float)
    return pd.DataFrame(columns).sort_index()
