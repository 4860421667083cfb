"""`wsirisk fetch-tables`: the public PORPOISE/MCAT cohort tables, 5-fold splits and signatures.

These are the tables the ME-Mamba paper's Table 1 is computed on. They come from GitHub
(mahmoodlab/PORPOISE and mahmoodlab/MCAT); offline, the error says which URLs to fetch by hand.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from wsirisk.gdc.net import PermanentError, TransientError, open_request
from wsirisk.layout import check_id
from wsirisk.store import atomic_path

PORPOISE = "https://raw.githubusercontent.com/mahmoodlab/PORPOISE/master"
MCAT = "https://raw.githubusercontent.com/mahmoodlab/MCAT/master"


def table_urls(cohort: str, n_folds: int = 5) -> dict[str, str]:
    """Relative output path -> URL for one cohort, e.g. ``tcga_blca``."""
    cohort = check_id(cohort.lower(), "cohort")
    urls = {
        f"{cohort}_all_clean.csv.zip": f"{PORPOISE}/datasets_csv_mutsig/{cohort}_all_clean.csv.zip",
        "signatures.csv": f"{MCAT}/datasets_csv_sig/signatures.csv",
    }
    for fold in range(n_folds):
        urls[f"splits/{cohort}/splits_{fold}.csv"] = (
            f"{PORPOISE}/splits/5foldcv/{cohort}/splits_{fold}.csv"
        )
    return urls


def fetch_url(url: str, path: Path, timeout_s: float = 60.0) -> int:
    """GET ``url`` into ``path`` atomically; returns the number of bytes."""
    response = open_request("GET", url, timeout_s=timeout_s)
    try:
        if response.status != 200:
            raise PermanentError(f"GET {url}: HTTP {response.status}")
        data = response.resp.read()
    finally:
        response.close()
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return len(data)


def fetch_tables(cohort: str, out_dir: Path, n_folds: int = 5) -> list[Path]:
    """Fetch what ``table_urls`` lists into ``out_dir``; files already there are kept."""
    written = []
    urls = table_urls(cohort, n_folds)
    for relative, url in urls.items():
        path = Path(out_dir) / relative
        if not path.exists():
            try:
                fetch_url(url, path)
            except (TransientError, PermanentError) as exc:
                listing = "\n".join(f"  {u} -> {Path(out_dir) / r}" for r, u in urls.items())
                raise RuntimeError(
                    f"cannot fetch {url} ({exc}). Without internet, download these files on a "
                    f"machine that has it and copy them here:\n{listing}"
                ) from exc
        written.append(path)
    return written


def build_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cohort", required=True, help="e.g. tcga_blca, tcga_luad, tcga_ucec")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--n-folds", type=int, default=5)


def run(args: argparse.Namespace) -> int:
    try:
        paths = fetch_tables(args.cohort, args.out, args.n_folds)
    except RuntimeError as exc:
        print(f"wsirisk fetch-tables: {exc}", file=sys.stderr)
        return 1
    for path in paths:
        print(path)
    return 0
