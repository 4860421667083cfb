"""Fold stores of one model read back for the report (layout: train/<model>/fold<k>.zarr)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from wsirisk import layout
from wsirisk.store import open_group


@dataclass
class Fold:
    """One fold's validation predictions, as the trainer wrote them (order = ``patients``)."""

    index: int
    attrs: dict[str, Any]
    patients: list[str]
    risk: np.ndarray
    months: np.ndarray
    censorship: np.ndarray
    survival: np.ndarray  # (P, n_bins) discrete-time survival curves
    attention: dict[str, np.ndarray] = field(default_factory=dict)  # slide_id -> (N,)
    embeddings: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (P, D), NaN rows

    @property
    def cindex(self) -> float | None:
        return self.attrs.get("cindex")

    @property
    def bin_edges(self) -> list[float]:
        return [float(e) for e in self.attrs.get("bins", [])]

    @property
    def patients_sha256(self) -> str:
        """Identity of the validation set (two models are fold-paired when these agree)."""
        return hashlib.sha256("\n".join(sorted(self.patients)).encode()).hexdigest()


@dataclass
class Folds:
    """Every fold of one model, and their out-of-fold predictions pooled."""

    folds: list[Fold]

    @property
    def patients(self) -> list[str]:
        return [p for f in self.folds for p in f.patients]

    @property
    def fold_of(self) -> np.ndarray:
        return np.concatenate([np.full(len(f.patients), f.index) for f in self.folds])

    def pooled(self, name: str) -> np.ndarray:
        return np.concatenate([getattr(f, name) for f in self.folds])

    @property
    def attention(self) -> dict[str, np.ndarray]:
        return {k: v for f in self.folds for k, v in f.attention.items()}

    @property
    def histories(self) -> list[list[dict]]:
        return [list(f.attrs.get("history", [])) for f in self.folds]


def load_fold(path: Path, index: int) -> Fold:
    group = open_group(path)
    attrs = dict(group.attrs)
    fold = Fold(
        index=int(attrs.get("fold", index)),
        attrs=attrs,
        patients=[str(p) for p in attrs["val_patients"]],
        risk=np.asarray(group[layout.FOLD_VAL_RISK][:], dtype=np.float64),
        months=np.asarray(group["val_months"][:], dtype=np.float64),
        censorship=np.asarray(group["val_censorship"][:], dtype=np.int64),
        survival=np.asarray(group["val_survival"][:], dtype=np.float64)
        if "val_survival" in group
        else np.zeros((len(attrs["val_patients"]), 0)),
    )
    if fold.risk.size != len(fold.patients):
        raise ValueError(
            f"{path}: {fold.risk.size} risks for {len(fold.patients)} validation patients"
        )
    if "attention" in group:
        for name, array in group["attention"].arrays():
            fold.attention[name] = np.asarray(array[:], dtype=np.float64)
    if "embeddings" in group:
        for name, array in group["embeddings"].arrays():
            fold.embeddings[name] = np.asarray(array[:], dtype=np.float64)
    return fold


def load_folds(paths: list[Path]) -> Folds:
    """Read every fold store; a missing one is an error naming it."""
    return Folds([load_fold(Path(p), k) for k, p in enumerate(paths)])
