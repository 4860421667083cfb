"""`wsirisk predict`: risk of new patients from a trained run (the ensemble of its folds).

    wsirisk predict --run results/<c>/train/<model> --slide S.svs [--slide ...] \\
        --omics-table T.csv --case-id C                        # one patient -> JSON on stdout
    wsirisk predict --run ... --sample-sheet S.tsv --omics-table T.csv --out P.tsv   # batch

The run knows its own settings: every fold checkpoint records the config's ``slides`` and
``features`` sections it was preprocessed with (``wsirisk train --preprocess``), so slides are
tiled and embedded exactly as in training; ``--config`` (YAML) / ``--config-json`` are optional
overrides merged over them section by section (a ``snakemake --configfile`` override file
holding only some keys works). The new features must come from the encoder the training
features came from (checked on its parameter hash when the checkpoint records it).

Each fold's model gets the patient's bag, the patches' positions in micrometres
(:func:`wsirisk.features.io.patient_coords_um`) and the omics row grouped with the run's feature
names and scaled with that fold's training-fold scaler; a fold's risk is
:func:`wsirisk.models.output_risk`, the patient's risk the mean over folds, and the risk group
compares it with the median of the run's pooled out-of-fold risks (the split of the report's
Kaplan-Meier curves). Risks are log-hazard-like scores: higher = shorter expected survival.

Missing modality: a patient given fewer modalities than the folds trained with (e.g. a
multimodal model without ``--omics-table``) is refused, unless ``--allow-missing-modality``,
which scores it from what is there with a loud warning and ``status missing_modality``. In batch
mode a refused patient is a row with ``status refused`` and the reason; the others go on (exit
1 only when no patient could be scored).
"""

from __future__ import annotations

import argparse
import copy
import csv
import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from wsirisk import layout
from wsirisk.layout import check_id
from wsirisk.store import atomic_path, open_group

PATHOLOGY, GENOMICS = "pathology", "genomics"
PREPROCESS_SECTIONS = ("slides", "features")
BATCH_COLUMNS = (
    "case_id",
    "risk",
    "risk_group",
    "status",
    "modalities",
    "n_slides",
    "n_tiles",
    "n_folds",
    "reason",
    "survival",
)


class MissingModalityError(ValueError):
    """A patient lacks a modality the run's folds were trained with."""


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
    trained_modalities: set[str] = field(default_factory=set)
    path_dim: int | None = None
    baseline_cumhaz: list[float] | None = None  # Cox-trained folds: H0 at bins_months[1:]
    # extra modalities (M4Survive's open list): columns and the training fold's scaler
    extra_columns: dict[str, list[str]] = field(default_factory=dict)
    extra_mean: dict[str, np.ndarray] = field(default_factory=dict)
    extra_std: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class Run:
    """A trained run: its folds, the median out-of-fold risk and its recorded settings."""

    path: Path
    model_name: str
    folds: list[FoldModel]
    median_oof_risk: float
    preprocess: dict[str, Any]
    features_identity: list[dict[str, Any]]

    @property
    def trained_modalities(self) -> set[str]:
        return set().union(*(f.trained_modalities for f in self.folds))


def load_run(run_dir: Path) -> Run:
    """Fold checkpoints of ``run_dir`` (train/<model>/), the median out-of-fold risk and the
    settings the checkpoints record (older checkpoints: none; ``--config`` must give them)."""
    import torch

    from wsirisk.models import build_model

    run_dir = Path(run_dir)
    checkpoints = sorted(run_dir.glob("fold*.pt"))
    if not checkpoints:
        raise FileNotFoundError(f"{run_dir}: no fold*.pt checkpoints (train the run first)")
    folds, names, preprocess, identity = [], set(), None, []
    for path in checkpoints:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        model = build_model(ckpt["model"], **ckpt["model_kwargs"])
        model.load_state_dict(ckpt["state_dict"])
        model.eval()
        names.add(ckpt["model"])
        recorded = ckpt.get("preprocess") or {}
        if preprocess is None:
            preprocess = recorded
        elif recorded != preprocess:
            raise ValueError(f"{path}: preprocessing settings differ from {checkpoints[0]}")
        for item in ckpt.get("features_identity") or []:
            if item not in identity:
                identity.append(item)
        folds.append(
            FoldModel(
                fold=int(ckpt["fold"]),
                model=model,
                bins_months=list(ckpt["bins_months"]),
                feature_names={k: list(v) for k, v in ckpt["feature_names"].items()},
                scaler_mean={k: v.numpy() for k, v in ckpt["scaler_mean"].items()},
                scaler_std={k: v.numpy() for k, v in ckpt["scaler_std"].items()},
                scaler_clip=ckpt.get("scaler_clip"),
                trained_modalities=set(ckpt.get("trained_modalities", model.modalities)),
                path_dim=ckpt["model_kwargs"].get("path_dim"),
                baseline_cumhaz=ckpt.get("baseline_cumhaz_at_edges"),
                extra_columns={k: list(v) for k, v in ckpt.get("extra_columns", {}).items()},
                extra_mean={k: v.numpy() for k, v in ckpt.get("extra_mean", {}).items()},
                extra_std={k: v.numpy() for k, v in ckpt.get("extra_std", {}).items()},
            )
        )
    if len(names) > 1:
        raise ValueError(f"{run_dir}: checkpoints of several models {sorted(names)}")
    oof = []
    for store in sorted(run_dir.glob("fold*.zarr")):
        oof.extend(float(v) for v in open_group(store)[layout.FOLD_VAL_RISK][:])
    if not oof:
        raise FileNotFoundError(f"{run_dir}: no fold*.zarr with out-of-fold risks")
    return Run(run_dir, names.pop(), folds, float(np.median(oof)), preprocess or {}, identity)


def merge_settings(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``override`` merged over ``base`` key by key, nested dicts recursively (like Snakemake's
    ``--configfile`` over config.yaml)."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_settings(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


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


@dataclass
class SlideInput:
    slide_id: str
    path: Path
    mpp_override: float | None = None


@dataclass
class Bag:
    """A patient's patch features (N, D) and positions (N, 2) in micrometres."""

    features: np.ndarray
    coords_um: np.ndarray
    n_slides: int


class SlideFeatures:
    """Tiles and embeds slides with the run's settings; cached under
    ``work_dir/<settings hash>/`` by slide id and file, so a rerun reuses them."""

    def __init__(self, settings: dict[str, Any], work_dir: Path, run: Run) -> None:
        missing = [s for s in PREPROCESS_SECTIONS if not isinstance(settings.get(s), dict)]
        if missing:
            raise ValueError(
                f"{run.path}: the run records no {' / '.join(missing)} settings (trained "
                "without `wsirisk train --preprocess`), and --config / --config-json give "
                f"none: pass the config the run was preprocessed with (sections {missing})"
            )
        self.settings = {s: settings[s] for s in PREPROCESS_SECTIONS}
        digest = hashlib.sha256(json.dumps(self.settings, sort_keys=True).encode()).hexdigest()
        self.cache = Path(work_dir) / digest[:16]
        self.run = run
        self._extractor = None

    def _extract(self, slide: Path, tiles: Path, out: Path) -> None:
        if self._extractor is None:
            from wsirisk.features.extract import ExtractOptions, load_extractor

            options = ExtractOptions.from_dict(self.settings["features"], where="features")
            self._extractor = load_extractor(options, progress=False)
        self._extractor.extract_slide(slide, tiles, out)

    def _check_identity(self, attrs: dict[str, Any], store: Path) -> None:
        """The new features must come from the encoder that made the training features."""
        if not self.run.features_identity:
            return
        keys = ("encoder", "params_sha256", "transform")
        got = {k: attrs.get(k) for k in keys}
        known = [{k: i.get(k) for k in keys} for i in self.run.features_identity]
        if got not in known:
            raise ValueError(
                f"{store}: features from encoder {got} but {self.run.path} was trained on "
                f"features from {known}: the features settings differ from training"
            )

    def bag(self, slides: list[SlideInput], patient_id: str) -> Bag | None:
        """The patient's bag over the slides with tissue, or None (notes on stderr)."""
        from wsirisk.features.io import level0_mpp, load_features, patient_coords_um
        from wsirisk.slides.tile import tile_slide

        feats, where = [], []
        for slide in sorted(slides, key=lambda s: s.slide_id):
            check_id(slide.slide_id, "slide_id")
            key = hashlib.sha256(os.path.abspath(slide.path).encode()).hexdigest()[:8]
            tiles = self.cache / "slides" / f"{slide.slide_id}-{key}.zarr"
            store = self.cache / "features" / f"{slide.slide_id}-{key}.zarr"
            if not tiles.exists():
                tile_slide(
                    slide.path,
                    tiles,
                    slide_id=slide.slide_id,
                    patient_id=patient_id,
                    options=self.settings["slides"],
                    mpp_override=slide.mpp_override,
                )
            if not store.exists():
                self._extract(slide.path, tiles, store)
            features, coords, attrs = load_features(store)
            if attrs.get(layout.ATTR_STATUS) != "ok" or not features.shape[0]:
                why = attrs.get(layout.ATTR_REASON) or "no tissue tile"
                print(f"wsirisk predict: {slide.path}: not used ({why})", file=sys.stderr)
                continue
            self._check_identity(attrs, store)
            feats.append(features)
            where.append((coords, level0_mpp(attrs)))
        if not feats:
            return None
        return Bag(np.concatenate(feats, axis=0), patient_coords_um(where), len(feats))


def predict_patient(
    run: Run,
    bag: Bag | np.ndarray | None,
    omics_row: dict[str, float] | None,
    allow_missing: bool = False,
    folds: list[FoldModel] | None = None,
    extra_rows: dict[str, dict[str, float]] | None = None,
) -> dict[str, Any]:
    """Fold-ensemble risk (mean of :func:`wsirisk.models.output_risk`), risk group and mean
    survival curve of one patient. ``extra_rows`` maps an extra modality's name to the patient's
    row of that table (column -> value). Raises MissingModalityError when a fold trained with a
    modality the patient lacks, unless ``allow_missing``."""
    import torch

    from wsirisk.models import cox_survival, output_risk, survival_from_logits

    if isinstance(bag, np.ndarray):  # features only (positions unknown)
        bag = Bag(bag, np.zeros((bag.shape[0], 2), np.float32), 1)
    given = {PATHOLOGY} if bag is not None else set()
    given |= {GENOMICS} if omics_row is not None else set()
    given |= set(extra_rows or {})
    folds = run.folds if folds is None else folds
    missing = check_modalities(run, given, allow_missing)
    risks, curves, used = [], [], set()
    with torch.no_grad():
        for fold in folds:
            inputs = fold.model.modalities & fold.trained_modalities & given
            if not inputs:
                raise MissingModalityError(
                    f"{run.model_name} needs {'+'.join(sorted(fold.model.modalities))}; "
                    f"the patient has {'+'.join(sorted(given)) or 'nothing'}"
                )
            x_path = coords = x_omics = None
            if PATHOLOGY in inputs:
                assert bag is not None
                if fold.path_dim is not None and bag.features.shape[1] != fold.path_dim:
                    raise ValueError(
                        f"features are {bag.features.shape[1]}-d but {run.path} fold "
                        f"{fold.fold} takes {fold.path_dim}-d features (other encoder?)"
                    )
                x_path = torch.from_numpy(bag.features)
                coords = torch.from_numpy(bag.coords_um)
            if GENOMICS in inputs:
                assert omics_row is not None
                x_omics = [torch.from_numpy(v) for v in omics_vectors(omics_row, fold)]
            extra = extra_vectors(extra_rows or {}, fold, inputs)
            out = fold.model(x_path, x_omics, coords=coords, extra=extra)
            risk = output_risk(out).reshape(-1)[:1]
            risks.append(float(risk.item()))
            if fold.baseline_cumhaz is not None:
                curves.append(cox_survival(risk.double(), fold.baseline_cumhaz)[0].float().numpy())
            else:
                curves.append(survival_from_logits(out.logits)[0].float().numpy())
            used |= inputs
    risk = float(np.mean(risks))
    return {
        "risk": risk,
        "risk_group": "high" if risk > run.median_oof_risk else "low",
        "median_oof_risk": run.median_oof_risk,
        "fold_risks": risks,
        "modalities": sorted(used),
        "missing_modalities": missing,
        "status": "missing_modality" if missing else "ok",
        "survival": np.mean(curves, axis=0).round(6).tolist(),
        "bin_edges_months": folds[0].bins_months,
        "n_tiles": int(bag.features.shape[0]) if bag is not None else 0,
    }


def extra_vectors(
    rows: dict[str, dict[str, float]], fold: FoldModel, inputs: set[str]
) -> dict[str, Any] | None:
    """The extra modalities the fold trained with, scaled with its training-fold scaler
    (absent or NaN cells -> the training mean, as in training); None when there are none."""
    import torch

    out = {}
    for name, columns in fold.extra_columns.items():
        if name not in inputs or name not in rows:
            continue
        raw = np.array([rows[name].get(c, np.nan) for c in columns], dtype=np.float32)
        raw = np.where(np.isfinite(raw), raw, fold.extra_mean[name])
        scaled = (raw - fold.extra_mean[name]) / fold.extra_std[name]
        if fold.scaler_clip is not None:
            scaled = np.clip(scaled, -fold.scaler_clip, fold.scaler_clip)
        out[name] = torch.from_numpy(scaled.astype(np.float32))
    return out or None


def _extra_rows(specs: list[str]) -> dict[str, dict[str, dict[str, float]]]:
    """``--extra-table NAME=PATH`` -> case_id -> name -> row (column -> value)."""
    from wsirisk.omics.extra import parse_table_arg, read_table

    by_case: dict[str, dict[str, dict[str, float]]] = {}
    for spec in specs:
        name, path = parse_table_arg(spec)
        table, _ = read_table(name, path)
        for i, case in enumerate(table.patients):
            row = dict(zip(table.columns, table.values[i].tolist(), strict=True))
            by_case.setdefault(case, {})[name] = row
    return by_case


def check_modalities(run: Run, given: set[str], allow_missing: bool = False) -> list[str]:
    """The modalities the run's folds trained with that ``given`` lacks; raises
    MissingModalityError when there are some, unless ``allow_missing``."""
    missing = sorted(run.trained_modalities - given)
    if missing and not allow_missing:
        raise MissingModalityError(
            f"{run.model_name} (run {run.path}) was trained on "
            f"{'+'.join(sorted(run.trained_modalities))}; this patient has no "
            f"{' and no '.join(missing)} ({_how_to_give(missing)}). Refusing: scoring from the "
            "rest would not be the model's risk (--allow-missing-modality scores it anyway)"
        )
    return missing


def _how_to_give(missing: list[str]) -> str:
    hints = {
        PATHOLOGY: "give its slides with --slide or the sample sheet",
        GENOMICS: "give --omics-table with its row (--case-id)",
    }
    return "; ".join(hints.get(m, f"give --extra-table {m}=PATH with its row") for m in missing)


def _omics_rows(table: Path) -> dict[str, dict[str, float]]:
    from wsirisk.omics.table import read_cohort_table

    cohort = read_cohort_table(table)
    frame = cohort.patients[cohort.feature_columns]
    rows = {}
    for case, row in frame.iterrows():
        values = row.to_dict()
        if any(np.isfinite(v) for v in values.values() if isinstance(v, float)):
            rows[str(case)] = values
        else:
            print(f"wsirisk predict: {table}: case {case} has no omics value", file=sys.stderr)
    return rows


def build_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", type=Path, required=True, help="results/<cohort>/train/<model>")
    parser.add_argument(
        "--config",
        type=Path,
        help="optional YAML overrides of the run's recorded slides/features settings",
    )
    parser.add_argument("--config-json", help="optional overrides as a JSON string")
    parser.add_argument(
        "--slide",
        type=Path,
        action="append",
        default=[],
        help="a slide of the patient (repeat for several)",
    )
    parser.add_argument("--omics-table", type=Path, help="PORPOISE/MCAT-layout table")
    parser.add_argument(
        "--extra-table",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="an extra modality table the run trained with (as `wsirisk extra --table`)",
    )
    parser.add_argument("--case-id", help="the patient's case_id (row of --omics-table)")
    parser.add_argument(
        "--sample-sheet",
        type=Path,
        help="batch mode: TSV slide_id, patient_id, path [, mpp_override] (all patients)",
    )
    parser.add_argument("--work-dir", type=Path, default=Path("results/predict_cache"))
    parser.add_argument("--out", type=Path, help="batch mode: predictions TSV")
    parser.add_argument(
        "--allow-missing-modality",
        action="store_true",
        help="score patients lacking a modality the model trained with (loud warning)",
    )


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    import yaml

    override: dict[str, Any] = {}
    if args.config is not None:
        if not args.config.is_file():
            raise FileNotFoundError(f"{args.config}: config not found (--config)")
        loaded = yaml.safe_load(args.config.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{args.config}: expected a mapping of config sections")
        override = merge_settings(override, loaded)
    if args.config_json is not None:
        try:
            loaded = json.loads(args.config_json)
        except json.JSONDecodeError as exc:
            raise ValueError(f"--config-json: not valid JSON ({exc})") from None
        if not isinstance(loaded, dict):
            raise ValueError("--config-json: expected a JSON object")
        override = merge_settings(override, loaded)
    return {k: v for k, v in override.items() if k in PREPROCESS_SECTIONS}


def _warn_missing(case: str, result: dict[str, Any]) -> None:
    if result["missing_modalities"]:
        print(
            f"wsirisk predict: WARNING: {case}: scored WITHOUT "
            f"{'+'.join(result['missing_modalities'])}, which the model was trained with "
            "(--allow-missing-modality): this risk is not the model's multimodal risk",
            file=sys.stderr,
        )


def _sheet_slides(path: Path) -> tuple[dict[str, list[SlideInput]], dict[str, str]]:
    """Slides per patient of a batch sample sheet, and the reasons of rejected rows."""
    from wsirisk.cohort.sheet import validate_sheet

    result = validate_sheet(path)
    slides: dict[str, list[SlideInput]] = {}
    for row in result.kept:
        mpp = float(row["mpp_override"]) if row["mpp_override"] else None
        slides.setdefault(row["patient_id"], []).append(
            SlideInput(row["slide_id"], Path(row["path"]), mpp)
        )
    rejected: dict[str, str] = {}
    for row in result.rejected:
        print(f"wsirisk predict: rejected {row['reason']}", file=sys.stderr)
        if row["patient_id"]:
            rejected[row["patient_id"]] = row["reason"]
    return slides, rejected


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except (FileNotFoundError, ValueError) as exc:
        print(f"wsirisk predict: error: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    trained = load_run(args.run)
    settings = merge_settings(trained.preprocess, _overrides(args))
    uses_slides = any(PATHOLOGY in f.model.modalities & f.trained_modalities for f in trained.folds)
    rows = _omics_rows(args.omics_table) if args.omics_table else {}
    extras = _extra_rows(args.extra_table)
    features: SlideFeatures | None = None

    def bag_of(slides: list[SlideInput], case: str) -> Bag | None:
        """The patient's bag; refuses before any tiling when a modality is surely missing."""
        nonlocal features
        given = ({PATHOLOGY} if slides else set()) | ({GENOMICS} if case in rows else set())
        given |= set(extras.get(case, {}))
        check_modalities(trained, given, args.allow_missing_modality)
        if not slides or not uses_slides:
            return None
        if features is None:
            features = SlideFeatures(settings, args.work_dir, trained)
        return features.bag(slides, case)

    if args.sample_sheet is None and args.out is None:
        case = args.case_id or "patient"
        if args.omics_table and case not in rows:
            raise ValueError(f"{args.omics_table}: no usable row with case_id {case!r} (--case-id)")
        if args.slide and not uses_slides:
            print(
                f"wsirisk predict: {trained.model_name} (as trained) uses no slides; ignored",
                file=sys.stderr,
            )
        slides = [SlideInput(Path(s).stem, Path(s)) for s in args.slide]
        result = predict_patient(
            trained,
            bag_of(slides, case),
            rows.get(case),
            args.allow_missing_modality,
            extra_rows=extras.get(case),
        )
        _warn_missing(case, result)
        print(json.dumps({"case_id": case, "model": trained.model_name, **result}))
        return 0
    slides, rejected = _sheet_slides(args.sample_sheet) if args.sample_sheet else ({}, {})
    patients = sorted(set(slides) | set(rows) | set(rejected) | set(extras))
    out_rows, n_scored = [], 0
    for case in patients:
        record = dict.fromkeys(BATCH_COLUMNS, "")
        record.update(case_id=case, n_slides=str(len(slides.get(case, []))))
        try:
            bag = bag_of(slides.get(case, []), case)
            result = predict_patient(
                trained,
                bag,
                rows.get(case),
                args.allow_missing_modality,
                extra_rows=extras.get(case),
            )
        except MissingModalityError as exc:
            record.update(status="refused", reason=_reason(str(exc), rejected.get(case)))
            print(f"wsirisk predict: {case}: refused: {record['reason']}", file=sys.stderr)
        else:
            _warn_missing(case, result)
            n_scored += 1
            record.update(
                risk=f"{result['risk']:.6f}",
                risk_group=result["risk_group"],
                status=result["status"],
                modalities="+".join(result["modalities"]),
                n_tiles=str(result["n_tiles"]),
                n_folds=str(len(result["fold_risks"])),
                reason=_reason("", rejected.get(case)),
                survival=",".join(f"{s:.4f}" for s in result["survival"]),
            )
        out_rows.append(record)
    out = args.out or Path("predictions.tsv")
    with atomic_path(out) as tmp, tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(
            handle, fieldnames=list(BATCH_COLUMNS), delimiter="\t", lineterminator="\n"
        )
        writer.writeheader()
        writer.writerows(out_rows)
    refused = len(patients) - n_scored
    print(
        f"{len(patients)} patients ({n_scored} scored, {refused} refused) with "
        f"{trained.model_name} -> {out}"
    )
    return 0 if n_scored else 1


def _reason(text: str, rejected: str | None) -> str:
    parts = [text] if text else []
    if rejected:
        parts.append(f"a sheet row was rejected: {rejected}")
    return "; ".join(parts)
