"""`wsirisk export-clam`: tile coordinates in CLAM's create_patches_fp h5 layout.

CLAM writes ``patches/<slide>.h5`` with one dataset ``coords`` (int64 (N, 2), level-0 x, y)
whose attributes are patch_size, patch_level, downsample, downsampled_level_dim, level_dim,
name and save_path; CLAM's extract_features_fp reads ``patch_size`` px at ``patch_level``.
We export the read size and level (a 40x slide tiled at 20x: patch_size 512 at level 0) and
add ``target_patch_size`` (the tile size after resizing) plus our resolution attributes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from wsirisk.layout import ATTR_STATUS, SLIDE_COORDS
from wsirisk.store import atomic_path, open_group


def export_clam_h5(store: Path, out: Path) -> dict[str, Any]:
    """Write ``out`` (.h5) from a slide store; returns the attributes written on ``coords``.

    A failed or skipped slide exports an empty (0, 2) ``coords`` with its status attribute.
    """
    import h5py

    store = Path(store)
    group = open_group(store)
    attrs = dict(group.attrs)
    for key in ("slide_id", ATTR_STATUS, "level_dimensions"):
        if key not in attrs:
            raise ValueError(f"{store}: not a slide store (attribute {key!r} missing)")
    coords = np.asarray(group[SLIDE_COORDS][:], dtype=np.int64).reshape(-1, 2)
    level = attrs.get("read_level") or 0
    dims = attrs.get("level_dimensions") or [[0, 0]]
    level_dim = np.asarray(dims[level] if level < len(dims) else [0, 0], np.int64)
    downsample = float(attrs.get("read_level_downsample") or 1.0)
    h5_attrs: dict[str, Any] = {
        "patch_size": int(attrs.get("read_size_px") or attrs.get("tile_size_px") or 0),
        "patch_level": int(level),
        "downsample": np.array([downsample, downsample], np.float64),
        "downsampled_level_dim": level_dim,
        "level_dim": level_dim,
        "name": str(attrs["slide_id"]),
        "save_path": str(Path(out).parent),
        "target_patch_size": int(attrs.get("tile_size_px") or 0),
        "target_mpp": float(attrs.get("target_mpp") or 0.0),
        "mpp": float(attrs.get("mpp") or 0.0),
        "mpp_source": str(attrs.get("mpp_source") or ""),
        "status": str(attrs[ATTR_STATUS]),
        "params_hash": str(attrs.get("params_hash") or ""),
    }
    with atomic_path(Path(out)) as tmp:
        with h5py.File(tmp, "w") as handle:
            dataset = handle.create_dataset(
                SLIDE_COORDS, data=coords, maxshape=(None, 2), chunks=(max(1, len(coords)), 2)
            )
            for key, value in h5_attrs.items():
                dataset.attrs[key] = value
    return h5_attrs


def build_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("store", type=Path, help="slide store (.zarr) written by `wsirisk tile`")
    parser.add_argument("--out", required=True, type=Path, help="output .h5 (CLAM coords layout)")


def run(args: argparse.Namespace) -> int:
    try:
        attrs = export_clam_h5(args.store, args.out)
    except (FileNotFoundError, ValueError) as exc:
        print(f"wsirisk export-clam: error: {exc}", file=sys.stderr)
        return 1
    print(
        f"{attrs['name']}: coords -> {args.out} (patch_size {attrs['patch_size']} "
        f"at level {attrs['patch_level']}, status {attrs['status']})",
        file=sys.stderr,
    )
    return 0
