"""Which figures a cohort report shows, drawn from the artifacts (plots.py does the drawing)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from wsirisk import layout
from wsirisk.layout import Layout
from wsirisk.report import plots, survival

log = logging.getLogger("wsirisk.report")
TOP_TILES = 6


def draw_all(
    config: dict[str, Any],
    lay: Layout,
    folds: Any,
    months: np.ndarray,
    censorship: np.ndarray,
    risk: np.ndarray,
    high: np.ndarray,
    p_value: float | None,
    out_dir: Path,
) -> dict[str, Path]:
    """Draw every figure; a figure that cannot be drawn is logged and left out."""
    images: dict[str, Path] = {}
    curves = [
        survival.kaplan_meier(months[high], censorship[high], "high risk"),
        survival.kaplan_meier(months[~high], censorship[~high], "low risk"),
    ]
    title = f"{lay.cohort}: out-of-fold risk split at the median"
    images["km"] = plots.km_plot(curves, p_value, title, out_dir / "km.png")
    images["learning"] = plots.learning_curves(folds.histories, out_dir / "learning_curves.png")
    if folds.attention:
        images.update(_heatmaps(config, lay, folds, out_dir))
    if folds.embeddings:
        tsne = _tsne(folds, high, out_dir)
        if tsne:
            images["tsne"] = tsne
    return images


def _heatmaps(config: dict[str, Any], lay: Layout, folds: Any, out_dir: Path) -> dict[str, Path]:
    from wsirisk.slides.read import open_slide, read_tile
    from wsirisk.store import open_group

    encoder = config["features"]["encoder"]
    slide_of: dict[str, list[str]] = {}
    for slide_id in folds.attention:
        store = lay.features_store(encoder, slide_id)
        if store.exists():
            patient = open_group(store).attrs.get("patient_id")
            slide_of.setdefault(patient, []).append(slide_id)
    ranked = [p for p in np.array(folds.patients)[np.argsort(folds.risk)] if p in slide_of]
    if not ranked:
        return {}
    images: dict[str, Path] = {}
    for tag, patient in (("highest", ranked[-1]), ("lowest", ranked[0])):
        slide_id = slide_of[patient][0]
        try:
            tiles_attrs = dict(open_group(lay.slide_store(slide_id)).attrs)
            features = open_group(lay.features_store(encoder, slide_id))
            coords = np.asarray(features[layout.FEAT_COORDS][:])
            attention = folds.attention[slide_id]
            slide = open_slide(Path(tiles_attrs["slide_path"]))
            thumb = np.asarray(slide.get_thumbnail((768, 768)).convert("RGB"))
            downsample = slide.dimensions[0] / thumb.shape[1]
            tile_level0 = (
                tiles_attrs["tile_size_px"] * tiles_attrs["target_mpp"] / tiles_attrs["mpp"]
            )
            risk = folds.risk[folds.patients.index(patient)]
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


def _tsne(folds: Any, high: np.ndarray, out_dir: Path) -> Path | None:
    from sklearn.manifold import TSNE

    points: dict[str, np.ndarray] = {}
    for name, rows in folds.embeddings.items():
        matrix = np.concatenate(rows, axis=0)
        if matrix.shape[0] != high.size or matrix.shape[0] < 5:
            log.warning(
                "t-SNE of %s skipped: %d rows for %d patients", name, matrix.shape[0], high.size
            )
            continue
        perplexity = float(min(30, max(2, (matrix.shape[0] - 1) // 3)))
        points[name] = TSNE(
            n_components=2, perplexity=perplexity, random_state=0, init="pca"
        ).fit_transform(matrix)
    if not points:
        return None
    return plots.tsne_plot(points, high, out_dir / "tsne.png")
