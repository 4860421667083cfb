"""Which figures a cohort report shows, drawn from the artifacts (plots.py does the drawing)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wsirisk import layout
from wsirisk.layout import Layout
from wsirisk.report import plots, survival
from wsirisk.report.folds import Folds

log = logging.getLogger("wsirisk.report")
TOP_TILES = 6


def draw_all(
    config: dict[str, Any],
    lay: Layout,
    model: str,
    folds: Folds,
    evaluation: dict[str, Any],
    out_dir: Path,
) -> tuple[dict[str, Path], list[TsnePanel]]:
    """Draw every figure; a figure that cannot be drawn is logged and left out."""
    images: dict[str, Path] = {}
    months, censorship, risk = (folds.pooled(n) for n in ("months", "censorship", "risk"))
    high = survival.risk_groups(risk)
    curves = [
        survival.kaplan_meier(months[high], censorship[high], "high risk"),
        survival.kaplan_meier(months[~high], censorship[~high], "low risk"),
    ]
    title = f"{lay.cohort}, {model}: out-of-fold risk split at the median"
    images["km"] = plots.km_plot(curves, evaluation["logrank_p"], title, out_dir / "km.png")
    images["learning"] = plots.learning_curves(folds.histories, out_dir / "learning_curves.png")
    if folds.attention:
        images.update(_heatmaps(config, lay, folds, out_dir))
    panels = tsne_panels(folds)
    if any(p.xy is not None for p in panels):
        experts = model == "me_mamba"
        images["tsne"] = plots.tsne_grid(panels, tsne_title(model), experts, out_dir / "tsne.png")
    return images, panels


def tsne_title(model: str) -> str:
    """Heading of the t-SNE figure, in the model's own terms."""
    if model == "me_mamba":
        return "t-SNE of the experts' pooled tokens (pathology, genomics and synergistic experts)"
    return f"t-SNE of the {model} model's pooled embeddings"


def _heatmaps(config: dict[str, Any], lay: Layout, folds: Folds, out_dir: Path) -> dict[str, Path]:
    from wsirisk.slides.read import open_slide, read_tile
    from wsirisk.store import open_group

    encoder = config["features"]["encoder"]
    attention_of = folds.attention
    patients, risks = folds.patients, folds.pooled("risk")
    slide_of: dict[str, list[str]] = {}
    for slide_id in attention_of:
        store = lay.features_store(encoder, slide_id)
        if store.exists():
            patient = open_group(store).attrs.get("patient_id")
            slide_of.setdefault(patient, []).append(slide_id)
    ranked = [p for p in np.array(patients)[np.argsort(risks)] if p in slide_of]
    if not ranked:
        return {}
    images: dict[str, Path] = {}
    for tag, patient in (("highest", ranked[-1]), ("lowest", ranked[0])):
        slide_id = slide_of[patient][0]
        try:
            tiles_attrs = dict(open_group(lay.slide_store(slide_id)).attrs)
            features = open_group(lay.features_store(encoder, slide_id))
            coords = np.asarray(features[layout.FEAT_COORDS][:])
            attention = attention_of[slide_id]
            slide = open_slide(Path(tiles_attrs["slide_path"]))
            thumb = np.asarray(slide.get_thumbnail((768, 768)).convert("RGB"))
            downsample = slide.dimensions[0] / thumb.shape[1]
            tile_level0 = (
                tiles_attrs["tile_size_px"] * tiles_attrs["target_mpp"] / tiles_attrs["mpp"]
            )
            risk = float(risks[patients.index(patient)])
            images[f"heatmap_{tag}"] = plots.heatmap(
                thumb,
                downsample,
                coords,
                tile_level0,
                attention,
                f"{tag} risk: {patient} ({slide_id}), risk {risk:.3f}",
                out_dir / f"heatmap_{tag}.png",
            )
            top = np.argsort(attention)[::-1][:TOP_TILES]
            tiles = [
                read_tile(
                    slide,
                    *coords[i],
                    tiles_attrs["read_level"],
                    tiles_attrs["read_size_px"],
                    tiles_attrs["tile_size_px"],
                )
                for i in top
            ]
            images[f"tiles_{tag}"] = plots.tile_strip(
                tiles, f"top-attention tiles, {tag} risk ({patient})", out_dir / f"tiles_{tag}.png"
            )
        except (KeyError, OSError, RuntimeError, ValueError) as exc:
            log.warning("heatmap for %s (%s) skipped: %s", patient, slide_id, exc)
    return images


@dataclass
class TsnePanel:
    """One t-SNE panel: one fold model's validation patients, one embedding."""

    fold: int
    embedding: str
    patients: list[str]
    xy: np.ndarray | None  # (n, 2), None when not drawn
    high_risk: np.ndarray  # (n,) bool: above the fold's median risk
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "fold": self.fold,
            "embedding": self.embedding,
            "n_patients": len(self.patients),
            "drawn": self.xy is not None,
            "note": self.note,
        }


MIN_TSNE_POINTS = 5
EXACT_TSNE_MAX = 1000  # exact gradients below this: fast for a fold's patients, no threads


def tsne_panels(folds: Folds) -> list[TsnePanel]:
    """A separate t-SNE per fold and embedding: each fold is a different model, so a joint
    projection would show the folds as clumps. Patients without the embedding (NaN rows: the
    modality was absent) are left out of that panel; groups split at the fold's median risk."""
    from sklearn.manifold import TSNE

    panels = []
    for fold in folds.folds:
        for name in sorted(fold.embeddings):
            matrix = fold.embeddings[name]
            keep = np.all(np.isfinite(matrix), axis=1) if matrix.size else np.zeros(0, bool)
            if matrix.shape[0] != len(fold.patients):
                log.warning(
                    "fold %d: %s has %d rows for %d patients: not drawn",
                    fold.index,
                    name,
                    matrix.shape[0],
                    len(fold.patients),
                )
                continue
            patients = [p for p, k in zip(fold.patients, keep, strict=True) if k]
            risk = fold.risk[keep]
            high = risk > np.median(risk) if risk.size else np.zeros(0, bool)
            absent = int((~keep).sum())
            note = f"{absent} patient(s) without this embedding left out" if absent else None
            if len(patients) < MIN_TSNE_POINTS:
                short = f"{len(patients)} patient(s), need {MIN_TSNE_POINTS}: not drawn"
                note = short if note is None else f"{short}; {note}"
                panels.append(TsnePanel(fold.index, name, patients, None, high, note))
                continue
            perplexity = float(min(30, max(2, (len(patients) - 1) // 3)))
            method = "exact" if len(patients) <= EXACT_TSNE_MAX else "barnes_hut"
            xy = TSNE(
                n_components=2, perplexity=perplexity, random_state=0, init="pca", method=method
            ).fit_transform(matrix[keep])
            panels.append(TsnePanel(fold.index, name, patients, xy, high, note))
    return panels
