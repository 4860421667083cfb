"""`wsirisk splits`: patient-level cross-validation folds, made here or read from split CSVs.

Made folds are stratified by event status x survival-time quantile and seeded. Provided folds
use the ``,train,val`` layout of ``splits_<k>.csv`` (MCAT/PORPOISE); IDs there are case IDs and
those absent from the omics store are dropped and recorded per fold.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import KFold, StratifiedKFold

from wsirisk.store import atomic_group, open_group

Fold = dict[str, list[str]]


def make_folds(
    patients: list[str],
    months: np.ndarray,
    censorship: np.ndarray,
    n_folds: int = 5,
    seed: int = 0,
) -> list[Fold]:
    """Stratified, seeded K folds: every patient is in exactly one ``val`` list.

    Strata are ``event x time quantile``; the number of time quantiles drops (4, 3, 2, 1) until
    every stratum has at least ``n_folds`` patients, and plain shuffled K-fold is the last resort.
    """
    n = len(patients)
    if len(set(patients)) != n:
        raise ValueError("make_folds: duplicate patient IDs")
    if n_folds < 2 or n_folds > n:
        raise ValueError(f"make_folds: n_folds={n_folds} must be in [2, {n}] for {n} patients")
    order = np.argsort(np.asarray(patients, dtype=object), kind="stable")
    ids = [patients[i] for i in order]
    months = np.asarray(months, dtype=np.float64)[order]
    events = 1 - np.asarray(censorship, dtype=np.int64)[order]
    labels = _strata(months, events, n_folds)
    if labels is None:
        splitter = KFold(n_folds, shuffle=True, random_state=seed).split(np.zeros(n))
    else:
        splitter = StratifiedKFold(n_folds, shuffle=True, random_state=seed).split(
            np.zeros(n), labels
        )
    folds = []
    for train_idx, val_idx in splitter:
        folds.append(
            {"train": [ids[i] for i in sorted(train_idx)], "val": [ids[i] for i in sorted(val_idx)]}
        )
    return folds


def _strata(months: np.ndarray, events: np.ndarray, n_folds: int) -> np.ndarray | None:
    for n_time in (4, 3, 2, 1):
        ranks = pd.Series(months).rank(method="first").to_numpy()
        time_bin = np.floor((ranks - 1) * n_time / len(months)).astype(np.int64)
        labels = events * n_time + time_bin
        counts = np.bincount(labels)
        if counts[counts > 0].min() >= n_folds:
            return labels
    return None


def read_split_dir(
    split_dir: Path, n_folds: int, known: set[str]
) -> tuple[list[Fold], list[list[str]]]:
    """Folds from a folder of ``splits_{k}.csv`` (MCAT/PORPOISE: columns ``train``, ``val``;
    ragged) or from one table of ours (``fold<TAB>part<TAB>case_id``, part train/val, as
    ``resources/splits/<cohort>.tsv`` ships them).

    Returns the folds restricted to ``known`` patients and, per fold, the dropped IDs.
    """
    split_dir = Path(split_dir)
    long = _long_split_table(split_dir) if split_dir.is_file() else None
    folds: list[Fold] = []
    dropped: list[list[str]] = []
    for k in range(n_folds):
        if long is not None:
            path, parts = split_dir, {p: long.get((k, p), []) for p in ("train", "val")}
            if not any(parts.values()):
                raise ValueError(f"{path}: no rows for fold {k} (n_folds={n_folds})")
        else:
            path = split_dir / f"splits_{k}.csv"
            if not path.is_file():
                raise FileNotFoundError(f"split file missing: {path} (n_folds={n_folds})")
            table = pd.read_csv(path, dtype=str)
            missing = [c for c in ("train", "val") if c not in table.columns]
            if missing:
                raise ValueError(f"{path}: missing column(s) {missing}; got {list(table.columns)}")
            parts = {p: list(table[p].dropna()) for p in ("train", "val")}
        fold: Fold = {}
        lost: list[str] = []
        for part in ("train", "val"):
            ids = [s.strip() for s in parts[part] if s.strip()]
            if len(set(ids)) != len(ids):
                raise ValueError(f"{path}: duplicate IDs in column {part!r}")
            fold[part] = sorted(i for i in ids if i in known)
            lost += [i for i in ids if i not in known]
        overlap = set(fold["train"]) & set(fold["val"])
        if overlap:
            raise ValueError(f"{path}: {len(overlap)} patient(s) in both train and val")
        if not fold["train"] or not fold["val"]:
            raise ValueError(f"{path}: no known patients left in train or val")
        folds.append(fold)
        dropped.append(sorted(lost))
    return folds, dropped


def _long_split_table(path: Path) -> dict[tuple[int, str], list[str]]:
    """``fold<TAB>part<TAB>case_id`` rows -> {(fold, part): [case_id, ...]}."""
    table = pd.read_csv(path, sep="\t", dtype=str)
    missing = [c for c in ("fold", "part", "case_id") if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; got {list(table.columns)}")
    bad = table[~table["part"].isin(["train", "val"]) | ~table["fold"].str.isdigit()]
    if len(bad):
        raise ValueError(f"{path}: line {int(bad.index[0]) + 2}: fold must be an integer "
                         f"and part train or val, got {bad.iloc[0].tolist()}")  # fmt: skip
    out: dict[tuple[int, str], list[str]] = {}
    for (fold, part), rows in table.groupby(["fold", "part"], sort=False):
        out[(int(fold), str(part))] = list(rows["case_id"].dropna())
    return out


def read_splits(path: Path) -> dict[str, Any]:
    """Attributes of a splits.zarr store (``folds``, ``n_folds``, ``seed``, ``source``...)."""
    attrs = dict(open_group(path).attrs)
    if "folds" not in attrs:
        raise ValueError(f"{path}: not a splits store (no 'folds' attribute)")
    return attrs


def build_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--omics", type=Path, required=True, help="omics.zarr")
    parser.add_argument("--out", type=Path, required=True, help="splits.zarr to write")
    parser.add_argument("--n-folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--splits-dir",
        type=Path,
        default=None,
        help="use these folds: a folder of splits_<k>.csv or one fold/part/case_id TSV",
    )


def run(args: argparse.Namespace) -> int:
    from wsirisk.omics.load import load_omics

    omics = load_omics(args.omics)
    attrs: dict[str, Any] = {
        "n_folds": args.n_folds,
        "seed": args.seed,
        "n_patients": len(omics.patients),
    }
    if args.splits_dir is not None:
        folds, dropped = read_split_dir(args.splits_dir, args.n_folds, set(omics.patients))
        attrs.update(source=str(args.splits_dir), dropped=dropped)
        n_dropped = len(set().union(*map(set, dropped)))
        if n_dropped:
            warnings.warn(
                f"{args.splits_dir}: {n_dropped} patient ID(s) not in {args.omics} were dropped",
                stacklevel=1,
            )
    else:
        folds = make_folds(
            omics.patients, omics.survival_months, omics.censorship, args.n_folds, args.seed
        )
        attrs.update(source="made", dropped=[[] for _ in folds])
    attrs["folds"] = folds
    with atomic_group(args.out, attrs):
        pass
    sizes = ", ".join(f"{len(f['train'])}/{len(f['val'])}" for f in folds)
    print(f"splits: {len(folds)} folds (train/val {sizes}) -> {args.out}")
    return 0
