"""fetch-tables: real HTTP against a local server; offline gives a message naming the URLs."""

from __future__ import annotations

import http.server
import threading
from pathlib import Path

import pytest

from wsirisk.gdc import tables


@pytest.fixture()
def github(tmp_path: Path):
    """A loopback server that serves files below tmp_path/www as if it were GitHub raw."""
    root = tmp_path / "www"

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args):  # quiet
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_fetch_tables_from_local_server(github, tmp_path, monkeypatch):
    root, base = github
    monkeypatch.setattr(tables, "PORPOISE", f"{base}/porpoise")
    monkeypatch.setattr(tables, "MCAT", f"{base}/mcat")
    for relative, url in tables.table_urls("tcga_blca", n_folds=2).items():
        path = root / url.split(base + "/", 1)[1]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"content of {relative}\n")
    out = tmp_path / "out"
    paths = tables.fetch_tables("tcga_blca", out, n_folds=2)
    assert sorted(p.relative_to(out).as_posix() for p in paths) == [
        "signatures.csv",
        "splits/tcga_blca/splits_0.csv",
        "splits/tcga_blca/splits_1.csv",
        "tcga_blca_all_clean.csv.zip",
    ]
    assert (out / "signatures.csv").read_text() == "content of signatures.csv\n"
    assert not list(out.rglob(".*tmp*"))


def test_offline_message_names_urls(tmp_path, monkeypatch):
    # a port nobody listens on: connection refused, as without internet
    monkeypatch.setattr(tables, "PORPOISE", "http://127.0.0.1:9/porpoise")
    monkeypatch.setattr(tables, "MCAT", "http://127.0.0.1:9/mcat")
    with pytest.raises(RuntimeError, match="Without internet") as info:
        tables.fetch_tables("tcga_luad", tmp_path, n_folds=1)
    assert "tcga_luad_all_clean.csv.zip" in str(info.value)
    assert not (tmp_path / "tcga_luad_all_clean.csv.zip").exists()


def test_unsafe_cohort_rejected(tmp_path):
    with pytest.raises(ValueError, match="unsafe cohort"):
        tables.fetch_tables("../etc", tmp_path)
