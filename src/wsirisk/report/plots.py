"""Figures of the report (matplotlib, Agg backend); each writes one PNG and returns its path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from wsirisk.report.survival import KMCurve


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path, metadata: dict[str, str] | None = None) -> Path:
    """Write the PNG atomically; ``metadata`` goes into its text chunks."""
    from wsirisk.store import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight", metadata=metadata)
    _pyplot().close(fig)
    return path


def km_plot(curves: list[KMCurve], p_value: float | None, title: str, path: Path) -> Path:
    """KM curves with shaded 95% bands; red = high risk, blue = low risk (paper's Fig. 4)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    colours = {"high risk": "tab:red", "low risk": "tab:blue"}
    for curve in curves:
        colour = colours.get(curve.label, None)
        ax.step(
            curve.months,
            curve.survival,
            where="post",
            color=colour,
            label=f"{curve.label} (n={curve.n}, events={curve.events})",
        )
        ax.fill_between(
            curve.months, curve.ci_lower, curve.ci_upper, step="post", color=colour, alpha=0.15
        )
    p_text = "n/a" if p_value is None else f"{p_value:.2e}"
    ax.set_title(f"{title}\nlog-rank p = {p_text}")
    ax.set_xlabel("months")
    ax.set_ylabel("survival probability")
    ax.set_ylim(0, 1.02)
    ax.legend(loc="lower left", fontsize=8)
    return _save(fig, path)


def learning_curves(histories: list[list[dict]], path: Path) -> Path:
    """Per-fold loss and train/val C-index by epoch."""
    plt = _pyplot()
    fig, (ax_loss, ax_c) = plt.subplots(1, 2, figsize=(10, 3.6))
    for fold, history in enumerate(histories):
        if not history:
            continue
        epochs = [row["epoch"] for row in history]
        colour = f"C{fold}"
        ax_loss.plot(
            epochs, [row.get("loss") for row in history], color=colour, label=f"fold {fold}"
        )
        train_c = [row.get("train_cindex") for row in history]
        val_c = [row.get("val_cindex") for row in history]
        ax_c.plot(epochs, [np.nan if v is None else v for v in train_c], color=colour, ls="--")
        ax_c.plot(
            epochs, [np.nan if v is None else v for v in val_c], color=colour, label=f"fold {fold}"
        )
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("training loss")
    ax_c.set_xlabel("epoch")
    ax_c.set_ylabel("C-index (dashed: train, solid: val)")
    ax_c.axhline(0.5, color="grey", lw=0.8)
    ax_loss.legend(fontsize=7)
    return _save(fig, path)


def heatmap(
    thumbnail: np.ndarray,
    downsample: float,
    coords_level0: np.ndarray,
    tile_level0_px: float,
    attention: np.ndarray,
    title: str,
    path: Path,
) -> Path:
    """Attention of each tile drawn over the slide thumbnail (paper's Fig. 5)."""
    plt = _pyplot()
    height, width = thumbnail.shape[:2]
    canvas = np.full((height, width), np.nan, dtype=float)
    if attention.size:
        ranks = np.argsort(np.argsort(attention)) / max(1, attention.size - 1)  # percentile
        side = max(1, int(round(tile_level0_px / downsample)))
        for (x, y), value in zip(coords_level0, ranks, strict=True):
            col, row = int(x / downsample), int(y / downsample)
            canvas[row : row + side, col : col + side] = value
    fig, ax = plt.subplots(figsize=(5, 5 * height / max(width, 1)))
    ax.imshow(thumbnail)
    shown = ax.imshow(np.ma.masked_invalid(canvas), cmap="jet", alpha=0.45, vmin=0, vmax=1)
    fig.colorbar(shown, ax=ax, fraction=0.04, label="attention percentile")
    ax.set_title(title, fontsize=9)
    ax.axis("off")
    return _save(fig, path)


def tile_strip(tiles: list[np.ndarray], title: str, path: Path) -> Path:
    """A row of tiles (the top-attention tiles of a patient)."""
    plt = _pyplot()
    count = max(1, len(tiles))
    fig, axes = plt.subplots(1, count, figsize=(1.8 * count, 2.1))
    axes = np.atleast_1d(axes)
    for ax, tile in zip(axes, tiles, strict=False):
        ax.imshow(tile)
        ax.axis("off")
    for ax in axes[len(tiles) :]:
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)


# ME-Mamba's embeddings by expert (its paper's names)
EXPERT_LABELS = {
    "pathology": "pathology expert",
    "genomics": "genomics expert",
    "fusion": "synergistic (fusion) expert",
}


def tsne_grid(panels: list[Any], title: str, experts: bool, path: Path) -> Path:
    """t-SNE panels, one row per embedding and one column per fold, coloured by the fold's risk
    groups (paper's Fig. 6, drawn per fold: each fold is its own model)."""
    import json

    plt = _pyplot()
    names = sorted({p.embedding for p in panels})
    folds = sorted({p.fold for p in panels})
    fig, axes = plt.subplots(
        len(names),
        len(folds),
        figsize=(3.2 * len(folds), 3.0 * len(names) + 0.6),
        squeeze=False,
        layout="constrained",
    )
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    for panel in panels:
        ax = axes[names.index(panel.embedding)][folds.index(panel.fold)]
        label = EXPERT_LABELS.get(panel.embedding, panel.embedding) if experts else panel.embedding
        ax.set_title(f"fold {panel.fold}: {label} (n={len(panel.patients)})", fontsize=8)
        if panel.xy is None:
            ax.text(
                0.5,
                0.5,
                panel.note or "not drawn",
                ha="center",
                va="center",
                fontsize=7,
                wrap=True,
                transform=ax.transAxes,
            )
            continue
        xy, high = panel.xy, panel.high_risk
        ax.scatter(xy[~high, 0], xy[~high, 1], s=12, c="tab:blue", label="low risk (fold)")
        ax.scatter(xy[high, 0], xy[high, 1], s=12, c="tab:red", label="high risk (fold)")
    axes[0][0].legend(fontsize=7)
    fig.suptitle(title + "\none projection per fold (each fold is a separate model)", fontsize=10)
    grouping = [{"fold": p.fold, "embedding": p.embedding, "patients": p.patients} for p in panels]
    return _save(fig, path, {"Description": json.dumps({"tsne_panels": grouping})})
