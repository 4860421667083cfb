"""GDC ``/files`` search: JSON filters, paging with ``from``/``size`` (docs/Search_and_Retrieval.md).

Common queries::

    diagnostic slides   data_type="Slide Image", experimental_strategy="Diagnostic Slide"
    STAR counts         data_type="Gene Expression Quantification",
                        workflow_type="STAR - Counts"
    gene-level CNV      data_type="Gene Level Copy Number"
    masked MAF          data_type="Masked Somatic Mutation"
    clinical            data_category="Clinical", data_format="BCR Biotab"
"""

from __future__ import annotations

import http.client
import json
import time
from typing import Any

from wsirisk.gdc.manifest import FileEntry
from wsirisk.gdc.net import PermanentError, TransientError, join, open_request, raise_for_status
from wsirisk.layout import check_id

DEFAULT_ENDPOINT = "https://api.gdc.cancer.gov"
FIELDS = (
    "file_id",
    "file_name",
    "md5sum",
    "file_size",
    "state",
    "access",
    "data_category",
    "data_type",
    "data_format",
    "experimental_strategy",
    "analysis.workflow_type",
    "cases.case_id",
    "cases.submitter_id",
    "cases.project.project_id",
    "cases.samples.submitter_id",
    "cases.samples.sample_type",
    "associated_entities.entity_submitter_id",
    "associated_entities.entity_type",
    "associated_entities.case_id",
)


def build_filters(
    *,
    project: str | None = None,
    data_category: str | None = None,
    data_type: str | None = None,
    workflow_type: str | None = None,
    experimental_strategy: str | None = None,
    data_format: str | None = None,
    access: str | None = None,
    file_ids: list[str] | None = None,
) -> dict[str, Any]:
    """GDC filter JSON: an ``and`` of ``in`` clauses for every criterion given."""
    fields = {
        "cases.project.project_id": project,
        "files.data_category": data_category,
        "files.data_type": data_type,
        "files.analysis.workflow_type": workflow_type,
        "files.experimental_strategy": experimental_strategy,
        "files.data_format": data_format,
        "files.access": access,
        "files.file_id": file_ids,
    }
    clauses = []
    for field, value in fields.items():
        if value is None or value == []:
            continue
        values = list(value) if isinstance(value, list | tuple) else [value]
        clauses.append({"op": "in", "content": {"field": field, "value": values}})
    if not clauses:
        raise ValueError("a GDC query needs at least one criterion (project, data type, ...)")
    return {"op": "and", "content": clauses}


def query_files(
    filters: dict[str, Any],
    *,
    endpoint: str = DEFAULT_ENDPOINT,
    page_size: int = 500,
    max_pages: int = 200,
    timeout_s: float = 60.0,
    retries: int = 3,
    backoff_s: float = 1.0,
    fields: tuple[str, ...] = FIELDS,
    token: str | None = None,
) -> list[dict[str, Any]]:
    """All ``/files`` hits of a filter, page by page (POST JSON); bounded by ``max_pages``."""
    url = join(endpoint, "files")
    hits: list[dict[str, Any]] = []
    start = 0
    for _page in range(max_pages):
        payload = {
            "filters": filters,
            "fields": ",".join(fields),
            "format": "JSON",
            "size": page_size,
            "from": start,
        }
        data = _post_json(
            url, payload, timeout_s=timeout_s, retries=retries, backoff_s=backoff_s, token=token
        )
        try:
            page = data["data"]["hits"]
            total = int(data["data"]["pagination"]["total"])
        except (KeyError, TypeError, ValueError) as exc:
            raise PermanentError(f"{url}: unexpected response layout ({exc!r})") from exc
        hits.extend(page)
        start += len(page)
        if not page or start >= total:
            return hits
    raise PermanentError(f"{url}: more than {max_pages} pages of {page_size}; narrow the query")


def _post_json(
    url: str,
    payload: dict[str, Any],
    *,
    timeout_s: float,
    retries: int,
    backoff_s: float,
    token: str | None = None,
) -> dict[str, Any]:
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if token:
        headers["X-Auth-Token"] = token
    for attempt in range(retries + 1):
        try:
            response = open_request("POST", url, headers=headers, body=body, timeout_s=timeout_s)
            try:
                raise_for_status(response, url)
                return json.loads(response.resp.read())
            finally:
                response.close()
        except (TransientError, OSError, http.client.HTTPException, json.JSONDecodeError) as exc:
            if attempt == retries:
                raise TransientError(f"{url}: gave up after {retries + 1} tries: {exc}") from exc
            wait = getattr(exc, "retry_after_s", None)
            time.sleep(min(30.0, wait if wait is not None else backoff_s * 2**attempt))
    raise AssertionError("unreachable")  # pragma: no cover


def hit_to_entry(hit: dict[str, Any]) -> FileEntry:
    """A ``/files`` hit -> FileEntry; ValueError naming the key when one is missing or unsafe."""
    try:
        return FileEntry(
            file_id=check_id(str(hit["file_id"]), "file_id"),
            file_name=check_id(str(hit["file_name"]), "file_name"),
            md5=str(hit["md5sum"]).lower(),
            size_bytes=int(hit["file_size"]),
            state=str(hit.get("state", "")),
        )
    except KeyError as exc:
        raise ValueError(f"GDC /files hit lacks key {exc.args[0]!r}: {hit}") from None


def hit_to_sample_row(hit: dict[str, Any]) -> dict[str, str]:
    """A ``/files`` hit -> one portal-style sample sheet row (several samples comma-joined)."""
    cases = hit.get("cases") or []
    samples = [s for case in cases for s in case.get("samples") or []]
    projects = sorted({(c.get("project") or {}).get("project_id", "") for c in cases} - {""})
    return {
        "File ID": hit.get("file_id", ""),
        "File Name": hit.get("file_name", ""),
        "Data Category": hit.get("data_category", ""),
        "Data Type": hit.get("data_type", ""),
        "Project ID": ", ".join(projects),
        "Case ID": ", ".join(c.get("submitter_id", "") for c in cases),
        "Sample ID": ", ".join(s.get("submitter_id", "") for s in samples),
        "Sample Type": ", ".join(s.get("sample_type", "") for s in samples),
    }
