"""The known-truth multimodal cohort: seeded, readable by the trainer, and each planted term
behaves as documented (oracle concordance, interaction invisible to one modality, arrangement
independent of prevalence)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from wsirisk.benchmark.cohort import (
    MPP_20X,
    TILE_PX,
    CohortSpec,
    catalog,
    latents,
    nearest_neighbour_um,
    patient_bag,
    simulate,
    write_cohort,
)
from wsirisk.layout import CATEGORIES, category_slug
from wsirisk.training.metrics import cindex

TINY = CohortSpec(n_patients=10, feature_dim=16, bag_min=40, bag_max=120, genes_per_group=3)


def _c(truth: pd.DataFrame, risk: np.ndarray) -> float:
    value = cindex(truth["survival_months"], risk, truth["censorship"]).value
    assert value is not None
    return value


def _read_features(path: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    from wsirisk.features.io import load_features

    return load_features(path)


def test_same_spec_same_files_and_patients_do_not_depend_on_cohort_size(tmp_path: Path) -> None:
    a = write_cohort(TINY, tmp_path / "a", n_folds=2)
    write_cohort(TINY, tmp_path / "b", n_folds=2)
    for name in ("truth.csv", "omics_table.csv", "signatures.csv"):
        assert (tmp_path / "a" / name).read_text() == (tmp_path / "b" / name).read_text()
    for store in sorted((tmp_path / "a" / "features").glob("*.zarr")):
        fa, ca, _ = _read_features(store)
        fb, cb, _ = _read_features(tmp_path / "b" / "features" / store.name)
        np.testing.assert_array_equal(fa, fb)
        np.testing.assert_array_equal(ca, cb)
    other = latents(dataclasses.replace(TINY, seed=1))
    assert not np.allclose(other["oracle_risk"], latents(TINY)["oracle_risk"])
    small = latents(dataclasses.replace(TINY, n_patients=4))
    pd.testing.assert_frame_equal(small, latents(TINY).iloc[:4])
    assert a["n_patients"] == 10 and a["oracle_cindex"] is not None


def test_artifacts_are_what_the_trainer_reads(tmp_path: Path) -> None:
    from wsirisk.omics.load import load_omics
    from wsirisk.training.data import FeatureBank, prepare_fold
    from wsirisk.training.splits import read_splits
    from wsirisk.training.trainer import TrainOptions, predict_samples, train_fold

    write_cohort(TINY, tmp_path, n_folds=2)
    truth = pd.read_csv(tmp_path / "truth.csv")
    omics = load_omics(tmp_path / "omics.zarr")
    assert omics.patients == list(truth["case_id"])
    np.testing.assert_allclose(omics.survival_months, truth["survival_months"], rtol=1e-6)
    assert omics.categories == list(CATEGORIES)
    assert all(names for names in omics.feature_names.values())
    store = tmp_path / "features" / f"{truth.at[0, 'slide_id']}.zarr"
    features, coords, attrs = _read_features(store)
    assert features.shape == (truth.at[0, "n_patches"], 16)
    assert attrs["mpp"] == MPP_20X and attrs["patient_id"] == truth.at[0, "case_id"]
    assert np.all(coords % TILE_PX == 0)
    bank = FeatureBank(sorted((tmp_path / "features").glob("*.zarr")))
    bag, um = bank.load_with_coords(truth.at[0, "case_id"])
    steps = np.unique(np.diff(np.unique(um[:, 0])))
    assert steps.min() == pytest.approx(TILE_PX * MPP_20X)  # 128 um per tile
    folds = read_splits(tmp_path / "splits.zarr")["folds"]
    data = prepare_fold(omics, folds[0], 4, True, bank)
    opts = TrainOptions(model="abmil_snn", epochs=1, max_patches=32, device="cpu")
    result = train_fold(data, opts, bank, log=lambda _: None)
    pred, kept = predict_samples(result.model, data.val, "cpu", 4, bank)
    assert len(kept) == len(data.val) and np.all(np.isfinite(pred.risk))


def test_oracle_recovers_each_planted_term() -> None:
    base = CohortSpec(n_patients=600, genes_per_group=2)
    truth, _ = simulate(base)
    assert _c(truth, truth["oracle_risk"].to_numpy()) > 0.75
    for k, name in enumerate(("prevalence", "genomic", "interaction", "spatial")):
        weights = tuple(1.0 if j == k else 0.0 for j in range(4))
        alone, _ = simulate(dataclasses.replace(base, weights=weights))
        assert _c(alone, alone["oracle_risk"].to_numpy()) > 0.62, name
        assert _c(alone, alone[f"term_{name}"].to_numpy()) > 0.62, name


def _fit_cox(x: np.ndarray, truth: pd.DataFrame, train: np.ndarray) -> np.ndarray:
    """Ridge Cox linear probe fit on ``train`` rows; returns risks for every row."""
    from lifelines import CoxPHFitter

    mean, std = x[train].mean(0), x[train].std(0) + 1e-9
    frame = pd.DataFrame((x - mean) / std, columns=[f"x{j}" for j in range(x.shape[1])])
    frame["T"] = truth["survival_months"].to_numpy()
    frame["E"] = 1 - truth["censorship"].to_numpy()
    cox = CoxPHFitter(penalizer=0.5).fit(frame[train], "T", "E")
    return cox.predict_log_partial_hazard(frame.drop(columns=["T", "E"])).to_numpy()


def test_interaction_alone_is_invisible_to_each_modality_but_not_to_both() -> None:
    spec = CohortSpec(
        n_patients=800, bag_min=150, bag_max=300, weights=(0.0, 0.0, 2.0, 0.0), genes_per_group=4
    )
    truth, genes = simulate(spec)
    cat = catalog(spec)
    bag_means = np.stack(
        [
            patient_bag(spec, cat, i, row).features.astype(np.float64).mean(0)
            for i, row in truth.iterrows()
        ]
    )
    train, test = np.arange(800) < 400, np.arange(800) >= 400
    held = truth[test]
    path_probe = _fit_cox(bag_means, truth, train)[test]
    omics_probe = _fit_cox(genes.to_numpy(np.float64), truth, train)[test]
    both_linear = _fit_cox(np.hstack([bag_means, genes.to_numpy(np.float64)]), truth, train)[test]
    assert abs(_c(held, path_probe) - 0.5) < 0.06
    assert abs(_c(held, omics_probe) - 0.5) < 0.06
    assert abs(_c(held, both_linear) - 0.5) < 0.06  # additive in the two: no product
    # the true product, and the product of the two modalities' own estimates, are concordant
    product = (held["prevalence_z"] * held["interaction_score"]).to_numpy()
    assert _c(held, product) > 0.7
    z_hat = bag_means @ cat.direction
    slug = category_slug("Cytokines and Growth Factors")
    cgf = [g for g in cat.genes if category_slug(g.category) == slug]
    h_hat = sum(np.sign(g.loading) * genes[f"{g.symbol}_rnaseq"].to_numpy() for g in cgf)
    estimate = (z_hat - z_hat[train].mean()) * h_hat
    assert _c(held, estimate[test]) > 0.65


def test_arrangement_changes_only_which_cells_carry_the_phenotype() -> None:
    spec = CohortSpec(n_patients=3, feature_dim=16, bag_min=2000, bag_max=2000)
    table, cat = latents(spec), catalog(spec)
    row = table.iloc[1]
    near = patient_bag(spec, cat, 1, row, clustered=True)
    far = patient_bag(spec, cat, 1, row, clustered=False)
    np.testing.assert_array_equal(near.coords, far.coords)
    assert near.phenotype.sum() == far.phenotype.sum() == row["n_phenotype"]  # same prevalence
    neither = ~near.phenotype & ~far.phenotype
    np.testing.assert_array_equal(near.features[neither], far.features[neither])

    def rows_sorted(x: np.ndarray) -> np.ndarray:
        return x[np.lexsort(x.T[::-1])]

    np.testing.assert_array_equal(  # the same phenotype patches, placed elsewhere
        rows_sorted(near.features[near.phenotype]), rows_sorted(far.features[far.phenotype])
    )
    d_near = nearest_neighbour_um(near.coords[near.phenotype])
    d_far = nearest_neighbour_um(far.coords[far.phenotype])
    assert d_near == pytest.approx(TILE_PX * MPP_20X, rel=0.1)  # touching tiles
    assert d_far > 1.5 * d_near
    proj = near.features.astype(np.float64) @ cat.direction
    assert proj[near.phenotype].mean() - proj[~near.phenotype].mean() == pytest.approx(
        spec.phenotype_shift, abs=0.3
    )
