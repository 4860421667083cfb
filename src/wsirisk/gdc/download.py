"""``wsirisk download``: GDC files from a manifest or a ``/files`` query, in parallel.

    wsirisk download --manifest gdc_manifest.txt --out DIR [--workers 4] [--retries 5]
    wsirisk download --project TCGA-BLCA --data-type "Gene Expression Quantification" \\
        --workflow-type "STAR - Counts" --out DIR

A query first writes ``DIR/gdc_manifest.txt`` and ``DIR/gdc_sample_sheet.tsv`` (which
file belongs to which case/sample; ``wsirisk.gdc.assemble`` reads it).  Every run writes
``DIR/download_log.tsv`` (or ``--log``): file_id, file_name, bytes, bytes_fetched, md5_ok,
attempts, status (ok | present | failed), error.  Files already present with the right md5
are kept; a ``.partial`` left by an interrupted run is resumed with a Range request.
Exit status 1 when any file failed (the others still finish; ``--keep-going``: 0, the
failures are named on stderr and in the log), 0 otherwise.
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from wsirisk.gdc import api
from wsirisk.gdc.manifest import FileEntry, read_manifest, write_manifest, write_sample_sheet
from wsirisk.gdc.net import PermanentError, TransientError
from wsirisk.gdc.transfer import Result, Settings, fetch
from wsirisk.store import write_text

LOG_NAME = "download_log.tsv"
MANIFEST_NAME = "gdc_manifest.txt"
SAMPLE_SHEET_NAME = "gdc_sample_sheet.tsv"
LOG_COLUMNS = (
    "file_id",
    "file_name",
    "bytes",
    "bytes_fetched",
    "md5_ok",
    "attempts",
    "status",
    "error",
)


def download_files(
    entries: list[FileEntry],
    out_dir: Path,
    settings: Settings,
    *,
    workers: int = 4,
    log_path: Path | None = None,
) -> list[Result]:
    """Fetch every entry with ``workers`` threads; write the log (default ``out_dir/LOG_NAME``);
    results in entry order."""
    names = [e.file_name for e in entries]
    clashes = sorted({n for n in names if names.count(n) > 1})
    if clashes:
        raise ValueError(f"several files share a name (would overwrite each other): {clashes}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stop = settings.stop or threading.Event()
    settings = dataclasses.replace(settings, stop=stop)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = [pool.submit(_safe_fetch, e, out_dir, settings) for e in entries]
        try:
            results = [future.result() for future in futures]
        except KeyboardInterrupt:  # Ctrl-C / SIGTERM: running transfers stop at their next chunk
            stop.set()
            for future in futures:
                future.cancel()
            raise
    write_log(Path(log_path) if log_path else out_dir / LOG_NAME, results)
    return results


def _safe_fetch(entry: FileEntry, out_dir: Path, settings: Settings) -> Result:
    """fetch(), with local trouble (disk full, permissions) reported as a failed file."""
    try:
        return fetch(entry, out_dir, settings)
    except OSError as exc:
        return Result(entry.file_id, entry.file_name, error=f"{type(exc).__name__}: {exc}")


def write_log(path: Path, results: list[Result]) -> None:
    """The download log as TSV (atomically)."""
    lines = ["\t".join(LOG_COLUMNS)]
    for r in results:
        error = r.error.replace("\t", " ").replace("\n", " ")
        row = (
            r.file_id,
            r.file_name,
            r.size_bytes,
            r.bytes_fetched,
            int(r.md5_ok),
            r.attempts,
            r.status,
            error,
        )
        lines.append("\t".join(str(v) for v in row))
    write_text(path, "\n".join(lines) + "\n")


def entries_from_query(args: argparse.Namespace, settings: Settings) -> list[FileEntry]:
    """Run the ``/files`` query of the CLI options; write manifest + sample sheet to --out."""
    filters = api.build_filters(
        project=args.project,
        data_category=args.data_category,
        data_type=args.data_type,
        workflow_type=args.workflow_type,
        experimental_strategy=args.experimental_strategy,
        data_format=args.data_format,
        access=args.access,
        file_ids=args.ids or None,
    )
    hits = api.query_files(
        filters,
        endpoint=settings.endpoint,
        page_size=args.page_size,
        timeout_s=settings.timeout_s,
        retries=settings.retries,
        backoff_s=settings.backoff_s,
    )
    entries = [api.hit_to_entry(h) for h in hits]
    out = Path(args.out)
    write_manifest(out / MANIFEST_NAME, entries)
    write_sample_sheet(out / SAMPLE_SHEET_NAME, [api.hit_to_sample_row(h) for h in hits])
    return entries


def build_parser(parser: argparse.ArgumentParser) -> None:
    src = parser.add_argument_group("what to fetch (a manifest, or query criteria)")
    src.add_argument("--manifest", type=Path, help="GDC manifest: id filename md5 size state")
    src.add_argument("--project", help="e.g. TCGA-BLCA")
    src.add_argument("--data-category", help='e.g. "Transcriptome Profiling", "Clinical"')
    src.add_argument("--data-type", help='e.g. "Gene Expression Quantification", "Slide Image"')
    src.add_argument("--workflow-type", help='e.g. "STAR - Counts"')
    src.add_argument("--experimental-strategy", help='e.g. "Diagnostic Slide"')
    src.add_argument("--data-format", help='e.g. "BCR Biotab", "SVS"')
    src.add_argument("--access", choices=["open", "controlled"], help="file access level")
    src.add_argument("--ids", nargs="+", default=[], help="GDC file UUIDs (metadata via /files)")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--endpoint", default=api.DEFAULT_ENDPOINT, help="GDC API base URL")
    parser.add_argument("--workers", type=int, default=4, help="parallel downloads")
    parser.add_argument(
        "--retries", type=int, default=5, help="retries per file after the first try"
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="socket timeout, seconds")
    parser.add_argument("--backoff", type=float, default=1.0, help="first retry wait, seconds")
    parser.add_argument(
        "--deadline", type=float, default=6 * 3600.0, help="give up on one file after, seconds"
    )
    parser.add_argument("--page-size", type=int, default=500, help="/files page size")
    parser.add_argument("--log", type=Path, help=f"download log (default OUT/{LOG_NAME})")
    parser.add_argument(
        "--keep-going",
        action="store_true",
        help="exit 0 when some files failed (they are named on stderr and in the log)",
    )
    parser.add_argument("--token-file", type=Path, help="GDC token (controlled-access files)")
    parser.add_argument(
        "--manifest-only", action="store_true", help="query and write the manifest, fetch nothing"
    )


def run(args: argparse.Namespace) -> int:
    querying = any(
        getattr(args, k)
        for k in (
            "project",
            "data_category",
            "data_type",
            "workflow_type",
            "experimental_strategy",
            "data_format",
            "ids",
        )
    )
    if bool(args.manifest) == querying:
        print("wsirisk download: give either --manifest or query criteria", file=sys.stderr)
        return 2
    if args.retries < 0 or args.workers < 1 or args.timeout <= 0:
        print(
            "wsirisk download: need --retries >= 0, --workers >= 1, --timeout > 0", file=sys.stderr
        )
        return 2
    token = args.token_file.read_text().strip() if args.token_file else None
    settings = Settings(
        endpoint=args.endpoint,
        retries=args.retries,
        timeout_s=args.timeout,
        backoff_s=args.backoff,
        deadline_s=args.deadline,
        token=token,
    )
    try:
        if args.manifest:
            entries = read_manifest(args.manifest)
        else:
            entries = entries_from_query(args, settings)
    except (ValueError, OSError, TransientError, PermanentError) as exc:
        print(f"wsirisk download: {exc}", file=sys.stderr)
        return 1
    if args.manifest_only:
        print(f"{len(entries)} files listed in {Path(args.out) / MANIFEST_NAME}")
        return 0
    log_path = args.log or Path(args.out) / LOG_NAME
    signal.signal(signal.SIGTERM, _interrupt)  # a killed job stops like Ctrl-C: partials kept
    try:
        results = download_files(
            entries, args.out, settings, workers=args.workers, log_path=log_path
        )
    except ValueError as exc:
        print(f"wsirisk download: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            f"wsirisk download: interrupted; partial files kept in {args.out} "
            "(*.partial): the same command resumes them",
            file=sys.stderr,
        )
        return 130
    code = report(results, log_path)
    return 0 if args.keep_going else code


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def report(results: list[Result], log_path: Path) -> int:
    """Print a one-line summary (and each failure); 1 if any file failed."""
    counts = {s: sum(r.status == s for r in results) for s in ("ok", "present", "failed")}
    fetched_bytes = sum(r.bytes_fetched for r in results)
    print(
        f"downloaded {counts['ok']}, already present {counts['present']}, "
        f"failed {counts['failed']} ({fetched_bytes} bytes fetched); log: {log_path}"
    )
    failed = [r for r in results if r.status == "failed"]
    for r in failed:
        print(
            f"FAILED {r.file_name} ({r.file_id}) after {r.attempts} tries: {r.error}",
            file=sys.stderr,
        )
    return 1 if failed else 0
