"""The downloader against a fake GDC server on 127.0.0.1 (real HTTP, injected faults)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest
from fake_gdc import FakeFile, FakeGDC

from wsirisk.cli import main
from wsirisk.gdc import api
from wsirisk.gdc.download import LOG_NAME, download_files
from wsirisk.gdc.manifest import FileEntry, read_manifest, read_sample_sheet
from wsirisk.gdc.transfer import Settings

FAST = {"backoff_s": 0.01, "timeout_s": 5.0}


def _file(i: int, size: int = 200_000, **meta: object) -> FakeFile:
    data = bytes((i * 7 + k * 13) % 251 for k in range(size))
    return FakeFile(f"00000000-0000-4000-8000-{i:012d}", f"sample{i}.tsv.gz", data, dict(meta))


def _entry(f: FakeFile) -> FileEntry:
    return FileEntry(f.file_id, f.file_name, hashlib.md5(f.data).hexdigest(), len(f.data))


def _write_manifest(path: Path, files: list[FakeFile]) -> Path:
    lines = ["id\tfilename\tmd5\tsize\tstate"]
    lines += [
        f"{f.file_id}\t{f.file_name}\t{hashlib.md5(f.data).hexdigest()}\t{len(f.data)}\treleased"
        for f in files
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def _log(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / LOG_NAME, sep="\t", dtype={"error": str}, keep_default_na=False)


def test_manifest_download_parallel_verified(tmp_path: Path) -> None:
    files = [_file(i) for i in range(4)]
    manifest = _write_manifest(tmp_path / "gdc_manifest.txt", files)
    with FakeGDC(files) as gdc:
        for f in files:
            gdc.add_fault(f.file_id, "slow", 0.2)
        code = main(
            [
                "download",
                "--manifest",
                str(manifest),
                "--out",
                str(tmp_path / "out"),
                "--endpoint",
                gdc.url,
                "--workers",
                "3",
                "--backoff",
                "0.01",
            ]
        )
    out = tmp_path / "out"
    assert code == 0
    for f in files:
        assert (out / f.file_name).read_bytes() == f.data
        assert gdc.sent_bytes[f.file_id] == len(f.data)
    assert not list(out.glob("*.partial"))
    assert gdc.max_in_flight == 3  # --workers 3
    log = _log(out)
    assert list(log.status) == ["ok"] * 4
    assert list(log.md5_ok) == [1] * 4 and list(log.attempts) == [1] * 4
    assert list(log.bytes) == [len(f.data) for f in files]


def test_dropped_connection_resumes_with_range(tmp_path: Path) -> None:
    f = _file(1)
    with FakeGDC([f]) as gdc:
        gdc.add_fault(f.file_id, "drop", 80_000)
        gdc.add_fault(f.file_id, "drop", 50_000)
        [res] = download_files([_entry(f)], tmp_path, Settings(endpoint=gdc.url, **FAST))
    assert res.status == "ok" and res.attempts == 3 and res.md5_ok
    assert (tmp_path / f.file_name).read_bytes() == f.data
    # every byte crossed the wire exactly once
    assert gdc.sent_bytes[f.file_id] == len(f.data) == res.bytes_fetched
    assert [r for _, r in gdc.data_requests] == [None, "bytes=80000-", "bytes=130000-"]


def test_interrupted_run_resumes_in_next_run(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    files = [_file(1), _file(2, size=1000)]
    manifest = _write_manifest(tmp_path / "m.txt", files)
    out = tmp_path / "out"
    args = ["download", "--manifest", str(manifest), "--out", str(out), "--retries", "0"]
    with FakeGDC(files) as gdc:
        gdc.add_fault(files[0].file_id, "drop", 120_000)
        assert main([*args, "--endpoint", gdc.url]) == 1
        err = capsys.readouterr().err
        assert files[0].file_name in err and "FAILED" in err
        # nothing unverified under the final name; the partial holds what arrived
        assert not (out / files[0].file_name).exists()
        assert (out / f"{files[0].file_name}.partial").stat().st_size == 120_000
        assert (out / files[1].file_name).read_bytes() == files[1].data
        assert main([*args, "--endpoint", gdc.url]) == 0
    assert (out / files[0].file_name).read_bytes() == files[0].data
    assert gdc.sent_bytes[files[0].file_id] == len(files[0].data)  # no byte fetched twice
    assert gdc.sent_bytes[files[1].file_id] == len(files[1].data)  # 2nd run: kept, not refetched
    log = _log(out).set_index("file_name")
    assert log.loc[files[0].file_name, "bytes_fetched"] == len(files[0].data) - 120_000
    assert log.loc[files[1].file_name, "status"] == "present"


def test_wrong_md5_deletes_partial_and_restarts(tmp_path: Path) -> None:
    f = _file(3)
    with FakeGDC([f]) as gdc:
        gdc.add_fault(f.file_id, "corrupt")
        [res] = download_files([_entry(f)], tmp_path, Settings(endpoint=gdc.url, **FAST))
    assert res.status == "ok" and res.attempts == 2
    assert "md5 mismatch" in res.errors[0]
    assert [r for _, r in gdc.data_requests] == [None, None]  # second try from scratch
    assert gdc.sent_bytes[f.file_id] == 2 * len(f.data)
    assert (tmp_path / f.file_name).read_bytes() == f.data


def test_5xx_retried_then_exhausted_others_finish(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    good, flaky, dead = _file(1), _file(2), _file(3)
    manifest = _write_manifest(tmp_path / "m.txt", [good, flaky, dead])
    out = tmp_path / "out"
    with FakeGDC([good, flaky, dead]) as gdc:
        for _ in range(2):
            gdc.add_fault(flaky.file_id, "status", 503)
        for _ in range(10):
            gdc.add_fault(dead.file_id, "status", 500)
        code = main(
            [
                "download",
                "--manifest",
                str(manifest),
                "--out",
                str(out),
                "--endpoint",
                gdc.url,
                "--retries",
                "3",
                "--backoff",
                "0.01",
                "--workers",
                "2",
            ]
        )
    assert code == 1
    err = capsys.readouterr().err
    assert dead.file_name in err and good.file_name not in err and flaky.file_name not in err
    log = _log(out).set_index("file_name")
    assert log.loc[good.file_name, "status"] == "ok"
    assert log.loc[flaky.file_name, "status"] == "ok" and log.loc[flaky.file_name, "attempts"] == 3
    assert log.loc[dead.file_name, "status"] == "failed"
    assert (
        log.loc[dead.file_name, "attempts"] == 4 and "HTTP 500" in log.loc[dead.file_name, "error"]
    )
    assert sum(1 for fid, _ in gdc.data_requests if fid == dead.file_id) == 4
    assert not (out / dead.file_name).exists()


def test_slow_response_times_out_then_succeeds(tmp_path: Path) -> None:
    f = _file(4, size=5000)
    with FakeGDC([f]) as gdc:
        gdc.add_fault(f.file_id, "slow", 0.2)
        gdc.add_fault(f.file_id, "slow", 0.05)
        settings = Settings(endpoint=gdc.url, timeout_s=0.1, backoff_s=0.01)
        [res] = download_files([_entry(f)], tmp_path, settings)
    assert res.status == "ok" and res.attempts == 2
    assert "timed out" in res.errors[0].lower() or "timeout" in res.errors[0].lower()


def test_server_ignoring_range_restarts_cleanly(tmp_path: Path) -> None:
    f = _file(5)
    (tmp_path / f"{f.file_name}.partial").write_bytes(f.data[:1000])
    with FakeGDC([f]) as gdc:
        gdc.add_fault(f.file_id, "ignore_range")
        [res] = download_files([_entry(f)], tmp_path, Settings(endpoint=gdc.url, **FAST))
    assert res.status == "ok" and res.attempts == 1
    assert gdc.data_requests == [(f.file_id, "bytes=1000-")]
    assert (tmp_path / f.file_name).read_bytes() == f.data


def test_unsafe_names_rejected(tmp_path: Path) -> None:
    f = _file(6, size=100)
    out = tmp_path / "deep" / "out"
    with FakeGDC([f]) as gdc:
        gdc.add_fault(f.file_id, "name", "../evil.txt")
        [res] = download_files([_entry(f)], out, Settings(endpoint=gdc.url, **FAST))
    assert res.status == "failed" and res.attempts == 1  # permanent: not retried
    assert "unsafe" in res.error
    assert not (tmp_path / "deep" / "evil.txt").exists() and not (out / f.file_name).exists()
    bad = tmp_path / "bad_manifest.txt"
    bad.write_text(
        f"id\tfilename\tmd5\tsize\tstate\n{f.file_id}\t../evil.txt\t{'0' * 32}\t100\tok\n"
    )
    with pytest.raises(ValueError, match=r"bad_manifest.txt:2.*filename"):
        read_manifest(bad)


def test_manifest_size_disagreement_fails_fast(tmp_path: Path) -> None:
    f = _file(7, size=500)
    wrong = FileEntry(f.file_id, f.file_name, hashlib.md5(f.data).hexdigest(), 400)
    with FakeGDC([f]) as gdc:
        [res] = download_files([wrong], tmp_path, Settings(endpoint=gdc.url, **FAST))
    assert res.status == "failed" and res.attempts == 1 and "manifest says 400" in res.error
    assert not (tmp_path / f.file_name).exists()


def test_query_pages_and_writes_manifest_and_sample_sheet(tmp_path: Path) -> None:
    def case(i: int, proj: str) -> dict:
        sid = f"TCGA-AA-{i:04d}"
        return {
            "submitter_id": sid,
            "project": {"project_id": proj},
            "samples": [{"submitter_id": f"{sid}-01A", "sample_type": "Primary Tumor"}],
        }

    star = {
        "data_type": "Gene Expression Quantification",
        "analysis": {"workflow_type": "STAR - Counts"},
    }
    files = [_file(i, size=300, cases=[case(i, "TCGA-BLCA")], **star) for i in range(5)]
    files.append(_file(9, size=300, cases=[case(9, "TCGA-LUAD")], **star))
    files.append(_file(8, size=300, cases=[case(8, "TCGA-BLCA")], data_type="Slide Image"))
    out = tmp_path / "out"
    with FakeGDC(files) as gdc:
        code = main(
            [
                "download",
                "--project",
                "TCGA-BLCA",
                "--data-type",
                "Gene Expression Quantification",
                "--workflow-type",
                "STAR - Counts",
                "--out",
                str(out),
                "--endpoint",
                gdc.url,
                "--page-size",
                "2",
            ]
        )
    assert code == 0
    assert gdc.files_requests == [(0, 2), (2, 2), (4, 2)]
    got = sorted(p.name for p in out.glob("sample*.tsv.gz"))
    assert got == [f"sample{i}.tsv.gz" for i in range(5)]
    assert [e.file_name for e in read_manifest(out / "gdc_manifest.txt")] == got
    sheet = read_sample_sheet(out / "gdc_sample_sheet.tsv")
    assert sorted(sheet.case_id) == [f"TCGA-AA-{i:04d}" for i in range(5)]
    assert set(sheet.sample_type) == {"Primary Tumor"}


def test_query_filters_built_from_criteria() -> None:
    flt = api.build_filters(
        project="TCGA-BLCA", data_type="Slide Image", experimental_strategy="Diagnostic Slide"
    )
    assert flt["op"] == "and"
    fields = {c["content"]["field"]: c["content"]["value"] for c in flt["content"]}
    assert fields == {
        "cases.project.project_id": ["TCGA-BLCA"],
        "files.data_type": ["Slide Image"],
        "files.experimental_strategy": ["Diagnostic Slide"],
    }
    with pytest.raises(ValueError, match="at least one criterion"):
        api.build_filters()


def test_shared_manifests_parse(shared_dir: Path) -> None:
    slides = read_manifest(shared_dir / "gdc" / "manifest" / "gdc_manifest_coadread_dx_slides.txt")
    assert len(slides) == 258 and all(e.file_name.endswith(".svs") for e in slides)
    assert sum(e.size_bytes for e in slides) == 189_775_306_769
    counts = read_manifest(shared_dir / "gdc" / "manifest" / "gdc_manifest_2020.txt")
    assert len(counts) == 149 and all(len(e.md5) == 32 for e in counts)


def test_ids_mode_stale_file_and_404(tmp_path: Path) -> None:
    wanted, other = _file(1, size=3000), _file(2, size=3000)
    out = tmp_path / "out"
    out.mkdir()
    (out / wanted.file_name).write_bytes(b"x" * len(wanted.data))  # right size, wrong bytes
    with FakeGDC([wanted, other]) as gdc:
        code = main(["download", "--ids", wanted.file_id, "--out", str(out), "--endpoint", gdc.url])
        missing = FileEntry("00000000-0000-4000-8000-00000000dead", "gone.txt", "0" * 32, 10)
        [res] = download_files([missing], out, Settings(endpoint=gdc.url, **FAST))
    assert code == 0
    assert (out / wanted.file_name).read_bytes() == wanted.data  # replaced after verifying
    assert not (out / other.file_name).exists()
    assert res.status == "failed" and res.attempts == 1 and "HTTP 404" in res.error


def test_stop_keeps_partial_and_next_run_resumes(tmp_path: Path) -> None:
    """Ctrl-C / SIGTERM set the stop event: transfers end at the next chunk, partials stay."""
    import threading
    import time

    f = _file(4, size=120_000)
    stop = threading.Event()
    with FakeGDC([f]) as gdc:
        gdc.add_fault(f.file_id, "throttle", 60_000)
        settings = Settings(endpoint=gdc.url, stop=stop, **FAST)
        worker = threading.Thread(
            target=lambda: out.append(download_files([_entry(f)], tmp_path, settings))
        )
        out: list = []
        worker.start()
        while gdc.sent_bytes[f.file_id] < 20_000:
            time.sleep(0.02)
        stop.set()
        worker.join(timeout=10)
        [[res]] = out
        assert res.status == "failed" and "interrupted" in res.error and res.attempts == 1
        have = (tmp_path / f"{f.file_name}.partial").stat().st_size
        assert 0 < have < len(f.data) and not (tmp_path / f.file_name).exists()
        sent = gdc.sent_bytes[f.file_id]
        [res] = download_files([_entry(f)], tmp_path, Settings(endpoint=gdc.url, **FAST))
    assert res.status == "ok" and (tmp_path / f.file_name).read_bytes() == f.data
    assert gdc.data_requests[-1] == (f.file_id, f"bytes={have}-")
    assert gdc.sent_bytes[f.file_id] - sent == len(f.data) - have  # only the rest


def test_controlled_file_needs_the_token(tmp_path: Path) -> None:
    f = _file(5, size=2000, access="controlled")
    token = tmp_path / "token.txt"
    token.write_text("secret-token\n")
    manifest = _write_manifest(tmp_path / "m.txt", [f])
    args = ["download", "--manifest", str(manifest), "--out", str(tmp_path / "out")]
    with FakeGDC([f], token="secret-token") as gdc:
        assert main([*args, "--endpoint", gdc.url]) == 1  # 403: permanent, not retried
        assert "HTTP 403" in _log(tmp_path / "out").error.iloc[0]
        assert len(gdc.data_requests) == 1
        assert main([*args, "--endpoint", gdc.url, "--token-file", str(token)]) == 0
    assert (tmp_path / "out" / f.file_name).read_bytes() == f.data


def test_fake_manifest_endpoint_and_fields_follow_the_gdc(tmp_path: Path) -> None:
    """The fake answers /manifest like the GDC (read_manifest parses it) and honours fields."""
    import json
    import urllib.request

    files = [
        _file(i, size=100, data_type="Slide Image", cases=[{"submitter_id": f"C{i}"}])
        for i in range(3)
    ]
    with FakeGDC(files) as gdc:
        ids = ",".join(f.file_id for f in files[:2])
        with urllib.request.urlopen(f"{gdc.url}/manifest/{ids}") as answer:
            (tmp_path / "m.txt").write_bytes(answer.read())
        hits = api.query_files(
            api.build_filters(data_type="Slide Image"),
            endpoint=gdc.url,
            fields=("file_name", "cases.submitter_id"),
        )
        body = json.dumps(
            {"filters": api.build_filters(file_ids=[files[2].file_id]), "return_type": "manifest"}
        )
        request = urllib.request.Request(
            f"{gdc.url}/files", body.encode(), {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request) as answer:
            (tmp_path / "q.txt").write_bytes(answer.read())
    assert [e.file_id for e in read_manifest(tmp_path / "m.txt")] == [f.file_id for f in files[:2]]
    assert [e.md5 for e in read_manifest(tmp_path / "q.txt")] == [
        hashlib.md5(files[2].data).hexdigest()
    ]
    assert all(set(h) == {"id", "file_name", "cases"} for h in hits)
    assert hits[0]["cases"] == [{"submitter_id": "C0"}]
