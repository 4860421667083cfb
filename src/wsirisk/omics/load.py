"""Load omics.zarr (written by ``wsirisk omics``) for the training code."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wsirisk.layout import OMICS_CENSORSHIP, OMICS_GROUPS, OMICS_MONTHS, category_slug


@dataclass
class OmicsData:
    """Per-patient survival and six unscaled feature groups (rows follow ``patients``)."""

    patients: list[str]
    survival_months: np.ndarray  # float32 (P,)
    censorship: np.ndarray  # int8 (P,), 1 = censored
    groups: dict[str, np.ndarray]  # slug -> float32 (P, F_g), in ``categories`` order
    feature_names: dict[str, list[str]]  # slug -> F_g column names
    slides: dict[str, list[str]]  # case_id -> slide_ids
    categories: list[str]

    @property
    def group_sizes(self) -> dict[str, int]:
        """slug -> number of features."""
        return {slug: int(values.shape[1]) for slug, values in self.groups.items()}

    def select(self, case_ids: list[str]) -> OmicsData:
        """The rows of ``case_ids`` (in that order); KeyError names unknown patients."""
        index = {case: row for row, case in enumerate(self.patients)}
        unknown = [case for case in case_ids if case not in index]
        if unknown:
            raise KeyError(f"patients not in omics data: {unknown[:10]}")
        rows = np.array([index[case] for case in case_ids], dtype=np.int64)
        return OmicsData(
            patients=list(case_ids),
            survival_months=self.survival_months[rows],
            censorship=self.censorship[rows],
            groups={slug: values[rows] for slug, values in self.groups.items()},
            feature_names=self.feature_names,
            slides={case: self.slides.get(case, []) for case in case_ids},
            categories=self.categories,
        )


def load_omics(path: Path) -> OmicsData:
    """Read omics.zarr; errors name the path and the missing or inconsistent key."""
    from wsirisk.store import open_group

    path = Path(path)
    group = open_group(path)
    attrs = dict(group.attrs)
    for key in ("patients", "categories", "feature_names", "slides"):
        if key not in attrs:
            raise ValueError(f"{path}: attribute {key!r} missing (not an omics.zarr?)")
    patients = [str(case) for case in attrs["patients"]]
    n_patients = len(patients)

    def array(key: str) -> np.ndarray:
        try:
            values = np.asarray(group[key][...])
        except KeyError as exc:
            raise ValueError(f"{path}: array {key!r} missing") from exc
        if values.shape[0] != n_patients:
            raise ValueError(f"{path}: {key} has {values.shape[0]} rows, expected {n_patients}")
        return values

    categories = list(attrs["categories"])
    groups: dict[str, np.ndarray] = {}
    feature_names: dict[str, list[str]] = {}
    for category in categories:
        slug = category_slug(category)
        values = array(f"{OMICS_GROUPS}/{slug}").astype(np.float32, copy=False)
        names = list(attrs["feature_names"].get(slug, []))
        if values.ndim != 2 or values.shape[1] != len(names):
            raise ValueError(
                f"{path}: {OMICS_GROUPS}/{slug} has shape {values.shape}, "
                f"expected ({n_patients}, {len(names)})"
            )
        groups[slug] = values
        feature_names[slug] = names
    return OmicsData(
        patients=patients,
        survival_months=array(OMICS_MONTHS).astype(np.float32, copy=False),
        censorship=array(OMICS_CENSORSHIP).astype(np.int8, copy=False),
        groups=groups,
        feature_names=feature_names,
        slides={case: list(ids) for case, ids in attrs["slides"].items()},
        categories=categories,
    )
