"""``wsirisk make-demo``: a synthetic TCGA-like cohort the pipeline can run end to end.

Files under ``--out-dir`` (= ``Layout.demo_dir``), each written atomically:

- ``slides/DEMO-iii-DX1.tiff``: JPEG-tiled pyramid TIFF (3 levels, x4), Aperio-style
  description; 20x (0.5 um/px) or 40x (0.25 um/px, the 20x tissue upscaled x2).
- ``omics.csv``: PORPOISE/MCAT layout (case_id, slide_id, survival_months, censorship with
  1 = censored, then <GENE>_rnaseq / _cnv / _mut columns).
- ``signatures.csv``: six ``layout.CATEGORIES`` columns of the synthetic gene symbols.
- ``sample_sheet.tsv``: slide_id, patient_id, path (absolute), mpp_override (empty).
- ``truth.csv``: case_id, slide_id, true_risk, pattern_share, gene_latent, event/censor
  months, mpp, tissue_tiles, pattern_tiles, pattern_tile_share.
- ``truth_tiles.csv``: per 256 px (0.5 um/px) grid tile: level-0 x/y, tissue and pattern
  coverage, is_tissue, is_pattern.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from wsirisk.demo.make import TILES_PER_SLIDE, demo_ids, demo_layout, make_demo

__all__ = ["build_parser", "demo_ids", "demo_layout", "make_demo", "run"]


def build_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out-dir", type=Path, required=True, help="e.g. data/demo")
    parser.add_argument("--n-patients", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--frac-40x", type=float, default=0.5, help="share of 40x slides")
    parser.add_argument(
        "--tiles-per-slide",
        type=int,
        default=TILES_PER_SLIDE,
        help="average tissue tiles (256 px at 0.5 um/px) per slide",
    )


def run(args: argparse.Namespace) -> int:
    summary = make_demo(
        args.out_dir,
        n_patients=args.n_patients,
        seed=args.seed,
        frac_40x=args.frac_40x,
        tiles_per_slide=args.tiles_per_slide,
    )
    print(json.dumps(summary, sort_keys=True))
    return 0
