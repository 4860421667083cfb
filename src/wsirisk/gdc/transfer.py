"""One GDC file, fetched from ``/data/{uuid}``: resumable, retried, verified, renamed last.

Bytes go to ``<name>.partial`` beside the final file.  A later attempt (or a later run)
asks for the rest with ``Range: bytes=<have>-``; a ``206`` is appended, a ``200`` (server
ignored the range) restarts the file.  When the partial reaches the expected size its md5
is checked: a match renames it to ``<name>``, a mismatch deletes it and the next attempt
starts from scratch.  Nothing unverified ever carries the final name.
"""

from __future__ import annotations

import email.message
import hashlib
import http.client
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from wsirisk.gdc.manifest import FileEntry
from wsirisk.gdc.net import (
    PermanentError,
    Response,
    TransientError,
    join,
    open_request,
    raise_for_status,
)
from wsirisk.layout import check_id

CHUNK_BYTES = 1 << 20
PARTIAL_SUFFIX = ".partial"
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


@dataclass
class Settings:
    """Transfer knobs: attempts = retries + 1; timeouts and waits in seconds."""

    endpoint: str = "https://api.gdc.cancer.gov"
    retries: int = 5
    timeout_s: float = 60.0
    backoff_s: float = 1.0
    max_backoff_s: float = 60.0
    deadline_s: float = 6 * 3600.0
    token: str | None = None
    stop: threading.Event | None = None  # set -> transfers end at the next chunk, partials kept


@dataclass
class Result:
    """Outcome of one file: status is 'ok', 'present' (already verified) or 'failed'."""

    file_id: str
    file_name: str
    size_bytes: int = 0
    bytes_fetched: int = 0
    md5_ok: bool = False
    attempts: int = 0
    status: str = "failed"
    error: str = ""
    errors: list[str] = field(default_factory=list)


def partial_path(out_dir: Path, entry: FileEntry) -> Path:
    """Where the unverified bytes of ``entry`` live."""
    return Path(out_dir) / (check_id(entry.file_name, "filename") + PARTIAL_SUFFIX)


def file_md5(path: Path) -> str:
    """Hex md5 of a file, read in 1 MiB chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(entry: FileEntry, out_dir: Path, settings: Settings) -> Result:
    """Download ``entry`` into ``out_dir``; never raises for network trouble (see Result)."""
    out_dir = Path(out_dir)
    final = out_dir / check_id(entry.file_name, "filename")
    partial = partial_path(out_dir, entry)
    result = Result(entry.file_id, entry.file_name)
    if final.is_file() and final.stat().st_size == entry.size_bytes:
        if file_md5(final) == entry.md5:
            result.size_bytes, result.md5_ok, result.status = entry.size_bytes, True, "present"
            return result
    if settings.stop is not None and settings.stop.is_set():
        result.error = "interrupted before it started"
        return result
    out_dir.mkdir(parents=True, exist_ok=True)
    url = join(settings.endpoint, f"data/{check_id(entry.file_id, 'file id')}")
    deadline = time.monotonic() + settings.deadline_s
    for attempt in range(1, settings.retries + 2):
        result.attempts = attempt
        wait: float | None = None
        try:
            have = partial.stat().st_size if partial.exists() else 0
            if have > entry.size_bytes:
                partial.unlink()
                have = 0
            if have < entry.size_bytes or not partial.exists():
                result.bytes_fetched += _fetch_rest(url, entry, partial, have, settings, deadline)
            if _verify(partial, entry):
                os.replace(partial, final)
                result.size_bytes, result.md5_ok, result.status = entry.size_bytes, True, "ok"
                result.error = ""
                return result
            result.errors.append(f"attempt {attempt}: md5 mismatch; partial deleted")
        except TransientError as exc:
            result.bytes_fetched += getattr(exc, "got", 0)
            result.errors.append(f"attempt {attempt}: {exc}")
            wait = exc.retry_after_s
        except PermanentError as exc:
            result.errors.append(f"attempt {attempt}: {exc}")
            break
        if time.monotonic() >= deadline:
            result.errors.append(f"deadline of {settings.deadline_s:g} s passed")
            break
        if attempt <= settings.retries:
            pause = settings.backoff_s * 2 ** (attempt - 1) if wait is None else wait
            time.sleep(min(settings.max_backoff_s, pause, max(0.0, deadline - time.monotonic())))
    result.error = result.errors[-1] if result.errors else "failed"
    result.size_bytes = partial.stat().st_size if partial.exists() else 0
    return result


def _verify(partial: Path, entry: FileEntry) -> bool:
    """True if size and md5 match; a wrong md5 deletes the partial (restart from scratch)."""
    size = partial.stat().st_size
    if size != entry.size_bytes:
        raise TransientError(f"have {size} of {entry.size_bytes} bytes")
    if file_md5(partial) == entry.md5:
        return True
    partial.unlink()
    return False


def _fetch_rest(
    url: str, entry: FileEntry, partial: Path, have: int, settings: Settings, deadline: float
) -> int:
    """GET the bytes after ``have`` into ``partial``; returns the body bytes received."""
    headers = {"Range": f"bytes={have}-"} if have else {}
    if settings.token:
        headers["X-Auth-Token"] = settings.token
    timeout_s = max(0.001, min(settings.timeout_s, deadline - time.monotonic()))
    response = open_request("GET", url, headers=headers, timeout_s=timeout_s)
    got = 0
    try:
        if response.status == 416:
            partial.unlink(missing_ok=True)
            raise TransientError(f"HTTP 416 for bytes={have}-; restarting from scratch")
        raise_for_status(response, url)
        _check_disposition(response.header("Content-Disposition"), url)
        start = _start_offset(response, entry, have, url)
        length = response.header("Content-Length")
        expected = int(length) if length and length.isdigit() else entry.size_bytes - start
        if start + expected != entry.size_bytes:
            raise PermanentError(
                f"{url}: server offers {start + expected} bytes, manifest says {entry.size_bytes}"
            )
        with partial.open("r+b" if partial.exists() else "wb") as fh:
            fh.truncate(start)
            fh.seek(start)
            while got < expected:
                if settings.stop is not None and settings.stop.is_set():
                    raise Interrupted(f"interrupted after {got} bytes; the partial file is kept")
                if time.monotonic() > deadline:
                    raise _Partial(got, f"deadline passed after {got} of {expected} bytes")
                chunk = response.resp.read1(min(CHUNK_BYTES, expected - got))  # what arrived
                if not chunk:
                    break
                fh.write(chunk)
                got += len(chunk)
            fh.flush()
            os.fsync(fh.fileno())
    except (OSError, http.client.HTTPException) as exc:
        raise _Partial(got, f"{type(exc).__name__} after {got} bytes: {exc}") from exc
    finally:
        response.close()
    if got < expected:
        raise _Partial(got, f"connection closed after {got} of {expected} bytes")
    return got


class Interrupted(PermanentError):
    """The run was stopped (Ctrl-C, SIGTERM): no retry; the partial file stays for a resume."""


class _Partial(TransientError):
    """Transient failure that still delivered ``got`` bytes (kept for the next attempt)."""

    def __init__(self, got: int, message: str) -> None:
        super().__init__(message)
        self.got = got


def _start_offset(response: Response, entry: FileEntry, have: int, url: str) -> int:
    """Byte offset the body starts at: ``have`` for a matching 206, 0 for a 200."""
    if response.status == 200:
        return 0
    if response.status != 206:
        raise TransientError(f"{url}: unexpected HTTP {response.status}")
    match = _CONTENT_RANGE.match((response.header("Content-Range") or "").strip())
    if not match:
        raise TransientError(f"{url}: 206 without a usable Content-Range")
    start, end, total = int(match[1]), int(match[2]), match[3]
    if total != "*" and int(total) != entry.size_bytes:
        raise PermanentError(f"{url}: server size {total}, manifest says {entry.size_bytes}")
    if start != have or end != entry.size_bytes - 1:
        raise TransientError(f"{url}: asked bytes={have}-, got {start}-{end}")
    return start


def _check_disposition(value: str | None, url: str) -> None:
    """Reject a Content-Disposition file name that is not a safe bare name ('../x', '/x')."""
    if not value:
        return
    msg = email.message.Message()
    msg["Content-Disposition"] = value
    name = msg.get_filename()
    if name is None:
        return
    try:
        check_id(name, "file name")
    except ValueError as exc:
        raise PermanentError(
            f"{url}: server sent an unsafe Content-Disposition name: {exc}"
        ) from None
