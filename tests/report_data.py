"""Synthetic trained runs for the report tests: fold stores written by the trainer's own writers
(``fold_attrs`` + ``write_fold_store``) from known predictions, without training anything."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from wsirisk.layout import Layout
from wsirisk.store import atomic_group, write_json, write_text
from wsirisk.training.data import SLUGS, Bins, FoldData, OmicsScaler, Sample
from wsirisk.training.train import fold_attrs, write_fold_store
from wsirisk.training.trainer import FoldResult, Prediction, TrainOptions

N_PATIENTS = 50
N_FOLDS = 5
N_BINS = 4
ALL_CENSORED_FOLD = 1  # no death among its validation patients: C-index undefined
REFERENCE_CSV = """source,backbone,model,modalities,cohort,cindex_mean,cindex_std
ME-Mamba paper Table 1,resnet50,SNN,genomics,BLCA,0.6339,0.0509
ME-Mamba paper Table 1,resnet50,SNN,genomics,LUAD,0.6171,0.0411
ME-Mamba paper Table 1,resnet50,ME-Mamba,genomics+pathology,BLCA,0.6993,0.0270
ME-Mamba paper Table 1,resnet50,ME-Mamba,genomics+pathology,LUAD,0.7014,0.0236
ME-Mamba paper Table 1,uni,ME-Mamba,genomics+pathology,BLCA,0.6583,0.0231
ME-Mamba paper Table 1,uni,ME-Mamba,genomics+pathology,LUAD,0.6695,0.0490
"""


def cohort_survival(seed: int = 0) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Patients, latent risk, months, censorship (fold ALL_CENSORED_FOLD has no deaths)."""
    rng = np.random.default_rng(seed)
    patients = [f"TCGA-XX-{i:04d}" for i in range(N_PATIENTS)]
    z = rng.normal(size=N_PATIENTS)
    death = 30 * np.exp(-z) * rng.lognormal(sigma=0.3, size=N_PATIENTS)
    censor = rng.uniform(5, 90, size=N_PATIENTS)
    months = np.round(np.minimum(death, censor) + 0.5, 2)
    censorship = (censor < death).astype(int)
    fold_size = N_PATIENTS // N_FOLDS
    censorship[ALL_CENSORED_FOLD * fold_size : (ALL_CENSORED_FOLD + 1) * fold_size] = 1
    return patients, z, months, censorship


def config(root: Path, cohort: str = "tcga_blca", reference: str | None = None) -> dict[str, Any]:
    return {
        "cohort": cohort,
        "results_dir": str(root / "results"),
        "data_dir": str(root / "data"),
        "demo": {"enabled": False},
        "splits": {"n_folds": N_FOLDS, "seed": 0},
        "features": {"encoder": "resnet50_trunc", "weights": "random"},
        "train": {"model": "me_mamba", "models": ["me_mamba", "snn"]},
        "report": {"reference_table": reference},
    }


def write_reference(root: Path) -> Path:
    path = root / "me_mamba_table1.csv"
    path.write_text(REFERENCE_CSV)
    return path


def _curves(score: np.ndarray) -> np.ndarray:
    """Discrete-time survival curves whose hazard grows with ``score`` (S_k = prod (1 - h))."""
    hazards = 1.0 / (1.0 + np.exp(-(score[:, None] + np.linspace(-1.5, 0.5, N_BINS)[None, :])))
    return np.cumprod(1.0 - hazards, axis=1)


def write_run(
    cfg: dict[str, Any],
    model: str,
    embeddings: tuple[str, ...],
    reversed_folds: tuple[int, ...] = (),
    no_pathology: tuple[str, ...] = (),
    seed: int = 1,
) -> Layout:
    """Five fold stores of ``model``: risk = latent risk + noise (negated on ``reversed_folds``)."""
    lay = Layout.from_config(cfg)
    patients, z, months, censorship = cohort_survival()
    rng = np.random.default_rng(seed)
    fold_size = N_PATIENTS // N_FOLDS
    opts = TrainOptions(model=model, epochs=2, n_bins=N_BINS)
    for k in range(N_FOLDS):
        val = np.arange(k * fold_size, (k + 1) * fold_size)
        train = np.setdiff1d(np.arange(N_PATIENTS), val)

        def sample(i: int) -> Sample:
            return Sample(patients[i], float(months[i]), int(censorship[i]), 0, None)

        score = z[val] + rng.normal(scale=0.2, size=val.size)
        if k in reversed_folds:
            score = -score
        survival = _curves(score).astype(np.float32)
        risk = -survival.sum(axis=1)
        emb = {name: rng.normal(size=(val.size, 8)).astype(np.float32) for name in embeddings}
        if k == 0 and no_pathology and "pathology" in emb:
            emb["pathology"][0] = np.nan  # the first patient had no slide: no pathology embedding
        pred = Prediction(risk.astype(np.float32), survival, {}, emb)
        scaler = OmicsScaler(
            {s: np.zeros(2, np.float32) for s in SLUGS},
            {s: np.ones(2, np.float32) for s in SLUGS},
            True,
        )
        data = FoldData(
            train=[sample(i) for i in train],
            val=[sample(i) for i in val],
            bins=Bins.fit(months[train], censorship[train], N_BINS),
            scaler=scaler,
            n_imputed=3,
            omics_sizes=[2] * 6,
            missing={"no_omics_store": [], "no_omics": [], "no_pathology": list(no_pathology)},
        )
        history = [
            {"epoch": e, "loss": 1.0 / (e + 1), "train_cindex": 0.6, "val_cindex": 0.55}
            for e in range(2)
        ]
        result = FoldResult(None, {}, history, pred, data.val, [], "cpu", 0.1)
        attrs = fold_attrs(k, opts, data, result, [])
        write_fold_store(lay.fold_store(model, k), attrs, data, result)
    return lay


def write_cohort_files(lay: Layout, banner: str | None = None) -> None:
    """A features store (encoder attributes), cohort summary/table, slide and omics QC."""
    with atomic_group(
        lay.features_store("resnet50_trunc", "S1"),
        {"encoder": "resnet50_trunc", "weights": "random", "random_init": True},
    ):
        pass
    summary = {"both": 47, "slides_only": 1, "omics_only": 2, "dropped": 1}
    if banner:
        summary["banner"] = banner
    write_json(lay.cohort_summary, summary)
    write_text(
        lay.cohort_table,
        "patient_id\tn_slides\tomics\tlabel\tstatus\treason\n"
        "TCGA-XX-0000\t1\tyes\tyes\tboth\t\n"
        "TCGA-XX-9999\t0\tno\tyes\tdropped\tno slide and no omics row\n",
    )
    write_text(
        lay.qc_slides,
        "slide_id\tstatus\treason\tn_tiles\n"
        "S1\tok\t\t120\n"
        "S2\trejected\tsheets/x.tsv line 4: unsafe slide id '../S2'\t0\n",
    )
    write_text(
        lay.qc_omics,
        "case_id\tstatus\treason\tn_imputed\n"
        "TCGA-XX-0001\tok\timputed cells\t7\n"
        "TCGA-XX-9999\tdropped\tall omics NaN\t0\n",
    )


def config_json(cfg: dict[str, Any]) -> str:
    return json.dumps(cfg)
