"""A fake GDC API on 127.0.0.1 (ephemeral port) speaking real HTTP, with injectable faults.

Endpoints: ``POST/GET /files`` (JSON filters with ``and``/``in``/``=``, ``from``/``size``
paging, ``fields`` (only the named dotted fields come back, plus ``id``), the GDC response
layout, ``return_type=manifest``), ``GET /manifest/{id,id...}`` and ``POST /manifest``
(``{"ids": [...]}``): the GDC manifest TSV, and ``GET /data/{uuid}`` (``Range: bytes=N-[M]``,
206 + Content-Range, Content-Disposition; files whose ``access`` is ``controlled`` need the
``X-Auth-Token`` given as ``token``, else 403).  Faults are queued per file id and each one
is used up by one ``/data`` request; ``always[file_id]`` holds a fault used by every request:

    ("drop", n)         send the headers of the full answer, n body bytes, then hang up
    ("corrupt",)        send the right length with one byte flipped (md5 mismatch)
    ("status", 503)     answer with that HTTP status
    ("slow", seconds)   wait before answering
    ("throttle", bps)   send the body at about bps bytes per second (4 KiB writes)
    ("ignore_range",)   answer 200 with the whole file even when a Range was asked
    ("name", "../x")    send that Content-Disposition file name

``sent_bytes[file_id]`` counts the body bytes actually written to sockets; ``data_requests``
records (file_id, Range header) per request, ``files_requests`` the (from, size) pages and
``max_in_flight`` the most ``/data`` requests served at once.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
import urllib.parse
from collections import defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


@dataclass
class FakeFile:
    """One file the fake serves; ``meta`` holds the extra /files fields (cases, data_type...)."""

    file_id: str
    file_name: str
    data: bytes
    meta: dict[str, Any] = field(default_factory=dict)

    def hit(self) -> dict[str, Any]:
        return {
            "id": self.file_id,
            "file_id": self.file_id,
            "file_name": self.file_name,
            "md5sum": hashlib.md5(self.data).hexdigest(),
            "file_size": len(self.data),
            "state": "released",
            **self.meta,
        }


class FakeGDC:
    """Context manager: ``with FakeGDC(files) as gdc: gdc.url``."""

    def __init__(self, files: list[FakeFile], token: str | None = None) -> None:
        self.files = {f.file_id: f for f in files}
        self.token = token
        self.faults: dict[str, list[tuple]] = defaultdict(list)
        self.always: dict[str, tuple] = {}
        self.sent_bytes: dict[str, int] = defaultdict(int)
        self.data_requests: list[tuple[str, str | None]] = []
        self.files_requests: list[tuple[int, int]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def add_fault(self, file_id: str, *fault: Any) -> None:
        self.faults[file_id].append(tuple(fault))

    def __enter__(self) -> FakeGDC:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # ---- /files ----
    def search(self, payload: dict[str, Any]) -> dict[str, Any]:
        filters = payload.get("filters") or {}
        if isinstance(filters, str):
            filters = json.loads(filters)
        size = int(payload.get("size", 10))
        start = int(payload.get("from", 0))
        hits = [f.hit() for f in self.files.values() if _matches(f.hit(), filters)]
        with self.lock:
            self.files_requests.append((start, size))
        fields = payload.get("fields")
        if fields:
            hits = [_project(h, str(fields).split(",")) for h in hits]
        page = hits[start : start + size]
        return {
            "data": {
                "hits": page,
                "pagination": {
                    "count": len(page),
                    "total": len(hits),
                    "size": size,
                    "from": start,
                    "sort": "",
                    "page": start // max(size, 1) + 1,
                    "pages": -(-len(hits) // max(size, 1)),
                },
            },
            "warnings": {},
        }

    def next_fault(self, file_id: str) -> tuple:
        with self.lock:
            queue = self.faults.get(file_id)
            if queue:
                return queue.pop(0)
            return self.always.get(file_id, ())

    def manifest(self, ids: list[str] | None = None, filters: Any = None) -> str:
        """The GDC manifest TSV of some ids, or of a /files filter."""
        if ids is not None:
            chosen = [self.files[i] for i in ids if i in self.files]
        else:
            flt = json.loads(filters) if isinstance(filters, str) else (filters or {})
            chosen = [f for f in self.files.values() if _matches(f.hit(), flt)]
        lines = ["id\tfilename\tmd5\tsize\tstate"]
        for f in chosen:
            h = f.hit()
            lines.append(f"{f.file_id}\t{f.file_name}\t{h['md5sum']}\t{h['file_size']}\treleased")
        return "\n".join(lines) + "\n"


def _project(record: Any, paths: list[str]) -> Any:
    """Only the dotted ``paths`` of a hit (lists of objects projected item by item), + id."""
    out: dict[str, Any] = {"id": record.get("id")} if isinstance(record, dict) else {}
    heads: dict[str, list[str]] = defaultdict(list)
    for path in paths:
        head, _, rest = path.strip().partition(".")
        heads[head].append(rest)
    for head, rests in heads.items():
        if head not in record:
            continue
        value = record[head]
        subs = [r for r in rests if r]
        if subs and isinstance(value, list):
            value = [_project_plain(v, subs) for v in value]
        elif subs and isinstance(value, dict):
            value = _project_plain(value, subs)
        out[head] = value
    return out


def _project_plain(record: Any, paths: list[str]) -> Any:
    if not isinstance(record, dict):
        return record
    projected = _project(record, paths)
    if "id" not in record:
        projected.pop("id", None)
    return projected


def _values(record: Any, dotted: str) -> list[Any]:
    """All values at a dotted path, flattening lists (``cases.project.project_id``)."""
    items = [record]
    for key in dotted.split("."):
        nxt: list[Any] = []
        for item in items:
            if isinstance(item, list):
                nxt.extend(i.get(key) for i in item if isinstance(i, dict))
            elif isinstance(item, dict):
                nxt.append(item.get(key))
        items = [i for i in nxt if i is not None]
        items = [x for i in items for x in (i if isinstance(i, list) else [i])]
    return items


def _matches(hit: dict[str, Any], flt: dict[str, Any]) -> bool:
    if not flt:
        return True
    op = flt["op"].lower()
    if op == "and":
        return all(_matches(hit, f) for f in flt["content"])
    if op == "or":
        return any(_matches(hit, f) for f in flt["content"])
    if op in {"in", "="}:
        field_name = flt["content"]["field"].removeprefix("files.")
        wanted = flt["content"]["value"]
        wanted = set(wanted if isinstance(wanted, list) else [wanted])
        return bool(wanted & set(map(str, _values(hit, field_name))))
    raise ValueError(f"fake GDC: unsupported op {op}")


def _handler_for(gdc: FakeGDC) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # keep test output quiet
            pass

        def _json(self, status: int, obj: Any) -> None:
            body = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)

        def _text(self, status: int, text: str) -> None:
            body = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/tab-separated-values")
            self.send_header("Content-Disposition", 'attachment; filename="gdc_manifest.txt"')
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            payload = json.loads(self.rfile.read(length) or b"{}")
            path = self.path.rstrip("/")
            if path.endswith("/files") and payload.get("return_type") == "manifest":
                self._text(200, gdc.manifest(filters=payload.get("filters")))
            elif path.endswith("/files"):
                self._json(200, gdc.search(payload))
            elif path.endswith("/manifest"):
                self._text(200, gdc.manifest(ids=list(payload.get("ids") or [])))
            else:
                self._json(404, {"message": "not found"})

        def do_GET(self) -> None:  # noqa: N802
            parts = urllib.parse.urlsplit(self.path)
            if parts.path.rstrip("/").endswith("/files"):
                query = dict(urllib.parse.parse_qsl(parts.query))
                if query.get("return_type") == "manifest":
                    self._text(200, gdc.manifest(filters=query.get("filters")))
                else:
                    self._json(200, gdc.search(query))
            elif parts.path.startswith("/manifest/"):
                ids = [i for i in parts.path.removeprefix("/manifest/").split(",") if i]
                self._text(200, gdc.manifest(ids=ids))
            elif parts.path.startswith("/data/"):
                self._data(parts.path.removeprefix("/data/"))
            else:
                self._json(404, {"message": "not found"})

        def _data(self, file_id: str) -> None:
            rng = self.headers.get("Range")
            with gdc.lock:
                gdc.data_requests.append((file_id, rng))
            fake = gdc.files.get(file_id)
            if fake is None:
                self._json(404, {"message": f"file {file_id} not found"})
                return
            if fake.meta.get("access") == "controlled" and (
                gdc.token is None or self.headers.get("X-Auth-Token") != gdc.token
            ):
                self._json(403, {"message": "controlled file: a valid token is required"})
                return
            fault = gdc.next_fault(file_id)
            with gdc.lock:
                gdc.in_flight += 1
                gdc.max_in_flight = max(gdc.max_in_flight, gdc.in_flight)
            try:
                self._answer(fake, fault)
            finally:
                with gdc.lock:
                    gdc.in_flight -= 1

        def _answer(self, fake: FakeFile, fault: tuple) -> None:
            file_id, rng = fake.file_id, self.headers.get("Range")
            kind = fault[0] if fault else ""
            if kind == "slow":
                time.sleep(float(fault[1]))
            if kind == "status":
                self._json(int(fault[1]), {"message": "injected failure"})
                return
            data = fake.data
            if kind == "corrupt" and data:
                data = bytes([data[0] ^ 0xFF]) + data[1:]
            start, end, partial = 0, len(data) - 1, False
            match = _RANGE.match(rng or "")
            if match and kind != "ignore_range":
                start = int(match[1])
                end = min(int(match[2]), len(data) - 1) if match[2] else len(data) - 1
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    return
                partial = True
            body = data[start : end + 1]
            name = fault[1] if kind == "name" else fake.file_name
            self.send_response(206 if partial else 200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Accept-Ranges", "bytes")
            if partial:
                self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
            self.send_header("Content-Disposition", f'attachment; filename="{name}"')
            self.send_header("Connection", "close")
            self.end_headers()
            if kind == "drop":
                body = body[: int(fault[1])]
            if kind == "throttle":
                self._throttled(file_id, body, float(fault[1]))
                return
            self.wfile.write(body)
            self.wfile.flush()
            with gdc.lock:
                gdc.sent_bytes[file_id] += len(body)
            if kind == "drop":
                self.close_connection = True

        def _throttled(self, file_id: str, body: bytes, bytes_per_s: float) -> None:
            step = 4096
            for start in range(0, len(body), step):
                chunk = body[start : start + step]
                try:
                    self.wfile.write(chunk)
                    self.wfile.flush()
                except OSError:  # the client went away (killed): stop counting
                    self.close_connection = True
                    return
                with gdc.lock:
                    gdc.sent_bytes[file_id] += len(chunk)
                time.sleep(len(chunk) / bytes_per_s)

    return Handler
