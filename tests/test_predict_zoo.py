"""`wsirisk predict --run` scores one patient and a batch for every model of the zoo.

One tiny demo is tiled, embedded (random test encoder), and every model trained 1 epoch on 2
folds through the CLI with ``--preprocess``; predict then needs only the run, the slide and the
omics table. The predicted risk must equal the fold ensemble recomputed independently with the
trainer's own data path (FeatureBank bags, prepare_fold scaling, coords in um).
"""

from __future__ import annotations

import csv
import functools
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from wsirisk import layout
from wsirisk.cli import main
from wsirisk.demo import make_demo
from wsirisk.features.extract import ExtractOptions, load_extractor
from wsirisk.models import COX_MODELS, MODEL_NAMES, build_model, output_risk
from wsirisk.omics.load import load_omics
from wsirisk.slides.tile import tile_slide
from wsirisk.store import open_group
from wsirisk.training.data import FeatureBank, prepare_fold
from wsirisk.training.splits import read_splits

N_PATIENTS = 6
SLIDES = {"segmentation": {"min_tissue_area_level0": 16384, "min_hole_area_level0": 16384}}
FEATURES = {
    "encoder": "test_resnet",
    "weights": "random",
    "input_size_px": 32,
    "batch_size": 16,
    "num_workers": 0,
    "device": "cpu",
}
SMALL = {
    "me_mamba": {"dim": 16, "n_layers": 1, "n_fusion_layers": 1},
    "transmil": {"hidden": 16, "trans_dim": 32},
    "survmamba": {"dim": 16},
    "adamhf": {"dim": 16},
    "m4survive": {"dim": 16},
}
PATIENT = "DEMO-001"


def _kwargs(name: str) -> dict:
    return SMALL.get(name, {"hidden": 16})


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Demo cohort -> tiles -> features -> omics -> 2 folds -> every model trained 1 epoch."""
    root = tmp_path_factory.mktemp("zoo")
    data = root / "data"
    make_demo(data, n_patients=N_PATIENTS, seed=5, frac_40x=0.35, tiles_per_slide=6)
    extractor = load_extractor(ExtractOptions.from_dict(FEATURES), progress=False)
    stores = []
    with (data / "sample_sheet.tsv").open(newline="") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            tiles = root / "slides" / f"{row['slide_id']}.zarr"
            attrs = tile_slide(
                row["path"], tiles, slide_id=row["slide_id"], patient_id=row["patient_id"],
                options=SLIDES,
            )  # fmt: skip
            assert attrs["status"] == "ok", attrs
            store = root / "features" / f"{row['slide_id']}.zarr"
            extractor.extract_slide(Path(row["path"]), tiles, store)
            stores.append(str(store))
    omics, splits = root / "omics.zarr", root / "splits.zarr"
    argv = ["omics", "--table", str(data / "omics.csv"), "--signatures"]
    argv += [str(data / "signatures.csv"), "--out", str(omics), "--qc", str(root / "qc.tsv")]
    assert main(argv) == 0
    assert main(["splits", "--omics", str(omics), "--out", str(splits), "--n-folds", "2"]) == 0
    preprocess = json.dumps({"slides": SLIDES, "features": FEATURES})
    for name in MODEL_NAMES:
        options = {"model": name, "epochs": 1, "seed": 0, "device": "cpu"}
        options["model_kwargs"] = _kwargs(name)
        if name in COX_MODELS:
            options["batch_size"] = 3  # a Cox risk set needs several patients
        options = json.dumps(options)
        for fold in range(2):
            run = root / "train" / name
            argv = ["train", "--omics", str(omics), "--splits", str(splits), "--fold", str(fold)]
            argv += ["--features", *stores, "--options", options, "--preprocess", preprocess]
            argv += ["--out", str(run / f"fold{fold}.zarr")]
            argv += ["--checkpoint", str(run / f"fold{fold}.pt")]
            assert main(argv) == 0
    return {
        "root": root,
        "data": data,
        "omics": omics,
        "splits": splits,
        "stores": root / "features",
    }


def _recompute(demo: dict[str, Path], name: str, patient: str) -> list[float]:
    return _recompute_cached(demo["root"], name, patient)


@functools.cache
def _recompute_cached(root: Path, name: str, patient: str) -> list[float]:
    """Each fold's risk for ``patient`` via the trainer's data path (independent of predict)."""
    demo = {"root": root, "omics": root / "omics.zarr", "splits": root / "splits.zarr"}
    demo["stores"] = root / "features"
    omics = load_omics(demo["omics"])
    folds = read_splits(demo["splits"])["folds"]
    bank = FeatureBank(sorted(demo["stores"].glob("*.zarr")))
    risks = []
    for k, fold in enumerate(folds):
        ckpt = torch.load(demo["root"] / "train" / name / f"fold{k}.pt", weights_only=True)
        model = build_model(name, **ckpt["model_kwargs"])
        model.load_state_dict(ckpt["state_dict"])
        model.eval()
        opts = ckpt["options"]
        data = prepare_fold(omics, fold, opts["n_bins"], opts["standardize"], bank, opts["clip"])
        sample = next(s for s in data.train + data.val if s.patient == patient)
        x_path = coords = x_omics = None
        if "pathology" in model.modalities:
            bag, where = bank.load_with_coords(patient)
            x_path, coords = torch.from_numpy(bag), torch.from_numpy(where)
        if "genomics" in model.modalities:
            x_omics = [torch.from_numpy(g) for g in sample.omics]
        with torch.no_grad():
            risk = float(output_risk(model(x_path, x_omics, coords=coords)).reshape(-1)[0])
        store = open_group(demo["root"] / "train" / name / f"fold{k}.zarr")
        val = list(store.attrs["val_patients"])
        if patient in val:  # the recompute is the trainer's own out-of-fold risk
            stored = float(store[layout.FOLD_VAL_RISK][val.index(patient)])
            assert risk == pytest.approx(stored, abs=1e-5)
        risks.append(risk)
    return risks


def _slide(demo: dict[str, Path], patient: str) -> Path:
    return demo["data"] / "slides" / f"{patient}-DX1.tiff"


def _predict(demo: dict[str, Path], name: str, *extra: str) -> list[str]:
    run = demo["root"] / "train" / name
    work = demo["root"] / "predict_cache"
    return ["predict", "--run", str(run), "--work-dir", str(work), *extra]


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_single_patient_equals_independent_fold_ensemble(
    demo: dict[str, Path], name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = _predict(demo, name, "--slide", str(_slide(demo, PATIENT)))
    argv += ["--omics-table", str(demo["data"] / "omics.csv"), "--case-id", PATIENT]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    expected = _recompute(demo, name, PATIENT)
    assert out["fold_risks"] == pytest.approx(expected, abs=1e-4)
    assert out["risk"] == pytest.approx(float(np.mean(expected)), abs=1e-4)
    assert out["status"] == "ok" and out["missing_modalities"] == []
    assert set(out["modalities"]) == build_model(name, omics_sizes=[1] * 6).modalities
    assert out["risk_group"] == ("high" if out["risk"] > out["median_oof_risk"] else "low")


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_batch_has_a_row_per_patient(
    demo: dict[str, Path], name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "pred.tsv"
    argv = _predict(demo, name, "--sample-sheet", str(demo["data"] / "sample_sheet.tsv"))
    argv += ["--omics-table", str(demo["data"] / "omics.csv"), "--out", str(out)]
    assert main(argv) == 0
    with out.open(newline="") as handle:
        rows = {r["case_id"]: r for r in csv.DictReader(handle, delimiter="\t")}
    assert sorted(rows) == [f"DEMO-{i:03d}" for i in range(N_PATIENTS)]
    assert {r["status"] for r in rows.values()} == {"ok"}
    assert {r["n_folds"] for r in rows.values()} == {"2"}
    expected = float(np.mean(_recompute(demo, name, PATIENT)))
    assert float(rows[PATIENT]["risk"]) == pytest.approx(expected, abs=1e-4)


MULTIMODAL = [
    n
    for n in MODEL_NAMES
    if {"pathology", "genomics"} <= build_model(n, omics_sizes=[1] * 6).modalities
]


@pytest.mark.parametrize("name", MULTIMODAL)
def test_multimodal_model_refuses_a_slide_alone(
    demo: dict[str, Path], name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = _predict(demo, name, "--slide", str(_slide(demo, PATIENT)))
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "was trained on genomics+pathology; this patient has no genomics" in err
    assert "Refusing" in err
    if name != "me_mamba":
        return
    assert main([*argv, "--allow-missing-modality"]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out.strip().splitlines()[-1])
    assert out["status"] == "missing_modality" and out["missing_modalities"] == ["genomics"]
    assert out["modalities"] == ["pathology"]
    assert "WARNING" in captured.err and "scored WITHOUT genomics" in captured.err


def test_batch_refuses_per_patient_and_goes_on(
    demo: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A patient without slides in a multimodal batch is a 'refused' row, the others score."""
    sheet = tmp_path / "sheet.tsv"
    lines = (demo["data"] / "sample_sheet.tsv").read_text().splitlines()
    sheet.write_text("\n".join([lines[0], *lines[2:]]) + "\n")  # DEMO-000 loses its slide
    out = tmp_path / "pred.tsv"
    argv = _predict(demo, "me_mamba", "--sample-sheet", str(sheet))
    argv += ["--omics-table", str(demo["data"] / "omics.csv"), "--out", str(out)]
    assert main(argv) == 0
    with out.open(newline="") as handle:
        rows = {r["case_id"]: r for r in csv.DictReader(handle, delimiter="\t")}
    assert rows["DEMO-000"]["status"] == "refused" and rows["DEMO-000"]["risk"] == ""
    assert "no pathology" in rows["DEMO-000"]["reason"]
    assert sum(r["status"] == "ok" for r in rows.values()) == N_PATIENTS - 1


def test_run_records_its_settings_and_config_overrides_merge(
    demo: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt = torch.load(demo["root"] / "train" / "abmil_snn" / "fold0.pt", weights_only=True)
    assert ckpt["preprocess"] == {"slides": SLIDES, "features": FEATURES}
    assert ckpt["trained_modalities"] == ["genomics", "pathology"]
    assert ckpt["features_identity"][0]["encoder"] == "test_resnet"
    # an override file holding only some keys (as `snakemake --configfile`): merged, and the
    # changed encoder seed is caught as features from another encoder
    argv = _predict(demo, "abmil", "--slide", str(_slide(demo, PATIENT)))
    assert main([*argv, "--config-json", json.dumps({"train": {"epochs": 3}})]) == 0
    capsys.readouterr()
    assert main([*argv, "--config-json", json.dumps({"features": {"seed": 7}})]) == 1
    assert "trained on features from" in capsys.readouterr().err


def test_fold_trained_without_slides_records_it(
    demo: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A multimodal model trained with no slide at all (the mismatch scenario) says so in the
    fold store's warnings, and predict then refuses a patient without omics."""
    options = json.dumps({"model": "abmil_snn", "epochs": 1, "model_kwargs": {"hidden": 16}})
    run = tmp_path / "abmil_snn"
    for fold in range(2):
        argv = ["train", "--omics", str(demo["omics"]), "--splits", str(demo["splits"])]
        argv += ["--fold", str(fold), "--options", options, "--out", str(run / f"fold{fold}.zarr")]
        argv += ["--checkpoint", str(run / f"fold{fold}.pt")]
        with pytest.warns(UserWarning, match="no training patient had pathology"):
            assert main(argv) == 0
    attrs = open_group(run / "fold0.zarr").attrs
    assert attrs["trained_modalities"] == ["genomics"]
    assert any("trained without it" in w for w in attrs["warnings"])
    argv = ["predict", "--run", str(run), "--slide", str(_slide(demo, PATIENT))]
    assert main(argv) == 1
    assert "was trained on genomics; this patient has no genomics" in capsys.readouterr().err
