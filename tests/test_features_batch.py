"""Several slides in one extraction job: one stream, per-slide stores, skip, resume, manifest."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

import wsirisk.features.extract as extract_module
import wsirisk.features.readers as readers_module
from wsirisk.cli import main as cli_main
from wsirisk.features import load_features
from wsirisk.features.encoders import Encoder, build_encoder
from wsirisk.features.extract import MANIFEST_COLUMNS, ExtractOptions, Extractor, SlideJob
from wsirisk.features.partial import partial_path
from wsirisk.features.synthetic import grid_coords, write_textured_slide, write_tiles_store

TILE_PX = 64
OPTIONS = {
    "encoder": "test_resnet", "weights": "random", "input_size_px": TILE_PX, "batch_size": 8,
    "num_workers": 0, "chunk_tiles": 8, "device": "cpu",
}  # fmt: skip


@pytest.fixture(scope="module")
def encoder() -> Encoder:
    return build_encoder("test_resnet", "random", input_size_px=TILE_PX)


@pytest.fixture(scope="module")
def slides(tmp_path_factory: pytest.TempPathFactory) -> list[SlideJob]:
    """Three small slides (20, 12 and 24 tiles) and their tiles stores."""
    root = tmp_path_factory.mktemp("batch")
    jobs = []
    for k, (w, h) in enumerate([(320, 256), (256, 192), (384, 256)]):
        slide = write_textured_slide(root / f"s{k}.tiff", w, h, seed=10 + k)
        tiles = write_tiles_store(
            root / f"s{k}.zarr", grid_coords(w, h, TILE_PX), slide_path=slide,
            slide_id=f"s{k}", patient_id=f"p{k}", tile_size_px=TILE_PX,
        )  # fmt: skip
        jobs.append(SlideJob(slide, tiles, root / "unused"))
    return jobs


def _jobs(slides: list[SlideJob], out_dir: Path) -> list[SlideJob]:
    return [SlideJob(j.slide, j.tiles, out_dir / f"{j.slide.stem}.zarr") for j in slides]


def _extractor(encoder: Encoder, **options) -> Extractor:
    return Extractor(encoder, ExtractOptions.from_dict({**OPTIONS, **options}), progress=False)


def test_grouped_job_equals_one_job_per_slide_and_uses_one_stream(
    encoder: Encoder, slides: list[SlideJob], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loaders = []
    original = extract_module.make_stream_loader
    monkeypatch.setattr(
        extract_module, "make_stream_loader", lambda *a, **k: loaders.append(1) or original(*a, **k)
    )
    grouped = _jobs(slides, tmp_path / "grouped")
    outcomes = _extractor(encoder, num_workers=2).extract_slides(grouped)
    assert len(loaders) == 1  # one set of loader workers for the whole job
    assert [o.action for o in outcomes] == ["extracted"] * 3
    assert [o.attrs["n_tiles"] for o in outcomes] == [20, 12, 24]
    for job in slides:
        alone = tmp_path / "alone" / f"{job.slide.stem}.zarr"
        _extractor(encoder, reader="openslide").extract_slide(job.slide, job.tiles, alone)
        feats, coords, attrs = load_features(tmp_path / "grouped" / f"{job.slide.stem}.zarr")
        ref, ref_coords, ref_attrs = load_features(alone)
        np.testing.assert_array_equal(coords, ref_coords)
        np.testing.assert_array_equal(feats, ref)  # same pixels (full decode), same batches
        assert (attrs["reader"], ref_attrs["reader"]) == ("jpeg", "openslide")
        assert attrs["identity"]["reader"] == ["jpeg", 1]
        assert not partial_path(alone).exists()


def test_failed_slide_resumes_alone_and_complete_slides_are_skipped(
    encoder: Encoder, slides: list[SlideJob], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = _jobs(slides, tmp_path / "feat")
    reference = _jobs(slides, tmp_path / "ref")
    _extractor(encoder).extract_slides(reference)

    calls = {"n": 0}
    original_read = readers_module.JpegReader.read

    def flaky_read(self, indices):  # the third slide's reader dies after two batches
        if self.spec.slide_path == slides[2].slide:
            calls["n"] += 1
            if calls["n"] > 2:
                raise OSError("disk went away")
        return original_read(self, indices)

    monkeypatch.setattr(readers_module.JpegReader, "read", flaky_read)
    first = _extractor(encoder).extract_slides(jobs)
    assert [o.action for o in first] == ["extracted", "extracted", "error"]
    assert "disk went away" in first[2].error and str(slides[2].slide) in first[2].error
    assert not jobs[2].out.exists() and partial_path(jobs[2].out).exists()

    monkeypatch.setattr(readers_module.JpegReader, "read", original_read)
    second = _extractor(encoder).extract_slides(jobs)
    assert [o.action for o in second] == ["done", "done", "resumed"]
    for job, ref in zip(jobs, reference, strict=True):
        feats, _, attrs = load_features(job.out)
        np.testing.assert_array_equal(feats, load_features(ref.out)[0])  # bit-identical
    # another reader is another identity: recomputed, not skipped
    third = _extractor(encoder, reader="openslide").extract_slides(jobs[:1])
    assert third[0].action == "extracted" and third[0].attrs["reader"] == "openslide"


def test_cli_manifest_lists_every_slide_and_an_error_does_not_stop_the_batch(
    slides: list[SlideJob], tmp_path: Path
) -> None:
    jobs = _jobs(slides, tmp_path / "feat")[:2]
    missing = SlideJob(tmp_path / "gone.tiff", slides[2].tiles, tmp_path / "feat" / "gone.zarr")
    manifest = tmp_path / "batches" / "batch0.tsv"
    argv = ["extract", "--options", json.dumps(OPTIONS), "--no-progress", "--manifest",
            str(manifest)]  # fmt: skip
    for job in [jobs[0], missing, jobs[1]]:
        argv += ["--slide", str(job.slide), "--tiles", str(job.tiles), "--out", str(job.out)]
    assert cli_main(argv) == 0  # the missing slide is a manifest row; the others are finished
    with open(manifest, newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert tuple(rows[0]) == MANIFEST_COLUMNS
    assert [r["status"] for r in rows] == ["ok", "error", "ok"]
    assert [r["action"] for r in rows] == ["extracted", "error", "extracted"]
    assert "gone.tiff" in rows[1]["reason"]
    assert [r["n_tiles"] for r in (rows[0], rows[2])] == ["20", "12"]
    assert {r["reader"] for r in (rows[0], rows[2])} == {"jpeg"}
    assert rows[0]["slide_id"] == "s0" and rows[0]["patient_id"] == "p0"
    assert float(rows[0]["seconds"]) > 0
    assert load_features(jobs[0].out)[0].shape == (20, 96)
    # training takes the batch's stores and leaves the failed slide out, by name
    from wsirisk.training.train import stores_from_manifests

    skipped: dict[str, str] = {}
    assert stores_from_manifests([manifest], skipped) == [jobs[0].out, jobs[1].out]
    assert list(skipped) == [rows[1]["slide_id"] or rows[1]["store"]]
    assert "gone.tiff" in next(iter(skipped.values()))
    # without a manifest (one slide, by hand) a failure is the command's failure
    alone = argv[:4] + ["--slide", str(missing.slide), "--tiles", str(missing.tiles),
                        "--out", str(missing.out)]  # fmt: skip
    assert cli_main(alone) == 1

    rerun = argv[:6]
    for job in jobs:
        rerun += ["--slide", str(job.slide), "--tiles", str(job.tiles), "--out", str(job.out)]
    assert cli_main(rerun) == 0
    with open(manifest, newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert [r["action"] for r in rows] == ["done", "done"] and rows[0]["status"] == "ok"


def test_options_validate_reader_and_slides_per_job() -> None:
    options = ExtractOptions.from_dict({"reader": "region", "slides_per_job": 4})
    assert (options.reader, options.slides_per_job) == ("region", 4)
    with pytest.raises(ValueError, match="reader must be one of"):
        ExtractOptions.from_dict({"reader": "fast"})
    with pytest.raises(ValueError, match="slides_per_job must be a positive integer"):
        ExtractOptions.from_dict({"slides_per_job": 0})


def _nvjpeg_on_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """Slides read by the nvjpeg reader, its device half on the CPU (the CUDA path's logic)."""
    from dataclasses import replace

    original = extract_module.plan_reader

    def plan(slide, coords, geometry, requested="auto", device="cpu", allow_scaled=True):
        spec = original(slide, coords, geometry, "jpeg", allow_scaled=False)
        return replace(spec, reader="nvjpeg", scale=1, note="device half on the CPU (test)")

    monkeypatch.setattr(extract_module, "plan_reader", plan)


def test_decode_ahead_gives_the_same_features_and_a_failed_decode_fails_one_slide(
    encoder: Encoder, slides: list[SlideJob], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wsirisk.features.devicedecode import DeviceDecoder

    _nvjpeg_on_cpu(monkeypatch)
    ahead = _extractor(encoder, num_workers=2).extract_slides(_jobs(slides, tmp_path / "ahead"))
    assert [o.attrs["reader"] for o in ahead] == ["nvjpeg"] * 3
    monkeypatch.setattr(extract_module, "DECODE_AHEAD", 0)  # decode inline, batch by batch
    inline = _extractor(encoder, num_workers=2).extract_slides(_jobs(slides, tmp_path / "inline"))
    for a, b in zip(ahead, inline, strict=True):
        fa, ca, _ = load_features(a.job.out)
        fb, cb, _ = load_features(b.job.out)
        np.testing.assert_array_equal(ca, cb)
        np.testing.assert_array_equal(fa, fb)
    jpeg = _extractor(encoder, reader="jpeg").extract_slide(
        slides[0].slide, slides[0].tiles, tmp_path / "jpeg.zarr"
    )
    assert jpeg["n_tiles"] == ahead[0].attrs["n_tiles"]

    monkeypatch.setattr(extract_module, "DECODE_AHEAD", 2)
    decode = DeviceDecoder.decode

    def broken(self, indices, payload, ok=None):
        if self.spec.slide_path == slides[1].slide:
            raise RuntimeError("nvJPEG status 7")
        return decode(self, indices, payload, ok)

    monkeypatch.setattr(DeviceDecoder, "decode", broken)
    outcomes = _extractor(encoder, num_workers=2).extract_slides(_jobs(slides, tmp_path / "bad"))
    assert [o.action for o in outcomes] == ["extracted", "error", "extracted"]
    assert "GPU decode failed: nvJPEG status 7" in outcomes[1].error
    assert str(slides[1].slide) in outcomes[1].error
    np.testing.assert_array_equal(load_features(outcomes[2].job.out)[0],
                                  load_features(ahead[2].job.out)[0])  # fmt: skip
