"""Write the demo cohort: slides, omics.csv, signatures.csv, sample_sheet.tsv, truth files."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from wsirisk.demo.cohort import gene_catalog, signatures_frame, simulate_cohort
from wsirisk.demo.tissue import SYNTH_MPP, TILE_PX, SyntheticSlide, synth_slide
from wsirisk.layout import Layout
from wsirisk.store import atomic_path, write_text
from wsirisk.training.metrics import cindex

MPP_40X = SYNTH_MPP / 2  # 0.25 um/px: synthesized at 0.5 um/px then upscaled x2
PYRAMID_LEVELS = 3
PYRAMID_FACTOR = 4
TILES_PER_SLIDE = 50  # average tissue tiles of 256 px at 0.5 um/px
TRUTH_TILES_NAME = "truth_tiles.csv"  # per-tile ground truth beside truth.csv


def demo_ids(n_patients: int) -> list[tuple[str, str]]:
    """[(patient_id, slide_id)]: patient i is DEMO-{i:03d}, its one slide DEMO-{i:03d}-DX1."""
    if n_patients < 1 or n_patients > 1000:
        raise ValueError(f"n_patients must be in 1..1000, got {n_patients}")
    return [(f"DEMO-{i:03d}", f"DEMO-{i:03d}-DX1") for i in range(n_patients)]


def demo_layout(out_dir: Path) -> Layout:
    """The Layout whose ``demo_dir`` is ``out_dir`` (data_dir = its parent, cohort = its name)."""
    out_dir = Path(out_dir)
    if not out_dir.name or out_dir.name == "..":
        out_dir = out_dir.resolve()
    return Layout(Path("results"), out_dir.parent, out_dir.name)


def _write_slide(path: Path, rgb_20x: np.ndarray, is_40x: bool) -> float:
    """Write one pyramid TIFF atomically; return its level-0 mpp."""
    import cv2

    from wsirisk.slides.pyramid import write_pyramid_tiff

    mpp = MPP_40X if is_40x else SYNTH_MPP
    rgb = rgb_20x
    if is_40x:
        size = (rgb_20x.shape[1] * 2, rgb_20x.shape[0] * 2)
        rgb = cv2.resize(rgb_20x, size, interpolation=cv2.INTER_LINEAR)
    with atomic_path(path) as tmp:
        write_pyramid_tiff(tmp, rgb, mpp, n_levels=PYRAMID_LEVELS, level_factor=PYRAMID_FACTOR)
    return mpp


def _tile_rows(slide_id: str, slide: SyntheticSlide, scale: int) -> list[dict]:
    rows = []
    for row, col in np.argwhere(slide.tissue_fraction > 0):
        rows.append(
            {
                "slide_id": slide_id,
                "x_level0": int(col * TILE_PX * scale),
                "y_level0": int(row * TILE_PX * scale),
                "tile_px_level0": TILE_PX * scale,
                "tissue_fraction": round(float(slide.tissue_fraction[row, col]), 4),
                "pattern_fraction": round(float(slide.pattern_fraction[row, col]), 4),
                "is_tissue": bool(slide.tissue_tiles[row, col]),
                "is_pattern": bool(slide.pattern_tiles[row, col]),
            }
        )
    return rows


def make_demo(
    out_dir: Path,
    n_patients: int = 40,
    seed: int = 0,
    frac_40x: float = 0.5,
    tiles_per_slide: int = TILES_PER_SLIDE,
) -> dict:
    """Generate the demo cohort under ``out_dir``; return a summary dict.

    Deterministic for a given (n_patients, seed, frac_40x, tiles_per_slide).  Each file is
    written atomically.  See ``wsirisk.demo`` for the layout of the files.
    """
    if not 0.0 <= frac_40x <= 1.0:
        raise ValueError(f"frac_40x must be in [0, 1], got {frac_40x}")
    if tiles_per_slide < 1:
        raise ValueError(f"tiles_per_slide must be >= 1, got {tiles_per_slide}")
    started = time.perf_counter()
    layout = demo_layout(out_dir)
    ids = demo_ids(n_patients)
    truth, features = simulate_cohort(seed, n_patients)
    cohort_rng = np.random.default_rng([seed, 0, 0])
    n_40x = int(round(frac_40x * n_patients))
    is_40x = np.zeros(n_patients, bool)
    is_40x[cohort_rng.permutation(n_patients)[:n_40x]] = True

    mpps, tissue_tiles, pattern_tiles, tile_rows = [], [], [], []
    for i, (_, slide_id) in enumerate(ids):
        rng = np.random.default_rng([seed, i, 2])
        target = max(1, int(round(tiles_per_slide * rng.uniform(0.7, 1.3))))
        slide = synth_slide(rng, target, float(truth.loc[i, "pattern_share"]))
        mpps.append(_write_slide(layout.demo_slide(slide_id), slide.rgb, bool(is_40x[i])))
        tissue_tiles.append(int(slide.tissue_tiles.sum()))
        pattern_tiles.append(int(slide.pattern_tiles.sum()))
        tile_rows += _tile_rows(slide_id, slide, 2 if is_40x[i] else 1)

    case_ids = [patient for patient, _ in ids]
    slide_ids = [slide for _, slide in ids]
    omics = pd.concat(
        [
            pd.DataFrame(
                {
                    "case_id": case_ids,
                    "slide_id": slide_ids,
                    "survival_months": truth["survival_months"],
                    "censorship": truth["censorship"],
                }
            ),
            features,
        ],
        axis=1,
    )
    write_text(layout.demo_omics, omics.to_csv(index=False, float_format="%.4f"))
    write_text(layout.demo_signatures, signatures_frame(gene_catalog()).to_csv(index=False))
    sheet = pd.DataFrame(
        {
            "slide_id": slide_ids,
            "patient_id": case_ids,
            "path": [str(layout.demo_slide(s).resolve()) for s in slide_ids],
            "mpp_override": "",
        }
    )
    write_text(layout.demo_sample_sheet, sheet.to_csv(sep="\t", index=False))
    truth_table = pd.DataFrame({"case_id": case_ids, "slide_id": slide_ids}).join(truth)
    truth_table["mpp"] = mpps
    truth_table["tissue_tiles"] = tissue_tiles
    truth_table["pattern_tiles"] = pattern_tiles
    truth_table["pattern_tile_share"] = np.divide(
        pattern_tiles, np.maximum(tissue_tiles, 1), dtype=float
    ).round(4)
    write_text(layout.demo_truth, truth_table.to_csv(index=False, float_format="%.6g"))
    write_text(layout.demo_dir / TRUTH_TILES_NAME, pd.DataFrame(tile_rows).to_csv(index=False))

    censorship = truth["censorship"].to_numpy()
    oracle = cindex(truth["survival_months"], truth["true_risk"], censorship).value
    return {
        "out_dir": str(layout.demo_dir),
        "n_patients": n_patients,
        "n_40x": int(is_40x.sum()),
        "censored_share": round(float(censorship.mean()), 4),
        "events": int((censorship == 0).sum()),
        "median_survival_months": round(float(np.median(truth["survival_months"])), 2),
        "tissue_tiles": int(sum(tissue_tiles)),
        "pattern_tiles": int(sum(pattern_tiles)),
        "n_features": int(features.shape[1]),
        "oracle_c_index": oracle if oracle is None else round(oracle, 4),
        "seconds": round(time.perf_counter() - started, 1),
    }
