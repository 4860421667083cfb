"""Bad slides never stop a cohort: each gets an empty-but-valid store, a status and a reason
in qc/slides.tsv, while the good slide's artifacts stay complete."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
import zarr

from wsirisk.cli import main
from wsirisk.layout import SLIDE_COORDS, SLIDE_MASK
from wsirisk.slides.pyramid import write_pyramid_tiff
from wsirisk.slides.synthetic import tissue_image, write_flat_tiff

OPTIONS = json.dumps({"preset": "biopsy"})
SCENE = tissue_image(2048, 1536, [(1000, 750, 700, 500)])


def _corrupt_lowres_tiles(path: Path) -> None:
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[len(tif.pages) - 1]
        spans = list(zip(page.dataoffsets, page.databytecounts, strict=True))
    with path.open("r+b") as handle:
        for offset, count in spans:
            handle.seek(offset)
            handle.write(b"\x00" * count)


def _make_cohort(root: Path) -> dict[str, tuple[Path, str, str]]:
    """slide_id -> (path, expected status, expected reason_code)."""
    good = write_pyramid_tiff(root / "good.svs", SCENE, 0.25, n_levels=3, level_factor=4)
    truncated = root / "truncated.svs"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size * 6 // 10])
    corrupt = write_pyramid_tiff(root / "corrupt.svs", SCENE, 0.25, n_levels=3, level_factor=4)
    _corrupt_lowres_tiles(corrupt)
    text = root / "notes.svs"
    text.write_text("this is not a slide\n")
    strip = root / "strip.tif"
    tifffile.imwrite(strip, SCENE[:256, :256])
    png = root / "photo.png"
    cv2.imwrite(str(png), SCENE[:256, :256])
    blank = write_pyramid_tiff(root / "blank.svs", tissue_image(2048, 1536, []), 0.25)
    no_mpp = write_pyramid_tiff(root / "nompp.tiff", SCENE, None, aperio=False)
    coarse = write_pyramid_tiff(root / "coarse.svs", SCENE, 2.0)
    huge = write_flat_tiff(root / "huge.svs", 24_000, 24_000, mpp=0.25)
    return {
        "GOOD-1": (good, "ok", "ok"),
        "TRUNC-1": (truncated, "failed", "corrupt"),
        "CORRUPT-1": (corrupt, "failed", "read_error"),
        "TEXT-1": (text, "failed", "not_a_slide"),
        "STRIP-1": (strip, "failed", "unsupported"),
        "PNG-1": (png, "failed", "unsupported"),
        "MISSING-1": (root / "missing.svs", "failed", "missing"),
        "BLANK-1": (blank, "skipped", "no_tissue"),
        "NOMPP-1": (no_mpp, "failed", "no_mpp"),
        "COARSE-1": (coarse, "skipped", "too_coarse"),
        "HUGE-1": (huge, "skipped", "too_large"),
    }


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("cohort")
    slides = _make_cohort(root)
    out = root / "results"
    for slide_id, (path, _, _) in slides.items():
        argv = ["tile", str(path), "--slide-id", slide_id, "--patient-id", "P-" + slide_id]
        argv += ["--out", str(out / f"{slide_id}.zarr"), "--options", OPTIONS]
        argv += ["--geojson", str(out / f"{slide_id}.geojson")]
        argv += ["--thumbnail", str(out / f"{slide_id}.png")]
        assert main(argv) == 0, slide_id
    stores = [str(out / f"{slide_id}.zarr") for slide_id in slides]
    assert main(["qc-slides", *stores, "--out", str(out / "qc" / "slides.tsv")]) == 0
    return out, slides


def test_qc_table_names_every_slide_with_status_and_reason(cohort: tuple[Path, dict]) -> None:
    out, slides = cohort
    with (out / "qc" / "slides.tsv").open() as handle:
        rows = {row["slide_id"]: row for row in csv.DictReader(handle, delimiter="\t")}
    assert set(rows) == set(slides)
    for slide_id, (_, status, code) in slides.items():
        row = rows[slide_id]
        assert (row["status"], row["reason_code"]) == (status, code), (slide_id, row["reason"])
        assert row["patient_id"] == "P-" + slide_id
        assert (row["reason"] == "") == (status == "ok"), slide_id
    assert "mpp_override" in rows["NOMPP-1"]["reason"]
    assert "max_seg_read_mpx" in rows["HUGE-1"]["reason"]
    assert "truncated" in rows["TRUNC-1"]["reason"]
    assert "strip" in rows["STRIP-1"]["reason"]
    assert int(rows["GOOD-1"]["n_tiles"]) > 0 and rows["GOOD-1"]["mpp_source"] == "openslide.mpp-x"


def test_bad_slides_get_empty_but_valid_artifacts(cohort: tuple[Path, dict]) -> None:
    out, slides = cohort
    for slide_id, (_, status, _) in slides.items():
        group = zarr.open_group(str(out / f"{slide_id}.zarr"), mode="r")
        coords = group[SLIDE_COORDS][:]
        assert coords.dtype == np.int64 and coords.ndim == 2 and coords.shape[1] == 2
        assert group[SLIDE_MASK].dtype == np.uint8
        assert group.attrs["n_tiles"] == len(coords)
        features = json.loads((out / f"{slide_id}.geojson").read_text())["features"]
        assert cv2.imread(str(out / f"{slide_id}.png")) is not None, slide_id
        if status == "ok":
            assert len(coords) > 0 and len(features) == 1 and group[SLIDE_MASK].size > 0
        else:
            assert coords.shape == (0, 2) and features == [], slide_id


def test_qc_rejects_a_missing_store(cohort: tuple[Path, dict], capsys) -> None:
    out, _ = cohort
    missing = str(out / "NOPE.zarr")
    assert main(["qc-slides", missing, "--out", str(out / "qc2.tsv")]) == 1
    assert "NOPE.zarr" in capsys.readouterr().err
    assert not (out / "qc2.tsv").exists()
