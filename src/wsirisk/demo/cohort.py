"""Synthetic omics and survival for the demo cohort (no images here).

Per patient: a pathology latent (share of tissue tiles carrying the planted pattern, uniform on
[0, MAX_PATTERN_SHARE]) and a gene latent ``g`` ~ N(0, 1) carried by a few genes.  True risk is
``PATTERN_WEIGHT * z(pattern_share) + GENE_WEIGHT * g``; event times are exponential with a
baseline median of BASELINE_MEDIAN_MONTHS; independent exponential censoring is tuned so the
expected censored share is CENSORED_SHARE.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from wsirisk.layout import CATEGORIES

MAX_PATTERN_SHARE = 0.3
PATTERN_WEIGHT = 1.0  # log-hazard per SD of the pattern share
GENE_WEIGHT = 1.0  # log-hazard per SD of the gene latent
BASELINE_MEDIAN_MONTHS = 40.0
CENSORED_SHARE = 0.4
MIN_MONTHS = 0.1

# category -> (symbol prefix, number of genes); symbols are PREFIX01, PREFIX02, ...
GENE_FAMILIES = {
    "Tumor Suppressor Genes": ("TSG", 8),
    "Oncogenes": ("ONC", 10),
    "Protein Kinases": ("PK", 12),
    "Cell Differentiation Markers": ("CDM", 10),
    "Transcription Factors": ("TF", 10),
    "Cytokines and Growth Factors": ("CGF", 8),
}
CATALOG_SEED = 20240501  # the gene catalog (which genes have cnv/mut, loadings) is fixed
# genes whose values carry the gene latent g (column -> sign / kind)
RISK_COLUMNS = {
    "ONC01_rnaseq": +1.0,
    "TSG01_rnaseq": -1.0,
    "PK01_cnv": +1.0,
    "TSG02_mut": +1.0,
}


@dataclass(frozen=True)
class Gene:
    symbol: str
    category: str
    loading: float  # weight of the category factor in its expression
    log_mean: float  # mean log-expression
    has_cnv: bool
    has_mut: bool
    mut_rate: float


def gene_catalog() -> list[Gene]:
    """The fixed synthetic genes (same for every seed and cohort size)."""
    rng = np.random.default_rng(CATALOG_SEED)
    genes = []
    for category in CATEGORIES:
        prefix, count = GENE_FAMILIES[category]
        for number in range(1, count + 1):
            symbol = f"{prefix}{number:02d}"
            genes.append(
                Gene(
                    symbol=symbol,
                    category=category,
                    loading=float(rng.uniform(0.2, 0.8)),
                    log_mean=float(rng.uniform(1.0, 6.0)),
                    has_cnv=bool(rng.random() < 0.4) or f"{symbol}_cnv" in RISK_COLUMNS,
                    has_mut=bool(rng.random() < 0.3) or f"{symbol}_mut" in RISK_COLUMNS,
                    mut_rate=float(rng.uniform(0.03, 0.2)),
                )
            )
    return genes


def signatures_frame(genes: list[Gene]) -> pd.DataFrame:
    """Six category columns of gene symbols (ragged columns padded with empty cells)."""
    columns = {c: [g.symbol for g in genes if g.category == c] for c in CATEGORIES}
    depth = max(len(symbols) for symbols in columns.values())
    return pd.DataFrame({c: s + [""] * (depth - len(s)) for c, s in columns.items()})


def pattern_z(pattern_share: np.ndarray) -> np.ndarray:
    """Standardise a share uniform on [0, MAX_PATTERN_SHARE] (population moments)."""
    return (np.asarray(pattern_share) / MAX_PATTERN_SHARE - 0.5) * np.sqrt(12.0)


def _cnv_levels(value: np.ndarray) -> np.ndarray:
    """Continuous copy-number signal -> GISTIC-like -2..2 (mostly 0)."""
    return np.digitize(value, [-2.0, -1.1, 1.1, 2.0]).astype(np.int64) - 2


def omics_values(
    rngs: list[np.random.Generator], gene_latent: np.ndarray, genes: list[Gene]
) -> pd.DataFrame:
    """Feature columns (<GENE>_rnaseq z-scored, _cnv ints, _mut 0/1), one row per patient."""
    n = len(gene_latent)
    factors = np.stack([rng.standard_normal(len(CATEGORIES)) for rng in rngs])
    noise = np.stack([rng.standard_normal((len(genes), 3)) for rng in rngs])  # (n, genes, 3)
    uniform = np.stack([rng.random(len(genes)) for rng in rngs])
    columns: dict[str, np.ndarray] = {}
    for j, gene in enumerate(genes):
        factor = factors[:, CATEGORIES.index(gene.category)]
        signal = gene.loading * factor + noise[:, j, 0]
        sign = RISK_COLUMNS.get(f"{gene.symbol}_rnaseq")
        if sign is not None:
            signal = 1.5 * sign * gene_latent + 0.5 * noise[:, j, 0]
        log_expression = np.log2(1.0 + np.exp(gene.log_mean + 0.7 * signal))
        spread = log_expression.std() if n > 1 else 1.0
        columns[f"{gene.symbol}_rnaseq"] = (log_expression - log_expression.mean()) / (
            spread or 1.0
        )
        if gene.has_cnv:
            sign = RISK_COLUMNS.get(f"{gene.symbol}_cnv")
            copy = 0.6 * factor + noise[:, j, 1]
            if sign is not None:
                copy = 1.6 * sign * gene_latent + 0.4 * noise[:, j, 1]
            columns[f"{gene.symbol}_cnv"] = _cnv_levels(copy)
        if gene.has_mut:
            sign = RISK_COLUMNS.get(f"{gene.symbol}_mut")
            rate = np.full(n, gene.mut_rate)
            if sign is not None:
                rate = 1.0 / (1.0 + np.exp(-(2.0 * sign * gene_latent - 1.0)))
            columns[f"{gene.symbol}_mut"] = (uniform[:, j] < rate).astype(np.int64)
    return pd.DataFrame(columns)


def censoring_rate(hazard: np.ndarray, target_share: float = CENSORED_SHARE) -> float:
    """Exponential censoring rate mu with mean(mu / (mu + hazard_i)) = target_share."""
    low, high = 1e-8, 1e4
    for _ in range(200):
        mid = np.sqrt(low * high)
        if np.mean(mid / (mid + hazard)) < target_share:
            low = mid
        else:
            high = mid
    return float(np.sqrt(low * high))


def simulate_survival(rngs: list[np.random.Generator], risk: np.ndarray) -> pd.DataFrame:
    """Event and censoring times (months) and the observed (survival_months, censorship)."""
    baseline = np.log(2.0) / BASELINE_MEDIAN_MONTHS
    hazard = baseline * np.exp(risk)
    mu = censoring_rate(hazard)
    draws = np.stack([rng.random(2) for rng in rngs])
    event = -np.log1p(-draws[:, 0]) / hazard
    censor = -np.log1p(-draws[:, 1]) / mu
    observed = np.maximum(np.minimum(event, censor), MIN_MONTHS)
    return pd.DataFrame(
        {
            "survival_months": np.round(observed, 2),
            "censorship": (censor < event).astype(np.int64),
            "event_months": event,
            "censor_months": censor,
        }
    )


def simulate_cohort(
    seed: int, n_patients: int, patient_rngs: list[np.random.Generator] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(latents + survival per patient, omics features per patient) for ``n_patients``.

    ``patient_rngs`` (one per patient) defaults to ``default_rng([seed, i, 1])``; the latents
    of patient i do not depend on the cohort size.
    """
    if patient_rngs is None:
        patient_rngs = [np.random.default_rng([seed, i, 1]) for i in range(n_patients)]
    latent = np.stack([rng.random(2) for rng in patient_rngs])
    pattern_share = MAX_PATTERN_SHARE * latent[:, 0]
    gene_latent = np.array([rng.standard_normal() for rng in patient_rngs])
    risk = PATTERN_WEIGHT * pattern_z(pattern_share) + GENE_WEIGHT * gene_latent
    truth = pd.DataFrame(
        {"true_risk": risk, "pattern_share": pattern_share, "gene_latent": gene_latent}
    )
    truth = pd.concat([truth, simulate_survival(patient_rngs, risk)], axis=1)
    return truth, omics_values(patient_rngs, gene_latent, gene_catalog())
