"""`wsirisk train`: train one model on one fold; write the fold store and a checkpoint.

    wsirisk train --omics omics.zarr --splits splits.zarr --fold 0 \\
        --features features/resnet50_trunc/*.zarr --options '{"model": "snn", "epochs": 20}' \\
        --preprocess '{"slides": {...}, "features": {...}}' \\
        --out train/snn/fold0.zarr --checkpoint train/snn/fold0.pt [--extra extra.zarr]

The checkpoint records what ``wsirisk predict --run`` needs besides the weights: the
``--preprocess`` settings (the config's ``slides`` and ``features`` sections), the modalities
the fold really trained with (``trained_modalities``: a modality of the model that no training
patient had is not listed) and the identity of the encoder that made the training features
(``features_identity``: encoder, weights_sha256, params_sha256, transform, dim).

``--extra`` (a ``wsirisk extra`` store) feeds further per-patient modalities to the models that
read them (M4Survive); their training-fold scaler goes into the checkpoint. A Cox-trained fold
(``loss`` cox, or auto for M4Survive) stores Breslow's baseline in the checkpoint as
``baseline_cumhaz_at_edges`` (H0 at ``bins_months[1:]``; curves by
:func:`wsirisk.models.cox_survival`).
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wsirisk.layout import CATEGORIES, FOLD_VAL_RISK
from wsirisk.store import atomic_group, atomic_path
from wsirisk.training.data import SLUGS, FeatureBank, FoldData, OmicsLike, prepare_fold
from wsirisk.training.metrics import censoring_warning, cindex
from wsirisk.training.splits import read_splits
from wsirisk.training.trainer import FoldResult, TrainOptions, train_fold

CHECKPOINT_FORMAT = "wsirisk-fold-checkpoint/1"


def _json_object(text: str, flag: str) -> tuple[dict[str, Any], str]:
    """A JSON object given inline or as the path of a JSON file; errors name the source."""
    source = flag
    if not text.lstrip().startswith("{") and Path(text).is_file():
        source, text = text, Path(text).read_text()
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{source}: not valid JSON ({err})") from None
    if not isinstance(value, dict):
        raise ValueError(f"{source}: expected a JSON object, got {type(value).__name__}")
    return value, source


def parse_options(text: str) -> TrainOptions:
    """``--options``: a JSON object, or the path of a JSON file holding one."""
    options, source = _json_object(text, "--options")
    return TrainOptions.from_dict(options, source)


PREPROCESS_SECTIONS = ("slides", "features")


def parse_preprocess(text: str | None) -> dict[str, Any]:
    """``--preprocess``: ``{"slides": {...}, "features": {...}}`` (the config's sections)."""
    if text is None:
        return {}
    value, source = _json_object(text, "--preprocess")
    unknown = sorted(set(value) - set(PREPROCESS_SECTIONS))
    if unknown:
        raise ValueError(f"{source}: unknown section(s) {unknown}; known: {PREPROCESS_SECTIONS}")
    for section, body in value.items():
        if not isinstance(body, dict):
            raise ValueError(f"{source}: section {section!r} must be an object")
    return value


def trained_modalities(model_modalities: set[str], train: list[Any]) -> list[str]:
    """Modalities of the model that at least one training patient had."""
    has = {
        "pathology": any(s.has_pathology for s in train),
        "genomics": any(s.omics is not None for s in train),
    }
    return sorted(m for m in model_modalities if has.get(m, True))


def features_identity(bank: FeatureBank | None) -> list[dict[str, Any]]:
    """Distinct encoder identities of the features stores the fold read (usually one)."""
    from wsirisk.store import open_group

    if bank is None:
        return []
    keys = ("encoder", "weights", "weights_sha256", "params_sha256", "transform", "dim")
    found: list[dict[str, Any]] = []
    for refs in bank.by_patient.values():
        for ref in refs:
            attrs = dict(open_group(ref.path).attrs)
            identity = {k: attrs.get(k) for k in keys}
            if identity not in found:
                found.append(identity)
    return found


def best_epoch(history: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Epoch with the highest validation C-index (selected ON validation: optimistic)."""
    defined = [h for h in history if h["val_cindex"] is not None]
    if not defined:
        return None
    best = max(defined, key=lambda h: h["val_cindex"])
    return {
        "epoch": best["epoch"],
        "val_cindex": best["val_cindex"],
        "selection": "selected on the validation fold itself: optimistic, not the estimate "
        "(the estimate is 'cindex', the last epoch)",
    }


def fold_attrs(
    fold: int, opts: TrainOptions, data: FoldData, result: FoldResult, notes: list[str]
) -> dict[str, Any]:
    """Attributes of the fold store (all JSON)."""
    val = result.val_samples
    c = cindex([s.months for s in val], result.val.risk, [s.censorship for s in val])
    used = {s.patient for s in data.train} - set(result.unusable)
    return {
        "fold": fold,
        "model": opts.model,
        "options": opts.to_dict(),
        "loss": result.loss,
        "train_patients": [s.patient for s in data.train if s.patient in used],
        "val_patients": [s.patient for s in val],
        "bins": list(data.bins.edges_months),
        "bins_source": data.bins.source,
        "scaler": data.scaler.to_attrs(),
        "cindex": c.value,
        "cindex_reason": c.reason,
        "cindex_epoch": "last",
        "history": result.history,
        "best_epoch_val_cindex": best_epoch(result.history),
        "n_imputed": data.n_imputed,
        "missing": data.missing,
        "unusable": result.unusable,
        "warnings": notes,
        "seconds": round(result.seconds, 3),
        "device": result.device,
        "torch_version": torch.__version__,
    }


def write_fold_store(path: Path, attrs: dict[str, Any], data: FoldData, result: FoldResult) -> None:
    """Fold store: val arrays (order = attrs['val_patients']), scaler, attention, embeddings."""
    val = result.val_samples
    with atomic_group(path, attrs) as group:
        group.create_array(FOLD_VAL_RISK, data=result.val.risk.astype(np.float32))
        group.create_array("val_survival", data=result.val.survival.astype(np.float32))
        group.create_array("val_months", data=np.array([s.months for s in val], np.float32))
        group.create_array("val_censorship", data=np.array([s.censorship for s in val], np.int8))
        scaler = group.create_group("scaler")
        for slug in SLUGS:
            scaler.create_array(f"{slug}_mean", data=data.scaler.mean[slug])
            scaler.create_array(f"{slug}_std", data=data.scaler.std[slug])
        attention = group.create_group("attention")
        for slide_id, att in sorted(result.val.attention.items()):
            attention.create_array(slide_id, data=att.astype(np.float32))
        embeddings = group.create_group("embeddings")
        embeddings.attrs["patients"] = [s.patient for s in val]
        for name, mat in result.val.embeddings.items():
            embeddings.create_array(name, data=mat.astype(np.float32))


def checkpoint_dict(
    fold: int,
    opts: TrainOptions,
    data: FoldData,
    result: FoldResult,
    omics: OmicsLike,
    preprocess: dict[str, Any] | None = None,
    identity: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Plain tensors / lists / numbers only: loads with ``torch.load(weights_only=True)``."""
    used = set(result.unusable)
    train = [s for s in data.train if s.patient not in used]
    return {
        "preprocess": json.loads(json.dumps(preprocess or {})),
        "trained_modalities": trained_modalities(set(result.model.modalities), train),
        "features_identity": json.loads(json.dumps(identity or [])),
        "format": CHECKPOINT_FORMAT,
        "fold": fold,
        "model": opts.model,
        "model_kwargs": result.model_kwargs,
        "state_dict": {k: v.detach().cpu() for k, v in result.model.state_dict().items()},
        "omics_sizes": list(data.omics_sizes),
        "categories": list(CATEGORIES),
        "bins_months": list(data.bins.edges_months),
        "scaler_standardize": data.scaler.standardize,
        "scaler_clip": data.scaler.clip,
        "scaler_mean": {s: torch.from_numpy(data.scaler.mean[s].copy()) for s in SLUGS},
        "scaler_std": {s: torch.from_numpy(data.scaler.std[s].copy()) for s in SLUGS},
        "feature_names": {s: list(omics.feature_names.get(s, [])) for s in SLUGS},
        "options": opts.to_dict(),
        "loss": result.loss,
        **extra_checkpoint(data, result),
    }


def stores_from_manifests(
    manifests: list[Path], skipped: dict[str, str] | None = None
) -> list[Path]:
    """Features stores listed in extraction batch manifests (column ``store``), in order.

    A slide whose extraction failed (status ``error``) is left out and named in ``skipped``
    (slide_id -> reason); any other listed store that does not exist is an error naming the
    manifest and the store.
    """
    import csv

    stores: list[Path] = []
    for manifest in manifests:
        with open(manifest, newline="") as handle:
            reader = csv.DictReader(handle, delimiter="\t")
            if "store" not in (reader.fieldnames or []):
                raise ValueError(f"{manifest}: extraction manifest has no 'store' column")
            for line, row in enumerate(reader, start=2):
                if row.get("status") == "error":
                    if skipped is not None:
                        skipped[row.get("slide_id") or row["store"]] = (
                            f"feature extraction failed ({manifest}:{line}): {row.get('reason')}"
                        )
                    continue
                store = Path(row["store"])
                if not store.exists():
                    raise FileNotFoundError(f"{manifest}:{line}: features store {store} is missing")
                stores.append(store)
    return stores


def extra_checkpoint(data: FoldData, result: FoldResult) -> dict[str, Any]:
    """Checkpoint keys of the Cox baseline and of the extra modalities' scaler (when used)."""
    out: dict[str, Any] = {}
    if result.baseline_cumhaz is not None:
        out["baseline_cumhaz_at_edges"] = list(result.baseline_cumhaz)
    scaler = data.extra_scaler
    if scaler is not None and result.model_kwargs.get("extra_dims"):
        names = list(result.model_kwargs["extra_dims"])
        out["extra_mean"] = {n: torch.from_numpy(scaler.mean[n].copy()) for n in names}
        out["extra_std"] = {n: torch.from_numpy(scaler.std[n].copy()) for n in names}
        out["extra_columns"] = {n: list(data.extra_columns[n]) for n in names}
    return out


def build_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--omics", type=Path, required=True, help="omics.zarr")
    parser.add_argument("--splits", type=Path, required=True, help="splits.zarr")
    parser.add_argument("--fold", type=int, required=True)
    parser.add_argument("--features", type=Path, nargs="*", default=[], help="features stores")
    parser.add_argument(
        "--features-manifest",
        type=Path,
        nargs="*",
        default=[],
        help="extraction batch manifests (TSV with a 'store' column): their stores are added",
    )
    parser.add_argument("--options", default="{}", help="JSON object (config 'train' section)")
    parser.add_argument(
        "--preprocess",
        help="JSON object (or file) with the config's 'slides' and 'features' sections; "
        "recorded in the checkpoint for `wsirisk predict --run`",
    )
    parser.add_argument("--out", type=Path, required=True, help="fold store (zarr) to write")
    parser.add_argument("--checkpoint", type=Path, required=True, help="checkpoint (.pt)")
    parser.add_argument("--extra", type=Path, help="extra.zarr (wsirisk extra): more modalities")


def run(args: argparse.Namespace) -> int:
    from wsirisk.omics.load import load_omics

    opts = parse_options(args.options)
    preprocess = parse_preprocess(args.preprocess)
    omics = load_omics(args.omics)
    splits = read_splits(args.splits)
    folds = splits["folds"]
    if not 0 <= args.fold < len(folds):
        raise ValueError(f"{args.splits}: fold {args.fold} out of range (0..{len(folds) - 1})")
    notes = []
    msg = censoring_warning(omics.survival_months, omics.censorship)
    if msg:
        notes.append(f"{args.omics}: {msg}")
        warnings.warn(notes[-1], stacklevel=1)
    extraction_failed: dict[str, str] = {}
    stores = list(args.features) + stores_from_manifests(args.features_manifest, extraction_failed)
    for slide_id, reason in extraction_failed.items():
        notes.append(f"slide {slide_id} left out: {reason}")
        warnings.warn(notes[-1], stacklevel=1)
    bank = FeatureBank(stores) if stores else None
    extra = None
    if getattr(args, "extra", None) is not None:
        from wsirisk.omics.extra import load_extra

        extra = load_extra(args.extra)
    data = prepare_fold(
        omics, folds[args.fold], opts.n_bins, opts.standardize, bank, clip=opts.clip, extra=extra
    )
    if data.missing["no_omics_store"]:
        notes.append(
            f"{len(data.missing['no_omics_store'])} fold patient(s) not in {args.omics} dropped"
        )

    def log(line: str) -> None:
        print(f"[{opts.model} fold {args.fold}] {line}", file=sys.stderr, flush=True)

    log(
        f"train {len(data.train)} / val {len(data.val)} patients, bins {data.bins.edges_months}, "
        f"{data.n_imputed} NaN cell(s) imputed"
    )
    result = train_fold(data, opts, bank, log)
    attrs = fold_attrs(args.fold, opts, data, result, notes)
    attrs["skipped_slides"] = dict(bank.skipped) if bank is not None else {}
    checkpoint = checkpoint_dict(
        args.fold, opts, data, result, omics, preprocess, features_identity(bank)
    )
    attrs["trained_modalities"] = checkpoint["trained_modalities"]
    if result.unusable:
        listed = ", ".join(result.unusable[:10]) + (" ..." if len(result.unusable) > 10 else "")
        notes.append(
            f"{len(result.unusable)} fold patient(s) have no modality {opts.model} uses "
            f"({'+'.join(sorted(result.model.modalities))}): neither trained nor scored: {listed}"
        )
        warnings.warn(notes[-1], stacklevel=1)
    missing = sorted(set(result.model.modalities) - set(checkpoint["trained_modalities"]))
    if missing:
        notes.append(
            f"{opts.model} uses {'+'.join(sorted(result.model.modalities))} but no training "
            f"patient had {'+'.join(missing)}: trained without it"
        )
        warnings.warn(notes[-1], stacklevel=1)
    write_fold_store(args.out, attrs, data, result)
    with atomic_path(args.checkpoint) as tmp:
        torch.save(checkpoint, tmp)
    value = attrs["cindex"]
    shown = f"{value:.4f}" if value is not None else f"undefined ({attrs['cindex_reason']})"
    print(f"fold {args.fold} {opts.model}: val C-index {shown} -> {args.out}")
    return 0
