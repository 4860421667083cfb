"""Demo cohort generator: files, slides (OpenSlide, mpp, 20x/40x), survival, omics, pattern."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from wsirisk.cli import main
from wsirisk.demo import demo_ids, demo_layout, make_demo
from wsirisk.demo.cohort import (
    CENSORED_SHARE,
    GENE_FAMILIES,
    simulate_cohort,
)
from wsirisk.demo.tissue import TILE_PX, synth_slide
from wsirisk.layout import CATEGORIES
from wsirisk.slides.read import open_slide, read_tile
from wsirisk.training.metrics import cindex

N_PATIENTS = 6
TINY_TILES = 6


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("data") / "demo"
    summary = make_demo(
        out, n_patients=N_PATIENTS, seed=3, frac_40x=0.5, tiles_per_slide=TINY_TILES
    )
    return out, summary


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_demo_ids_are_predictable() -> None:
    assert demo_ids(2) == [("DEMO-000", "DEMO-000-DX1"), ("DEMO-001", "DEMO-001-DX1")]
    with pytest.raises(ValueError, match="n_patients"):
        demo_ids(0)


def test_files_and_tables(tiny: tuple[Path, dict]) -> None:
    out, summary = tiny
    layout = demo_layout(out)
    ids = demo_ids(N_PATIENTS)
    for _, slide_id in ids:
        assert layout.demo_slide(slide_id).is_file()
    assert not list(out.rglob(".*tmp*")), "temporary files left behind"

    omics = pd.read_csv(layout.demo_omics)
    assert list(omics.columns[:4]) == ["case_id", "slide_id", "survival_months", "censorship"]
    assert list(zip(omics.case_id, omics.slide_id, strict=True)) == ids
    features = omics.columns[4:]
    assert all(c.endswith(("_rnaseq", "_cnv", "_mut")) for c in features)
    assert set(omics.censorship) <= {0, 1} and (omics.survival_months > 0).all()
    cnv = omics[[c for c in features if c.endswith("_cnv")]].to_numpy()
    mut = omics[[c for c in features if c.endswith("_mut")]].to_numpy()
    assert cnv.size and set(np.unique(cnv)) <= {-2, -1, 0, 1, 2}
    assert mut.size and set(np.unique(mut)) <= {0, 1}

    signatures = pd.read_csv(layout.demo_signatures, keep_default_na=False)
    assert tuple(signatures.columns) == CATEGORIES
    genes = [g for c in CATEGORIES for g in signatures[c] if g]
    assert len(genes) == len(set(genes)) == sum(n for _, n in GENE_FAMILIES.values())
    assert all(8 <= (signatures[c] != "").sum() <= 40 for c in CATEGORIES)
    assert {c.rsplit("_", 1)[0] for c in features} == set(genes)

    sheet = pd.read_csv(layout.demo_sample_sheet, sep="\t", keep_default_na=False)
    assert list(sheet.columns) == ["slide_id", "patient_id", "path", "mpp_override"]
    assert (sheet.mpp_override == "").all()
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in sheet.path)

    truth = pd.read_csv(layout.demo_truth)
    assert {"case_id", "true_risk", "pattern_share", "gene_latent"} <= set(truth.columns)
    assert truth.case_id.tolist() == [p for p, _ in ids]
    assert summary["n_patients"] == N_PATIENTS and summary["n_40x"] == 3
    assert summary["tissue_tiles"] == truth.tissue_tiles.sum()
    tiles = pd.read_csv(out / "truth_tiles.csv")
    assert tiles.groupby("slide_id").is_tissue.sum().to_dict() == dict(
        zip(truth.slide_id, truth.tissue_tiles, strict=True)
    )


def test_slides_open_with_mpp_and_levels(tiny: tuple[Path, dict]) -> None:
    out, _ = tiny
    truth = pd.read_csv(demo_layout(out).demo_truth)
    assert sorted(truth.mpp.unique()) == [0.25, 0.5]
    for row in truth.itertuples():
        slide = open_slide(out / "slides" / f"{row.slide_id}.tiff")
        assert float(slide.properties["openslide.mpp-x"]) == pytest.approx(row.mpp)
        assert slide.level_count >= 3
        width, height = slide.dimensions
        grid_px = TILE_PX * (2 if row.mpp == 0.25 else 1)
        assert width % grid_px == 0 and height % grid_px == 0
        corner = np.asarray(slide.read_region((0, 0), 0, (32, 32)))[..., :3]
        assert corner.mean() > 230  # white background


def test_40x_is_the_20x_tissue_upscaled(tmp_path: Path) -> None:
    at20 = make_demo(tmp_path / "a", n_patients=1, seed=5, frac_40x=0.0, tiles_per_slide=4)
    at40 = make_demo(tmp_path / "b", n_patients=1, seed=5, frac_40x=1.0, tiles_per_slide=4)
    assert (at20["n_40x"], at40["n_40x"]) == (0, 1)
    s20 = open_slide(tmp_path / "a/slides/DEMO-000-DX1.tiff")
    s40 = open_slide(tmp_path / "b/slides/DEMO-000-DX1.tiff")
    assert s40.dimensions == (2 * s20.dimensions[0], 2 * s20.dimensions[1])
    tiles = pd.read_csv(tmp_path / "a/truth_tiles.csv")
    x, y = tiles[tiles.is_tissue].iloc[0][["x_level0", "y_level0"]]
    tile20 = read_tile(s20, x, y, 0, TILE_PX, TILE_PX).astype(float)
    tile40 = read_tile(s40, 2 * x, 2 * y, 0, 2 * TILE_PX, TILE_PX).astype(float)
    assert np.abs(tile20 - tile40).mean() < 6
    assert tile20.std() > 10  # tissue, not background


def test_deterministic(tmp_path: Path) -> None:
    kwargs = {"n_patients": 2, "seed": 1, "frac_40x": 0.5, "tiles_per_slide": 3}
    make_demo(tmp_path / "a", **kwargs)
    make_demo(tmp_path / "b", **kwargs)
    for name in ("omics.csv", "truth.csv", "truth_tiles.csv", "slides/DEMO-001-DX1.tiff"):
        assert _digest(tmp_path / "a" / name) == _digest(tmp_path / "b" / name), name
    make_demo(tmp_path / "c", **(kwargs | {"seed": 2}))
    assert _digest(tmp_path / "a/omics.csv") != _digest(tmp_path / "c/omics.csv")


def test_cli_prints_summary(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(
        ["make-demo", "--out-dir", str(tmp_path / "d"), "--n-patients", "1"]
        + ["--seed", "0", "--frac-40x", "0", "--tiles-per-slide", "2"]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n_patients"] == 1 and summary["n_40x"] == 0
    assert (tmp_path / "d/slides/DEMO-000-DX1.tiff").is_file()


def test_survival_model_large_sample() -> None:
    truth, features = simulate_cohort(seed=0, n_patients=3000)
    censored = truth.censorship.mean()
    assert abs(censored - CENSORED_SHARE) < 0.03
    assert 25 <= np.median(truth.event_months) <= 60
    c_index = cindex(truth.survival_months, truth.true_risk, truth.censorship).value
    assert c_index > 0.75
    # the risk genes carry the gene latent; other genes do not
    latent = truth.gene_latent
    assert np.corrcoef(features["ONC01_rnaseq"], latent)[0, 1] > 0.8
    assert np.corrcoef(features["TSG01_rnaseq"], latent)[0, 1] < -0.8
    assert np.corrcoef(features["PK01_cnv"], latent)[0, 1] > 0.6
    assert abs(np.corrcoef(features["ONC05_rnaseq"], latent)[0, 1]) < 0.1
    rnaseq = features[[c for c in features if c.endswith("_rnaseq")]]
    np.testing.assert_allclose(rnaseq.mean(), 0, atol=1e-6)
    np.testing.assert_allclose(rnaseq.std(ddof=0), 1, atol=1e-6)


def test_patient_latents_do_not_depend_on_cohort_size() -> None:
    small, _ = simulate_cohort(seed=4, n_patients=3)
    large, _ = simulate_cohort(seed=4, n_patients=10)
    columns = ["true_risk", "pattern_share", "gene_latent", "event_months"]
    pd.testing.assert_frame_equal(small[columns], large[columns].iloc[:3])


def test_pattern_tiles_separate_with_random_resnet50() -> None:
    """Random-init ResNet50 (layer3, GAP, ImageNet norm) + logistic probe: AUC > 0.9."""
    import timm
    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    slide = synth_slide(np.random.default_rng(11), target_tiles=40, pattern_share=0.3)
    pattern = np.argwhere(slide.pattern_tiles)[:10]
    normal = np.argwhere(slide.tissue_tiles & ~slide.pattern_tiles)[:10]
    assert len(pattern) == len(normal) == 10
    tiles = [
        slide.rgb[r * TILE_PX : (r + 1) * TILE_PX, c * TILE_PX : (c + 1) * TILE_PX]
        for r, c in np.concatenate([pattern, normal])
    ]
    labels = np.r_[np.ones(10), np.zeros(10)]
    mean = np.array([0.485, 0.456, 0.406], np.float32)
    std = np.array([0.229, 0.224, 0.225], np.float32)
    batch = (np.stack(tiles).astype(np.float32) / 255.0 - mean) / std
    torch.manual_seed(0)
    model = timm.create_model("resnet50", pretrained=False, features_only=True, out_indices=(3,))
    with torch.inference_mode():
        maps = model.eval()(torch.from_numpy(batch.transpose(0, 3, 1, 2).copy()))[0]
    features = maps.mean(dim=(2, 3)).numpy()
    assert features.shape == (20, 1024)
    features = (features - features.mean(0)) / (features.std(0) + 1e-6)
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    probe = LogisticRegression(C=0.1, max_iter=2000)
    scores = cross_val_predict(probe, features, labels, cv=folds, method="predict_proba")[:, 1]
    assert roc_auc_score(labels, scores) > 0.9
