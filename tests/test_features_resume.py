"""A SIGKILLed extraction leaves no complete-looking store, and the rerun resumes to the same array."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from wsirisk.features import load_features
from wsirisk.features.encoders import build_encoder
from wsirisk.features.extract import ExtractOptions, Extractor
from wsirisk.features.partial import partial_path
from wsirisk.features.synthetic import grid_coords, write_textured_slide, write_tiles_store

TILE_PX = 64
WIDTH_PX, HEIGHT_PX = 1024, 512  # 16 x 8 = 128 tiles
OPTIONS = {
    "encoder": "test_resnet",
    "weights": "random",
    "input_size_px": TILE_PX,
    "batch_size": 8,
    "num_workers": 2,
    "chunk_tiles": 8,
    "device": "cpu",
}


def _n_done(partial: Path) -> int:
    try:
        meta = json.loads((partial / "zarr.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return 0
    return int(meta.get("attributes", {}).get("n_done", 0))


def _command(slide: Path, tiles: Path, out: Path) -> list[str]:
    return [
        sys.executable, "-m", "wsirisk.cli", "extract", "--slide", str(slide),
        "--tiles", str(tiles), "--out", str(out), "--options", json.dumps(OPTIONS),
        "--threads", "2", "--no-progress",
    ]  # fmt: skip


def test_sigkill_midway_then_rerun_equals_uninterrupted_run(tmp_path: Path) -> None:
    slide = write_textured_slide(tmp_path / "s.tiff", WIDTH_PX, HEIGHT_PX, seed=4)
    coords = grid_coords(WIDTH_PX, HEIGHT_PX, TILE_PX)
    tiles = write_tiles_store(
        tmp_path / "s.zarr", coords, slide_path=slide, slide_id="s", patient_id="p",
        tile_size_px=TILE_PX,
    )  # fmt: skip
    out = tmp_path / "feat" / "s.zarr"
    partial = partial_path(out)

    proc = subprocess.Popen(
        _command(slide, tiles, out),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # the kill takes the DataLoader workers too
    )
    deadline = time.monotonic() + 240
    seen = 0
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            seen = _n_done(partial)
            if seen >= 2 * OPTIONS["chunk_tiles"]:
                break
            time.sleep(0.005)
        else:
            pytest.fail(f"extraction ended or stalled before two chunks (rc={proc.poll()})")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    killed_at = _n_done(partial)
    assert 2 * OPTIONS["chunk_tiles"] <= killed_at < len(coords), killed_at
    assert killed_at % OPTIONS["chunk_tiles"] == 0
    assert not out.exists()  # nothing that looks complete

    rerun = subprocess.run(
        _command(slide, tiles, out), capture_output=True, text=True, timeout=300, check=False
    )
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    match = re.search(r"resuming .* at tile (\d+)/(\d+)", rerun.stderr)
    assert match, rerun.stderr[-2000:]
    assert int(match.group(1)) == killed_at and int(match.group(2)) == len(coords)
    assert not partial.exists()

    encoder = build_encoder("test_resnet", "random", input_size_px=TILE_PX)
    Extractor(encoder, ExtractOptions.from_dict(OPTIONS), progress=False).extract_slide(
        slide, tiles, tmp_path / "ref.zarr"
    )
    resumed, resumed_coords, attrs = load_features(out)
    reference, reference_coords, _ = load_features(tmp_path / "ref.zarr")
    assert attrs["complete"] is True and attrs["n_tiles"] == len(coords)
    np.testing.assert_array_equal(resumed_coords, reference_coords)
    np.testing.assert_array_equal(resumed, reference)
