"""Feature-level multimodal cohorts with known truth (no pixels), read by the real trainer.

Each patient ``i`` draws from its own seeded generators (``default_rng([seed, i, k])``), so a
patient does not depend on the cohort size.

**Pathology.** One slide per patient: a bag of ``N`` patch features, ``N`` log-uniform on
``[bag_min, bag_max]``, on a 256 px tile grid at 20x (level-0 0.5 um/px, so 128 um per tile).
The tissue is a blob of ``N`` grid cells, stored in row-major order (as tiling writes them).
Background cells belong to one of ``n_tissue_types`` tissue types laid out as Voronoi regions
around 3-8 random seed cells; a background patch is ``centre[type] + stain + noise`` (``stain``
one offset per slide, ``noise`` ~ N(0, noise_sd^2 I)). A rare **phenotype** covers
``k = round(p N)`` cells, with prevalence ``p`` ~ U(prevalence_min, prevalence_max). A phenotype
patch is ``centre[t] + shift * u + stain + noise``: ``u`` is a unit direction orthogonal to every
tissue-type centre and ``t`` a tissue type drawn independently of the cell, so the phenotype is a
direction in feature space. By default ``shift`` is the expected distance between two
tissue-type centres (``centre_sd * sqrt(2 D)``, 11.3 noise SDs at D = 64): the phenotype is as
distinct from its tissue as two tissue types are from each other. (At 4 SDs, ABMIL did not learn
a prevalence-only cohort in 15 epochs on a separate seed: the pilot in
docs/benchmarks-models.md.) Its **arrangement** is clustered (1-3 compact discs) or scattered
(uniform over the tissue), each with probability 1/2. The phenotype patches' features (type,
noise) are drawn apart from their positions, and the background from its own generator: the
two arrangements of a patient have the same coordinates, the same background and the same
multiset of phenotype patches; only *which cells* carry the phenotype differs. A
permutation-invariant model (mean, attention pooling) cannot see the arrangement.

**Genomics.** Six category factors ``f_c`` ~ N(0, 1) (``layout.CATEGORIES``), each carried by
``genes_per_group`` genes: ``<GENE>_rnaseq = a f_c + sqrt(1 - a^2) e`` (loading ``|a|`` in
[0.5, 0.9], fixed per gene), and for some genes a GISTIC-like ``<GENE>_cnv`` (-2..2) and a
``<GENE>_mut`` (0/1) following the same factor. Symbols use the demo's prefixes (TSG, ONC, PK,
CDM, TF, CGF); the omics store is built by the real ``wsirisk omics`` builder from a
PORPOISE/MCAT table and a signatures file.

**Risk** (log-hazard), with ``w = (w_prev, w_gen, w_int, w_spat)``::

    r = w_prev * z + w_gen * g + w_int * z * h + w_spat * s
    z = (p - mean) / sd           prevalence, standardised with the uniform's own moments
    g = (f_ONC - f_TSG) / sqrt 2  genomic risk score (oncogenes up, tumour suppressors down)
    h = f_CGF                     the cytokine / growth-factor score that modulates the phenotype
    s = +1 clustered, -1 scattered

``z`` (uniform, centred) and ``h`` (normal) are independent and symmetric about 0, so given the
slide alone the interaction ``z h`` is symmetric about 0, and so is it given the omics alone:
no function of one modality predicts its sign. (Its *variance* depends on ``|z|`` and ``|h|``;
with survival times ``log T = const - r + Gumbel``, a unimodal predictor's concordance on the
interaction term is 1/2 in expectation without censoring.) Only a model that estimates both
``z`` from the bag and ``h`` from the omics, and multiplies them, can use the term.

**Survival.** A Cox model with exponential baseline hazard (median 40 months) and independent
exponential censoring tuned to 40 % censored: :func:`wsirisk.demo.cohort.simulate_survival`.

**Artifacts** under ``out_dir`` (each written atomically; ``cohort.json`` last, it marks the
cohort complete): ``features/<slide>.zarr`` (the features-store format:
``features`` float16 (N, D), ``coords`` int64 level-0 px, attrs ``slide_id``, ``patient_id``,
``complete``, ``status``, ``dim``, ``mpp``), ``omics_table.csv`` + ``signatures.csv`` ->
``omics.zarr`` + ``qc/omics.tsv``, ``splits.zarr`` (stratified folds), and ``truth.csv`` (the
latents, each risk term, ``oracle_risk`` and the unimodal oracles ``oracle_pathology`` =
E[r | slide] and ``oracle_omics`` = E[r | omics]).

    python -m wsirisk.benchmark.cohort --out results/bench/mm-cohort --n-patients 200
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from wsirisk.demo.cohort import GENE_FAMILIES, simulate_survival
from wsirisk.layout import CATEGORIES, FEAT_COORDS, FEAT_FEATURES, category_slug
from wsirisk.store import atomic_group, write_json, write_text

TILE_PX = 256  # level-0 pixels per tile at 20x
MPP_20X = 0.5  # level-0 um/px: 128 um per tile
CATALOG_SEED = 20251127  # fixed catalog: tissue-type centres, phenotype direction, gene loadings
WEIGHT_NAMES = ("prevalence", "genomic", "interaction", "spatial")
GENOMIC_UP, GENOMIC_DOWN = "Oncogenes", "Tumor Suppressor Genes"  # g = (f_up - f_down) / sqrt 2
INTERACTION_GROUP = "Cytokines and Growth Factors"  # h
COHORT_FORMAT = "wsirisk-benchmark-cohort/2"
ID_PREFIX = "MMB"


@dataclass(frozen=True)
class CohortSpec:
    """Everything that defines a cohort: same spec -> same files."""

    n_patients: int = 200
    seed: int = 0
    feature_dim: int = 64
    bag_min: int = 1000
    bag_max: int = 20000
    weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)  # see WEIGHT_NAMES
    prevalence_min: float = 0.01
    prevalence_max: float = 0.10
    phenotype_shift: float | None = None  # along u, in noise SDs; None: see __post_init__
    noise_sd: float = 1.0
    stain_sd: float = 0.1  # per-slide offset, per feature
    centre_sd: float = 1.0  # spread of the tissue-type centres, per feature
    n_tissue_types: int = 6
    genes_per_group: int = 10

    def __post_init__(self) -> None:
        checks = {
            "n_patients": self.n_patients >= 2,
            "feature_dim": self.feature_dim > self.n_tissue_types,
            "bag_min": 1 <= self.bag_min <= self.bag_max,
            "weights": len(self.weights) == 4 and all(map(math.isfinite, self.weights)),
            "prevalence_min": 0 < self.prevalence_min < self.prevalence_max <= 1,
            "n_tissue_types": self.n_tissue_types >= 1,
            "genes_per_group": self.genes_per_group >= 1,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"CohortSpec: invalid {bad[0]!r} ({getattr(self, bad[0])!r})")
        object.__setattr__(self, "weights", tuple(float(w) for w in self.weights))
        if self.phenotype_shift is None:  # as far as two tissue types' centres are apart
            shift = self.centre_sd * math.sqrt(2 * self.feature_dim) / self.noise_sd
            object.__setattr__(self, "phenotype_shift", round(shift, 4))

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "weights": list(self.weights)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> CohortSpec:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"CohortSpec: unknown key(s) {unknown}")
        return cls(**{**values, "weights": tuple(values.get("weights", cls.weights))})


# ---- fixed catalog ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Gene:
    symbol: str
    category: str
    loading: float  # signed, |loading| in [0.5, 0.9]
    has_cnv: bool
    has_mut: bool


@dataclass(frozen=True)
class Catalog:
    centres: np.ndarray  # (n_types, D) tissue-type centres
    direction: np.ndarray  # (D,) unit phenotype direction, orthogonal to every centre
    genes: list[Gene]


def catalog(spec: CohortSpec) -> Catalog:
    """Tissue-type centres, the phenotype direction and the genes (fixed for a dim / size)."""
    rng = np.random.default_rng([CATALOG_SEED, spec.feature_dim, spec.n_tissue_types])
    centres = rng.normal(0.0, spec.centre_sd, (spec.n_tissue_types, spec.feature_dim))
    basis, _ = np.linalg.qr(centres.T)  # (D, n_types) orthonormal basis of the centres' span
    u = rng.standard_normal(spec.feature_dim)
    u -= basis @ (basis.T @ u)
    genes = []
    grng = np.random.default_rng([CATALOG_SEED, spec.genes_per_group])
    for category in CATEGORIES:
        prefix = GENE_FAMILIES[category][0]
        for j in range(1, spec.genes_per_group + 1):
            sign = 1.0 if grng.random() < 0.7 else -1.0
            genes.append(
                Gene(
                    symbol=f"{prefix}{j:02d}",
                    category=category,
                    loading=sign * float(grng.uniform(0.5, 0.9)),
                    has_cnv=bool(grng.random() < 0.4),
                    has_mut=bool(grng.random() < 0.3),
                )
            )
    return Catalog(centres, u / np.linalg.norm(u), genes)


# ---- per-patient latents and risk ----------------------------------------------------------
def _rng(spec: CohortSpec, i: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([spec.seed, i, stream])


def prevalence_z(spec: CohortSpec, p: np.ndarray) -> np.ndarray:
    """Standardise prevalence with the uniform's population mean and SD (centred, symmetric)."""
    lo, hi = spec.prevalence_min, spec.prevalence_max
    return (np.asarray(p, dtype=np.float64) - (lo + hi) / 2) / ((hi - lo) / math.sqrt(12.0))


def latents(spec: CohortSpec) -> pd.DataFrame:
    """One row per patient: bag size, prevalence, arrangement, category factors, risk terms."""
    rows = []
    for i in range(spec.n_patients):
        rng = _rng(spec, i, 1)
        log_n = rng.uniform(math.log(spec.bag_min), math.log(spec.bag_max + 1))
        n = int(min(spec.bag_max, max(spec.bag_min, math.floor(math.exp(log_n)))))
        p = float(rng.uniform(spec.prevalence_min, spec.prevalence_max))
        clustered = bool(rng.random() < 0.5)
        factors = rng.standard_normal(len(CATEGORIES))
        row = {
            "case_id": f"{ID_PREFIX}-{i:04d}",
            "slide_id": f"{ID_PREFIX}-{i:04d}-DX1",
            "n_patches": n,
            "prevalence_latent": p,
            "n_phenotype": max(1, int(round(p * n))),
            "clustered": int(clustered),
        }
        row.update(
            {
                f"factor_{category_slug(c)}": float(f)
                for c, f in zip(CATEGORIES, factors, strict=True)
            }
        )
        rows.append(row)
    table = pd.DataFrame(rows)
    return table.join(risk_terms(spec, table))


def risk_terms(spec: CohortSpec, table: pd.DataFrame) -> pd.DataFrame:
    """The four terms, the oracle risk, the unimodal oracles (E[r | one modality]) and the
    additive oracle (their sum: the best a model without the product term can do)."""
    z = prevalence_z(spec, table["prevalence_latent"].to_numpy())
    up, down = (
        table[f"factor_{category_slug(GENOMIC_UP)}"],
        table[f"factor_{category_slug(GENOMIC_DOWN)}"],
    )
    g = ((up - down) / math.sqrt(2.0)).to_numpy()
    h = table[f"factor_{category_slug(INTERACTION_GROUP)}"].to_numpy()
    s = np.where(table["clustered"].to_numpy() == 1, 1.0, -1.0)
    w_prev, w_gen, w_int, w_spat = spec.weights
    terms = pd.DataFrame(
        {
            "prevalence_z": z,
            "genomic_score": g,
            "interaction_score": h,
            "spatial_sign": s,
            "term_prevalence": w_prev * z,
            "term_genomic": w_gen * g,
            "term_interaction": w_int * z * h,
            "term_spatial": w_spat * s,
        }
    )
    terms["oracle_risk"] = terms[[f"term_{n}" for n in WEIGHT_NAMES]].sum(axis=1)
    terms["oracle_pathology"] = terms["term_prevalence"] + terms["term_spatial"]  # E[h] = 0
    terms["oracle_omics"] = terms["term_genomic"]  # E[z] = E[s] = 0
    terms["oracle_additive"] = terms["oracle_pathology"] + terms["oracle_omics"]  # no product
    return terms


# ---- genomics --------------------------------------------------------------------------------
def omics_table(spec: CohortSpec, table: pd.DataFrame, genes: list[Gene]) -> pd.DataFrame:
    """Gene columns (``<GENE>_rnaseq`` / ``_cnv`` / ``_mut``) driven by the category factors."""
    rows = []
    for i in range(spec.n_patients):
        rng = _rng(spec, i, 3)
        noise = rng.standard_normal((len(genes), 2))
        uniform = rng.random(len(genes))
        row: dict[str, float] = {}
        for j, gene in enumerate(genes):
            f = float(table.at[i, f"factor_{category_slug(gene.category)}"])
            a = gene.loading
            row[f"{gene.symbol}_rnaseq"] = round(a * f + math.sqrt(1 - a * a) * noise[j, 0], 4)
            sign = math.copysign(1.0, a)
            if gene.has_cnv:
                copy = 0.7 * sign * f + 0.7 * noise[j, 1]
                row[f"{gene.symbol}_cnv"] = int(np.digitize(copy, [-1.4, -0.7, 0.7, 1.4])) - 2
            if gene.has_mut:
                rate = 1.0 / (1.0 + math.exp(-(1.2 * sign * f - 2.2)))
                row[f"{gene.symbol}_mut"] = int(uniform[j] < rate)
        rows.append(row)
    return pd.DataFrame(rows)


def signatures_table(genes: list[Gene]) -> pd.DataFrame:
    columns = {c: [g.symbol for g in genes if g.category == c] for c in CATEGORIES}
    depth = max(len(v) for v in columns.values())
    return pd.DataFrame({c: v + [""] * (depth - len(v)) for c, v in columns.items()})


# ---- pathology -------------------------------------------------------------------------------
def tissue_cells(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 2) int64 grid cells (col, row) of a ragged elliptical blob, in row-major order."""
    aspect = rng.uniform(0.7, 1.4)
    phases = rng.uniform(0, 2 * math.pi, 2)
    radius = math.sqrt(n / math.pi)
    half_w = math.ceil(1.6 * radius * aspect) + 2
    half_h = math.ceil(1.6 * radius / aspect) + 2
    ys, xs = np.mgrid[-half_h : half_h + 1, -half_w : half_w + 1]
    theta = np.arctan2(ys, xs)
    wobble = 1 + 0.15 * np.sin(2 * theta + phases[0]) + 0.1 * np.sin(3 * theta + phases[1])
    dist = np.hypot(xs / aspect, ys * aspect) / wobble + rng.uniform(0, 0.7, xs.shape)
    keep = np.argsort(dist.ravel(), kind="stable")[:n]
    cells = np.stack([xs.ravel()[keep] + half_w, ys.ravel()[keep] + half_h], axis=1)
    return cells[np.lexsort((cells[:, 0], cells[:, 1]))].astype(np.int64)


def phenotype_cells(
    rng: np.random.Generator, cells: np.ndarray, k: int, clustered: bool
) -> np.ndarray:
    """Sorted indices of the ``k`` phenotype cells: 1-3 compact discs, or uniform."""
    if not clustered:
        return np.sort(rng.choice(len(cells), size=k, replace=False))
    n_clusters = int(rng.integers(1, 4))
    seeds = cells[rng.choice(len(cells), size=n_clusters, replace=False)]
    d = np.min(np.linalg.norm(cells[:, None, :] - seeds[None, :, :], axis=2), axis=1)
    d = d + rng.uniform(0, 0.5, len(cells))  # ragged cluster borders, no ties
    return np.sort(np.argsort(d, kind="stable")[:k])


@dataclass
class Bag:
    features: np.ndarray  # (N, D) float16
    coords: np.ndarray  # (N, 2) int64 level-0 px
    phenotype: np.ndarray  # (N,) bool


def patient_bag(
    spec: CohortSpec, cat: Catalog, i: int, row: pd.Series, clustered: bool | None = None
) -> Bag:
    """Patient ``i``'s bag. ``clustered`` overrides the arrangement (same patient otherwise)."""
    n, k = int(row["n_patches"]), int(row["n_phenotype"])
    arrangement = bool(row["clustered"]) if clustered is None else clustered
    tissue_rng = _rng(spec, i, 2)
    cells = tissue_cells(tissue_rng, n)
    n_seeds = int(tissue_rng.integers(3, 9))
    seeds = cells[tissue_rng.choice(n, size=min(n, n_seeds), replace=False)]
    seed_types = tissue_rng.integers(0, spec.n_tissue_types, len(seeds))
    nearest = np.argmin(np.linalg.norm(cells[:, None, :] - seeds[None, :, :], axis=2), axis=1)
    types = seed_types[nearest]
    origin = tissue_rng.integers(0, 200, 2) * TILE_PX
    feature_rng = _rng(spec, i, 4)  # background and phenotype features, apart from positions
    stain = feature_rng.normal(0.0, spec.stain_sd, spec.feature_dim)
    x = (
        cat.centres[types]
        + stain
        + spec.noise_sd * feature_rng.standard_normal((n, spec.feature_dim))
    )
    pheno_types = feature_rng.integers(0, spec.n_tissue_types, k)
    pheno = (
        cat.centres[pheno_types]
        + spec.phenotype_shift * spec.noise_sd * cat.direction
        + stain
        + spec.noise_sd * feature_rng.standard_normal((k, spec.feature_dim))
    )
    where = phenotype_cells(_rng(spec, i, 5), cells, k, arrangement)
    x[where] = pheno
    mask = np.zeros(n, dtype=bool)
    mask[where] = True
    return Bag(x.astype(np.float16), cells * TILE_PX + origin, mask)


def nearest_neighbour_um(coords_px: np.ndarray) -> float:
    """Mean distance (um) from each point to its nearest other point (NaN below 2 points)."""
    if len(coords_px) < 2:
        return float("nan")
    from scipy.spatial import cKDTree

    d, _ = cKDTree(coords_px * MPP_20X).query(coords_px * MPP_20X, k=2)
    return float(d[:, 1].mean())


def write_features_store(path: Path, bag: Bag, slide_id: str, patient_id: str) -> None:
    """A complete features store (the format ``wsirisk extract`` writes)."""
    attrs = {
        "status": "ok",
        "reason": "",
        "slide_id": slide_id,
        "patient_id": patient_id,
        "complete": True,
        "dim": int(bag.features.shape[1]),
        "n_tiles": int(bag.features.shape[0]),
        "mpp": MPP_20X,
        "tile_size_px": TILE_PX,
        "encoder": "synthetic-benchmark",
        "tiles_store": "",
        "generator": "wsirisk.benchmark.cohort",
    }
    with atomic_group(path, attrs) as group:
        group.create_array(FEAT_FEATURES, data=bag.features, chunks=bag.features.shape)
        group.create_array(FEAT_COORDS, data=bag.coords, chunks=bag.coords.shape)


# ---- the whole cohort ------------------------------------------------------------------------
def simulate(spec: CohortSpec) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(truth without bag statistics, omics gene columns): no bag is generated here."""
    truth = latents(spec)
    rngs = [_rng(spec, i, 6) for i in range(spec.n_patients)]
    truth = truth.join(simulate_survival(rngs, truth["oracle_risk"].to_numpy()))
    return truth, omics_table(spec, truth, catalog(spec).genes)


def _cindex(truth: pd.DataFrame, column: str) -> float | None:
    from wsirisk.training.metrics import cindex

    value = cindex(truth["survival_months"], truth[column], truth["censorship"]).value
    return None if value is None else round(value, 4)


def write_cohort(spec: CohortSpec, out_dir: Path, n_folds: int = 5) -> dict[str, Any]:
    """Write every artifact of the cohort under ``out_dir``; return the summary (cohort.json)."""
    from wsirisk.omics.build import build_omics
    from wsirisk.training.splits import make_folds

    started = time.perf_counter()
    out_dir = Path(out_dir)
    truth, genes = simulate(spec)
    cat = catalog(spec)
    stats = []
    for i, row in truth.iterrows():
        bag = patient_bag(spec, cat, int(i), row)
        path = out_dir / "features" / f"{row['slide_id']}.zarr"
        write_features_store(path, bag, row["slide_id"], row["case_id"])
        stats.append(
            {
                "prevalence": float(bag.phenotype.mean()),
                "cluster_nn_um": nearest_neighbour_um(bag.coords[bag.phenotype]),
            }
        )
    truth = truth.join(pd.DataFrame(stats))
    ids = truth[["case_id", "slide_id", "survival_months", "censorship"]]
    write_text(out_dir / "omics_table.csv", pd.concat([ids, genes], axis=1).to_csv(index=False))
    write_text(out_dir / "signatures.csv", signatures_table(cat.genes).to_csv(index=False))
    build_omics(
        out_dir / "omics_table.csv",
        out_dir / "signatures.csv",
        out_dir / "omics.zarr",
        out_dir / "qc" / "omics.tsv",
    )
    folds = make_folds(
        list(truth["case_id"]),
        truth["survival_months"].to_numpy(),
        truth["censorship"].to_numpy(),
        n_folds,
        spec.seed,
    )
    attrs = {"n_folds": n_folds, "seed": spec.seed, "n_patients": spec.n_patients}
    with atomic_group(out_dir / "splits.zarr", {**attrs, "source": "made", "folds": folds}):
        pass
    write_text(out_dir / "truth.csv", truth.to_csv(index=False, float_format="%.6g"))
    summary = {
        "format": COHORT_FORMAT,
        "spec": spec.to_dict(),
        "n_folds": n_folds,
        "n_patients": spec.n_patients,
        "events": int((truth["censorship"] == 0).sum()),
        "censored_share": round(float(truth["censorship"].mean()), 4),
        "patches_total": int(truth["n_patches"].sum()),
        "patches_median": int(truth["n_patches"].median()),
        "oracle_cindex": _cindex(truth, "oracle_risk"),
        "oracle_pathology_cindex": _cindex(truth, "oracle_pathology"),
        "oracle_omics_cindex": _cindex(truth, "oracle_omics"),
        "oracle_additive_cindex": _cindex(truth, "oracle_additive"),
        "term_cindex": {n: _cindex(truth, f"term_{n}") for n in WEIGHT_NAMES},
        "seconds": round(time.perf_counter() - started, 1),
    }
    write_json(out_dir / "cohort.json", summary)
    return summary


def read_summary(out_dir: Path) -> dict[str, Any] | None:
    """The cohort.json of a complete cohort, or None."""
    path = Path(out_dir) / "cohort.json"
    return json.loads(path.read_text()) if path.is_file() else None


def build_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="cohort directory")
    parser.add_argument("--n-patients", type=int, default=CohortSpec.n_patients)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--feature-dim", type=int, default=CohortSpec.feature_dim)
    parser.add_argument("--bag-min", type=int, default=CohortSpec.bag_min)
    parser.add_argument("--bag-max", type=int, default=CohortSpec.bag_max)
    parser.add_argument(
        "--weights", default="1,1,1,1", help="prevalence,genomic,interaction,spatial"
    )
    parser.add_argument("--n-folds", type=int, default=5)


def parse_weights(text: str) -> tuple[float, float, float, float]:
    values = [float(v) for v in text.split(",")]
    if len(values) != 4:
        raise ValueError(f"--weights needs 4 numbers ({','.join(WEIGHT_NAMES)}), got {text!r}")
    return values[0], values[1], values[2], values[3]


def run(args: argparse.Namespace) -> int:
    spec = CohortSpec(
        n_patients=args.n_patients,
        seed=args.seed,
        feature_dim=args.feature_dim,
        bag_min=args.bag_min,
        bag_max=args.bag_max,
        weights=parse_weights(args.weights),
    )
    print(json.dumps(write_cohort(spec, args.out, args.n_folds), sort_keys=True))
    return 0


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    build_parser(ap)
    sys.exit(run(ap.parse_args()))
