"""`wsirisk predict`: risk of new patients from a trained run (the ensemble of its folds).

The same preprocessing as training: slides are tiled and embedded with the config's `slides`
and `features` sections; an omics row is grouped with the run's feature names and scaled with
each fold's training-fold scaler. The risk group compares the ensemble risk with the median of
the run's pooled out-of-fold risks (the split of the report's Kaplan-Meier curves).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wsirisk import layout
from wsirisk.layout import check_id
from wsirisk.store import atomic_path, open_group


@dataclass
class FoldModel:
    """One fold's model with the preprocessing it was trained with."""

    fold: int
    model: Any
    bins_months: list[float]
    feature_names: dict[str, list[str]]
    scaler_mean: dict[str, np.ndarray]
    scaler_std: dict[str, np.ndarray]
    scaler_clip: float | None
    baseline_cumhaz: list[float] | None = None  # Cox-trained folds: H0 at bins_months[1:]


def load_run(run_dir: Path) -> tuple[list[FoldModel], float]:
    """Fold checkpoints of ``run_dir`` (train/<model>/) and the median out-of-fold risk."""
    import torch

    from wsirisk.models import build_model

    checkpoints = sorted(Path(run_dir).glob("fold*.pt"))
    if not checkpoints:
        raise FileNotFoundError(f"{run_dir}: no fold*.pt checkpoints (train the run first)")
    folds = []
    for path in checkpoints:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        model = build_model(ckpt["model"], **ckpt["model_kwargs"])
        model.load_state_dict(ckpt["state_dict"])
        model.eval()
        folds.append(
            FoldModel(
                fold=int(ckpt["fold"]),
                model=model,
                bins_months=list(ckpt["bins_months"]),
                feature_names={k: list(v) for k, v in ckpt["feature_names"].items()},
                scaler_mean={k: v.numpy() for k, v in ckpt["scaler_mean"].items()},
                scaler_std={k: v.numpy() for k, v in ckpt["scaler_std"].items()},
                scaler_clip=ckpt.get("scaler_clip"),
                baseline_cumhaz=ckpt.get("baseline_cumhaz_at_edges"),
            )
        )
    oof = []
    for store in sorted(Path(run_dir).glob("fold*.zarr")):
        oof.extend(float(v) for v in open_group(store)[layout.FOLD_VAL_RISK][:])
    if not oof:
        raise FileNotFoundError(f"{run_dir}: no fold*.zarr with out-of-fold risks")
    return folds, float(np.median(oof))


def omics_vectors(row: dict[str, float], fold: FoldModel) -> list[np.ndarray]:
    """Six scaled category vectors for one patient (absent or NaN cells -> training mean)."""
    vectors = []
    for slug in (layout.category_slug(c) for c in layout.CATEGORIES):
        names = fold.feature_names[slug]
        raw = np.array([row.get(name, np.nan) for name in names], dtype=np.float32)
        raw = np.where(np.isfinite(raw), raw, fold.scaler_mean[slug])
        scaled = (raw - fold.scaler_mean[slug]) / fold.scaler_std[slug]
        if fold.scaler_clip is not None:
            scaled = np.clip(scaled, -fold.scaler_clip, fold.scaler_clip)
        vectors.append(scaled.astype(np.float32))
    return vectors


def slide_features(
    slides: list[Path], patient_id: str, config: dict[str, Any], work_dir: Path
) -> np.ndarray | None:
    """Tile + embed each slide (cached under ``work_dir``); the patient's bag, or None."""
    from wsirisk.features import load_features
    from wsirisk.features.extract import ExtractOptions, load_extractor
    from wsirisk.slides.tile import tile_slide

    if not slides:
        return None
    options = ExtractOptions.from_dict(config["features"], where="features")
    extractor = load_extractor(options, progress=False)
    bags = []
    for slide in slides:
        slide_id = check_id(Path(slide).stem, "slide_id")
        tiles = work_dir / "slides" / f"{slide_id}.zarr"
        feats = work_dir / "features" / f"{slide_id}.zarr"
        if not tiles.exists():
            tile_slide(
                slide, tiles, slide_id=slide_id, patient_id=patient_id, options=config["slides"]
            )
        if not feats.exists():
            extractor.extract_slide(slide, tiles, feats)
        features, _, attrs = load_features(feats)
        if attrs.get(layout.ATTR_STATUS) != "ok":
            print(f"wsirisk predict: {slide}: {attrs.get(layout.ATTR_REASON)}", file=sys.stderr)
        if features.shape[0]:
            bags.append(features)
    return np.concatenate(bags, axis=0) if bags else None


def predict_patient(
    folds: list[FoldModel],
    median_oof_risk: float,
    bag: np.ndarray | None,
    omics_row: dict[str, float] | None,
) -> dict[str, Any]:
    """Fold-ensemble risk (mean), risk group and mean survival curve of one patient."""
    import torch

    from wsirisk.models import cox_survival, output_risk, survival_from_logits

    if bag is None and omics_row is None:
        raise ValueError("a patient needs slides with tissue or an omics row")
    risks, curves = [], []
    with torch.inference_mode():
        for fold in folds:
            x_path = torch.from_numpy(bag) if bag is not None else None
            x_omics = None
            if omics_row is not None:
                x_omics = [torch.from_numpy(v) for v in omics_vectors(omics_row, fold)]
            if "pathology" not in fold.model.modalities:
                x_path = None
            if "genomics" not in fold.model.modalities:
                x_omics = None
            if x_path is None and x_omics is None:
                raise ValueError(f"model needs {sorted(fold.model.modalities)}; none given")
            out = fold.model(x_path, x_omics)
            risk = output_risk(out)
            risks.append(float(risk.item()))
            if fold.baseline_cumhaz is not None:
                curves.append(cox_survival(risk.double(), fold.baseline_cumhaz)[0].numpy())
            else:
                curves.append(survival_from_logits(out.logits)[0].numpy())
    risk = float(np.mean(risks))
    return {
        "risk": risk,
        "risk_group": "high" if risk > median_oof_risk else "low",
        "median_oof_risk": median_oof_risk,
        "fold_risks": risks,
        "survival": np.mean(curves, axis=0).round(6).tolist(),
        "bin_edges_months": folds[0].bins_months,
    }


def _omics_rows(table: Path) -> dict[str, dict[str, float]]:
    from wsirisk.omics.table import read_cohort_table

    cohort = read_cohort_table(table)
    frame = cohort.patients[cohort.feature_columns]
    return {str(case): row.to_dict() for case, row in frame.iterrows()}


def build_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", type=Path, required=True, help="results/<cohort>/train/<model>")
    parser.add_argument(
        "--config",
        type=Path,
        default=Path("config.yaml"),
        help="config whose slides/features sections preprocess the slides",
    )
    parser.add_argument("--config-json", help="the config as a JSON string (instead of --config)")
    parser.add_argument(
        "--slide",
        type=Path,
        action="append",
        default=[],
        help="a slide of the patient (repeat for several)",
    )
    parser.add_argument("--omics-table", type=Path, help="PORPOISE/MCAT-layout table")
    parser.add_argument("--case-id", help="the patient's case_id (row of --omics-table)")
    parser.add_argument(
        "--sample-sheet",
        type=Path,
        help="batch mode: TSV slide_id, patient_id, path (all patients)",
    )
    parser.add_argument("--work-dir", type=Path, default=Path("results/predict_cache"))
    parser.add_argument("--out", type=Path, help="batch mode: predictions TSV")


def _load_config(path: Path, text: str | None = None) -> dict[str, Any]:
    import yaml

    if text is not None:
        config = json.loads(text)
    elif not path.exists():
        raise FileNotFoundError(f"{path}: config not found (--config)")
    else:
        config = yaml.safe_load(path.read_text())
    for section in ("slides", "features"):
        if section not in config:
            raise ValueError(f"{path}: config lacks section {section!r}")
    return config


def run(args: argparse.Namespace) -> int:
    folds, median = load_run(args.run)
    config = _load_config(args.config, args.config_json)
    rows = _omics_rows(args.omics_table) if args.omics_table else {}
    if args.sample_sheet is None and args.out is None:
        case = args.case_id or "patient"
        if args.omics_table and case not in rows:
            raise ValueError(f"{args.omics_table}: no row with case_id {case!r} (--case-id)")
        bag = slide_features(args.slide, case, config, args.work_dir)
        result = predict_patient(folds, median, bag, rows.get(case))
        print(json.dumps({"case_id": case, **result}))
        return 0
    slides: dict[str, list[Path]] = {}
    if args.sample_sheet is not None:
        with open(args.sample_sheet, newline="") as handle:
            for record in csv.DictReader(handle, delimiter="\t"):
                slides.setdefault(record["patient_id"], []).append(Path(record["path"]))
    patients = sorted(set(slides) | set(rows))
    lines = ["case_id\trisk\trisk_group\tn_folds\tsurvival"]
    for case in patients:
        check_id(case, "patient_id")
        bag = slide_features(slides.get(case, []), case, config, args.work_dir)
        result = predict_patient(folds, median, bag, rows.get(case))
        lines.append(
            f"{case}\t{result['risk']:.6f}\t{result['risk_group']}\t{len(folds)}\t"
            + ",".join(f"{s:.4f}" for s in result["survival"])
        )
    out = args.out or Path("predictions.tsv")
    with atomic_path(out) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    print(f"{len(patients)} patients -> {out}")
    return 0
