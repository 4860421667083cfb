"""Per-fold data: survival bins and omics scaler fit on the training fold only, patient samples.

A patient's pathology bag is every tile of every slide whose features store names it
(``patient_id`` attribute); its omics are the six category vectors of the omics store. A patient
without features (or whose omics row is entirely missing) gets ``None`` for that modality.
Extra modalities (``wsirisk extra`` tables) are per-patient vectors scaled like the omics, with
the training fold's mean/std; a patient absent from a table lacks that modality.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from wsirisk.layout import CATEGORIES, FEAT_FEATURES, category_slug
from wsirisk.store import open_group

SLUGS: tuple[str, ...] = tuple(category_slug(c) for c in CATEGORIES)


class OmicsLike(Protocol):
    """What the training code reads from ``wsirisk.omics.load.OmicsData``."""

    patients: list[str]
    survival_months: np.ndarray
    censorship: np.ndarray
    groups: dict[str, np.ndarray]
    feature_names: dict[str, list[str]]


# ---- survival bins ------------------------------------------------------------------------
@dataclass(frozen=True)
class Bins:
    """Survival-time intervals in months: ``edges_months`` has ``n_bins + 1`` entries.

    The first edge is 0 and the last is the longest training follow-up; a time ``t`` falls in
    bin ``k`` when ``edges[k] <= t < edges[k+1]`` (times past the last edge go to the last bin).
    """

    edges_months: tuple[float, ...]
    source: str

    @property
    def n_bins(self) -> int:
        return len(self.edges_months) - 1

    @classmethod
    def fit(cls, months: np.ndarray, censorship: np.ndarray, n_bins: int = 4) -> Bins:
        """Quantile edges of the *training* patients' uncensored (death) times."""
        if n_bins < 1:
            raise ValueError(f"n_bins must be >= 1, got {n_bins}")
        months = np.asarray(months, dtype=np.float64)
        if months.size == 0:
            raise ValueError("cannot fit survival bins on an empty training fold")
        deaths = months[np.asarray(censorship) == 0]
        source = "quantiles of the training fold's uncensored times"
        if deaths.size == 0:
            deaths = months
            source = "quantiles of all training times (no events in the training fold)"
        inner = np.quantile(deaths, np.arange(1, n_bins) / n_bins) if n_bins > 1 else []
        edges = (0.0, *(float(q) for q in inner), float(months.max()))
        return cls(edges, source)

    def assign(self, months: np.ndarray) -> np.ndarray:
        """Bin index (int64) of each time."""
        inner = np.asarray(self.edges_months[1:-1], dtype=np.float64)
        return np.searchsorted(inner, np.asarray(months, dtype=np.float64), side="right")

    def to_attrs(self) -> dict[str, Any]:
        return {"edges_months": list(self.edges_months), "source": self.source}


# ---- omics scaler -------------------------------------------------------------------------
@dataclass
class OmicsScaler:
    """Per-feature mean/std of the training fold; NaN cells are imputed with the training mean.

    With ``standardize=False`` only the imputation is applied (std is all ones). With ``clip``,
    scaled values are clipped to ``[-clip, clip]`` (TCGA expression z-scores reach 10^4).
    """

    mean: dict[str, np.ndarray]
    std: dict[str, np.ndarray]
    standardize: bool
    clip: float | None = None

    @classmethod
    def fit(
        cls,
        groups: dict[str, np.ndarray],
        train_rows: np.ndarray,
        standardize: bool = True,
        clip: float | None = None,
    ) -> OmicsScaler:
        mean: dict[str, np.ndarray] = {}
        std: dict[str, np.ndarray] = {}
        for slug in SLUGS:
            x = np.asarray(groups[slug], dtype=np.float64)[train_rows]
            mean[slug], std[slug] = column_stats(x, standardize)
        return cls(mean, std, standardize, clip)

    def transform(
        self, groups: dict[str, np.ndarray], keys: Sequence[str] = SLUGS
    ) -> tuple[dict[str, np.ndarray], int]:  # fmt: skip
        """Scaled groups without NaN, and the number of NaN cells imputed."""
        out: dict[str, np.ndarray] = {}
        n_imputed = 0
        for slug in keys:
            x = np.asarray(groups[slug], dtype=np.float32)
            missing = ~np.isfinite(x)
            n_imputed += int(missing.sum())
            x = np.where(missing, self.mean[slug], x)
            x = (x - self.mean[slug]) / self.std[slug]
            if self.clip is not None:
                x = np.clip(x, -self.clip, self.clip)
            out[slug] = x.astype(np.float32)
        return out, n_imputed

    def to_attrs(self) -> dict[str, Any]:
        return {
            "method": "zscore" if self.standardize else "impute-only",
            "fit_on": "train_patients",
            "imputation": "training-fold mean per feature",
            "clip": self.clip,
            "arrays": "scaler/<slug>_mean, scaler/<slug>_std",
        }


def column_stats(x: np.ndarray, standardize: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and std (float32) of ``x`` (rows = training patients), NaN ignored.

    A column with no observed value gets mean 0; a constant or unobserved column std 1 (and
    every std is 1 without ``standardize``).
    """
    with np.errstate(all="ignore"):
        observed = np.isfinite(x).sum(axis=0)
        m = np.where(observed > 0, np.nanmean(np.where(observed > 0, x, 0.0), axis=0), 0.0)
        s = np.nanstd(x, axis=0) if standardize else np.ones(x.shape[1])
    s = np.where(np.isfinite(s) & (s > 1e-8), s, 1.0)
    return m.astype(np.float32), s.astype(np.float32)


def fit_extra_scaler(
    extra: dict[str, Any],
    train_patients: Sequence[str],
    standardize: bool = True,
    clip: float | None = None,
) -> OmicsScaler:
    """An :class:`OmicsScaler` keyed by extra modality name, fit on the training patients
    present in each table (``extra``: name -> :class:`wsirisk.omics.extra.ExtraTable`)."""
    mean: dict[str, np.ndarray] = {}
    std: dict[str, np.ndarray] = {}
    wanted = set(train_patients)
    for name, table in extra.items():
        rows = [i for i, p in enumerate(table.patients) if p in wanted]
        x = np.asarray(table.values, dtype=np.float64)[rows]
        mean[name], std[name] = column_stats(x.reshape(len(rows), len(table.columns)), standardize)
    return OmicsScaler(mean, std, standardize, clip)


# ---- pathology features -------------------------------------------------------------------
@dataclass(frozen=True)
class SlideRef:
    slide_id: str
    path: Path
    n_tiles: int


class FeatureBank:
    """Index of features stores by patient; loads a patient's bag (all its slides' tiles)."""

    def __init__(self, paths: Sequence[Path], cache_mb: float = 512.0) -> None:
        self.by_patient: dict[str, list[SlideRef]] = {}
        self.skipped: dict[str, str] = {}
        self.dim: int | None = None
        self._cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._cache_budget = int(cache_mb * 2**20)
        for path in sorted(Path(p) for p in paths):
            self._index(path)
        for refs in self.by_patient.values():
            refs.sort(key=lambda r: r.slide_id)

    def _index(self, path: Path) -> None:
        group = open_group(path)
        attrs = dict(group.attrs)
        for key in ("slide_id", "patient_id"):
            if not attrs.get(key):
                raise ValueError(f"{path}: features store has no {key!r} attribute")
        status = attrs.get("status", "ok")
        if status != "ok":
            self.skipped[attrs["slide_id"]] = f"status {status!r}: {attrs.get('reason', '')}"
            return
        if attrs.get("complete") is not True:
            raise ValueError(f"{path}: features store is not complete (attrs 'complete')")
        if FEAT_FEATURES not in group:
            raise ValueError(f"{path}: features store has no {FEAT_FEATURES!r} array")
        shape = group[FEAT_FEATURES].shape
        if len(shape) != 2:
            raise ValueError(f"{path}: {FEAT_FEATURES!r} must be 2-D (N, D), got {shape}")
        if shape[0] == 0:
            self.skipped[attrs["slide_id"]] = "no tiles"
            return
        if self.dim is None:
            self.dim = int(shape[1])
        elif shape[1] != self.dim:
            raise ValueError(f"{path}: feature dim {shape[1]} differs from {self.dim}")
        ref = SlideRef(str(attrs["slide_id"]), path, int(shape[0]))
        self.by_patient.setdefault(str(attrs["patient_id"]), []).append(ref)

    def slides(self, patient: str) -> list[SlideRef]:
        return self.by_patient.get(patient, [])

    def load(self, patient: str) -> np.ndarray:
        """(N, D) float32: the patient's slides' features, concatenated in slide-id order."""
        return self.load_with_coords(patient)[0]

    def load_with_coords(self, patient: str) -> tuple[np.ndarray, np.ndarray]:
        """The bag (N, D) float32 and its patch positions (N, 2) float32 in micrometres
        (:func:`wsirisk.features.io.patient_coords_um`: slides side by side, same order)."""
        if patient in self._cache:
            return self._cache[patient]
        from wsirisk.features.io import level0_mpp, load_features, patient_coords_um

        feats, where = [], []
        for ref in self.slides(patient):
            features, coords, attrs = load_features(ref.path)
            feats.append(features)
            where.append((coords, level0_mpp(attrs)))
        if not feats:
            raise KeyError(f"no features for patient {patient!r}")
        bag = np.concatenate(feats, axis=0)
        pair = (bag, patient_coords_um(where))
        size = bag.nbytes + pair[1].nbytes
        if size <= self._cache_budget:
            self._cache[patient] = pair
            self._cache_budget -= size
        return pair


# ---- samples ------------------------------------------------------------------------------
@dataclass
class Sample:
    """One patient: survival target and the available modalities."""

    patient: str
    months: float
    censorship: int
    y_bin: int
    omics: list[np.ndarray] | None
    slides: list[SlideRef] = field(default_factory=list)
    extra: dict[str, np.ndarray] = field(default_factory=dict)  # name -> scaled float32 vector

    @property
    def has_pathology(self) -> bool:
        return bool(self.slides)


@dataclass
class FoldData:
    """Everything fit on a fold's training patients, and the samples of both sides."""

    train: list[Sample]
    val: list[Sample]
    bins: Bins
    scaler: OmicsScaler
    n_imputed: int
    omics_sizes: list[int]
    missing: dict[str, list[str]]
    # per group (SLUGS order) the feature names; [] when the omics source has none
    feature_names: list[list[str]] = field(default_factory=list)
    extra_scaler: OmicsScaler | None = None  # keyed by extra modality name
    extra_columns: dict[str, list[str]] = field(default_factory=dict)

    @property
    def extra_dims(self) -> dict[str, int]:
        """Extra modality name -> vector length."""
        return {name: len(cols) for name, cols in self.extra_columns.items()}


def prepare_fold(
    omics: OmicsLike,
    fold: dict[str, list[str]],
    n_bins: int = 4,
    standardize: bool = True,
    bank: FeatureBank | None = None,
    clip: float | None = None,
    extra: dict[str, Any] | None = None,
) -> FoldData:
    """Fit bins and scaler on ``fold['train']`` and build samples for train and val.

    Patients of the fold absent from the omics store have no survival label and are dropped
    (listed in ``missing['no_omics_store']``). ``extra`` (name ->
    :class:`wsirisk.omics.extra.ExtraTable`) adds scaled per-patient vectors to
    ``Sample.extra``; patients absent from a table are listed in ``missing['no_<name>']``.
    """
    index = {p: i for i, p in enumerate(omics.patients)}
    missing: dict[str, list[str]] = {"no_omics_store": []}
    rows: dict[str, np.ndarray] = {}
    for part in ("train", "val"):
        ids = fold[part]
        missing["no_omics_store"] += [p for p in ids if p not in index]
        rows[part] = np.array([index[p] for p in ids if p in index], dtype=np.int64)
    if rows["train"].size == 0:
        raise ValueError("fold has no training patients in the omics store")
    months = np.asarray(omics.survival_months, dtype=np.float64)
    censorship = np.asarray(omics.censorship, dtype=np.int64)
    groups = {s: np.asarray(omics.groups[s], dtype=np.float32) for s in SLUGS}
    no_omics = np.all(np.stack([~np.isfinite(g).any(axis=1) for g in groups.values()]), axis=0)
    bins = Bins.fit(months[rows["train"]], censorship[rows["train"]], n_bins)
    fit_rows = rows["train"][~no_omics[rows["train"]]]
    scaler = OmicsScaler.fit(groups, fit_rows, standardize, clip)
    used = np.concatenate([rows["train"], rows["val"]])
    with_omics = used[~no_omics[used]]
    n_imputed = sum(int((~np.isfinite(g[with_omics])).sum()) for g in groups.values())
    scaled, _ = scaler.transform(groups)
    y_bins = bins.assign(months)
    samples: dict[str, list[Sample]] = {}
    for part, idx in rows.items():
        samples[part] = [
            Sample(
                patient=omics.patients[i],
                months=float(months[i]),
                censorship=int(censorship[i]),
                y_bin=int(y_bins[i]),
                omics=None if no_omics[i] else [scaled[s][i] for s in SLUGS],
                slides=bank.slides(omics.patients[i]) if bank is not None else [],
            )
            for i in idx
        ]
    missing["no_omics"] = [omics.patients[i] for i in used if no_omics[i]]
    missing["no_pathology"] = [s.patient for part in samples.values() for s in part if not s.slides]
    extra_scaler = None
    if extra:
        train_ids = [omics.patients[i] for i in rows["train"]]
        extra_scaler = fit_extra_scaler(extra, train_ids, standardize, clip)
        for name, table in extra.items():
            scaled, _ = extra_scaler.transform({name: table.values}, [name])
            where = {p: r for r, p in enumerate(table.patients)}
            for part in samples.values():
                for s in part:
                    if s.patient in where:
                        s.extra[name] = scaled[name][where[s.patient]]
            missing[f"no_{name}"] = [
                s.patient for part in samples.values() for s in part if name not in s.extra
            ]
    return FoldData(
        train=samples["train"],
        val=samples["val"],
        bins=bins,
        scaler=scaler,
        n_imputed=n_imputed,
        omics_sizes=[int(groups[s].shape[1]) for s in SLUGS],
        missing=missing,
        feature_names=_feature_names(omics, groups),
        extra_scaler=extra_scaler,
        extra_columns={name: list(table.columns) for name, table in (extra or {}).items()},
    )


def _feature_names(omics: OmicsLike, groups: dict[str, np.ndarray]) -> list[list[str]]:
    """Feature names per group in SLUGS order, or [] when any group's names are missing."""
    names = [list(getattr(omics, "feature_names", {}).get(s, [])) for s in SLUGS]
    ok = all(len(n) == groups[s].shape[1] for n, s in zip(names, SLUGS, strict=True))
    return names if ok else []


def inner_split(
    samples: list[Sample], frac: float, seed: int = 0
) -> tuple[list[Sample], list[Sample]]:
    """Seeded split of (training) samples into ``(fit, stop)``, stratified by event status.

    ``stop`` holds about ``frac`` of the patients (at least one per event class when possible)
    and serves as an inner validation set for early stopping; order within each part is kept.
    """
    if not 0 < frac < 1:
        raise ValueError(f"inner validation fraction must be in (0, 1), got {frac}")
    rng = np.random.default_rng(seed)
    stop: set[int] = set()
    for event in sorted({s.censorship for s in samples}):
        idx = np.array([i for i, s in enumerate(samples) if s.censorship == event])
        n_stop = min(len(idx) - 1, max(1, round(frac * len(idx))))
        stop.update(rng.permutation(idx)[:n_stop].tolist())
    fit = [s for i, s in enumerate(samples) if i not in stop]
    return fit, [s for i, s in enumerate(samples) if i in stop]
