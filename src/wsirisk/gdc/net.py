"""Minimal HTTP(S) requests on the standard library, one connection per request."""

from __future__ import annotations

import http.client
import urllib.parse
from dataclasses import dataclass

USER_AGENT = "wsirisk-gdc/0.1"


class TransientError(Exception):
    """A failure worth retrying (connection trouble, 5xx, 429, short body)."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class PermanentError(Exception):
    """A failure that retrying will not fix (4xx, unsafe name, size disagreement)."""


RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


@dataclass
class Response:
    """An open response; close() releases its connection."""

    conn: http.client.HTTPConnection
    resp: http.client.HTTPResponse

    @property
    def status(self) -> int:
        return self.resp.status

    def header(self, name: str) -> str | None:
        return self.resp.getheader(name)

    def close(self) -> None:
        self.conn.close()


def join(endpoint: str, path: str) -> str:
    """``https://host/base`` + ``/files`` (no doubled slashes)."""
    return endpoint.rstrip("/") + "/" + path.lstrip("/")


def open_request(
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    timeout_s: float = 60.0,
) -> Response:
    """Send one request; socket errors become TransientError. Caller must close()."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise PermanentError(f"unsupported URL {url!r}")
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = cls(parts.hostname, parts.port, timeout=timeout_s)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    hdrs = {"User-Agent": USER_AGENT, "Connection": "close", **(headers or {})}
    try:
        conn.request(method, target, body=body, headers=hdrs)
        resp = conn.getresponse()
    except (OSError, http.client.HTTPException) as exc:
        conn.close()
        raise TransientError(f"{method} {url}: {type(exc).__name__}: {exc}") from exc
    return Response(conn, resp)


def retry_after_s(value: str | None) -> float | None:
    """Seconds of a Retry-After header given in seconds (HTTP dates are ignored)."""
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def raise_for_status(response: Response, url: str) -> None:
    """TransientError for 408/429/5xx, PermanentError for other 4xx; body excerpt included."""
    status = response.status
    if status < 400:
        return
    try:
        excerpt = response.resp.read(300).decode("utf-8", "replace").strip()
    except (OSError, http.client.HTTPException):
        excerpt = ""
    message = f"HTTP {status} from {url}" + (f": {excerpt}" if excerpt else "")
    if status in RETRY_STATUSES:
        raise TransientError(message, retry_after_s(response.header("Retry-After")))
    raise PermanentError(message)
