"""How the slide sheet's patient IDs and the omics table's case IDs differ (mismatch hints).

The common case is TCGA barcodes truncated differently: a sheet filled from slide file names
(``TCGA-2F-A9KO-01Z-00-DX1``) against an omics table keyed by 12-character case barcodes
(``TCGA-2F-A9KO``). :func:`describe_mismatch` names the counts, the first IDs on each side
and every form difference it recognises, with the fix.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

TCGA_CASE = re.compile(r"^TCGA-[A-Z0-9]{2}-[A-Z0-9]{4}$", re.IGNORECASE)
TCGA_LONGER = re.compile(r"^TCGA-[A-Z0-9]{2}-[A-Z0-9]{4}-\S+$", re.IGNORECASE)
N_SHOWN = 5


def _first(ids: Iterable[str], n: int = N_SHOWN) -> str:
    ids = sorted(ids)
    shown = ", ".join(ids[:n])
    return shown + (f", ... (+{len(ids) - n})" if len(ids) > n else "") if ids else "none"


def _share(ids: set[str], pattern: re.Pattern[str]) -> float:
    return sum(bool(pattern.match(i)) for i in ids) / len(ids) if ids else 0.0


def id_form(ids: set[str]) -> str:
    """A short description of the majority form of ``ids``."""
    if _share(ids, TCGA_CASE) > 0.5:
        return "12-character TCGA case barcodes"
    if _share(ids, TCGA_LONGER) > 0.5:
        return "TCGA sample/slide barcodes (longer than 12 characters)"
    return "non-TCGA identifiers"


def _matches_after(
    sheet: set[str], omics: set[str], fn: Callable[[str], str]
) -> tuple[int, str | None]:
    """Sheet IDs matching an omics ID once both go through ``fn``, and one example pair."""
    mapped = {fn(o): o for o in omics}
    hits = [(s, mapped[fn(s)]) for s in sorted(sheet) if fn(s) in mapped]
    example = f"{hits[0][0]} ~ {hits[0][1]}" if hits else None
    return len(hits), example


def describe_mismatch(
    sheet_ids: set[str],
    omics_ids: set[str],
    omics_slides: dict[str, list[str]] | None = None,
    sheet_slides: dict[str, str] | None = None,
) -> str:
    """Several lines: counts, the first unmatched IDs of each side, recognised form differences.

    ``omics_slides``: case_id -> slide ids the omics table lists (its slide_id column);
    ``sheet_slides``: slide_id -> the sheet's patient_id.
    """
    sheet_ids, omics_ids = set(sheet_ids), set(omics_ids)
    common = sheet_ids & omics_ids
    sheet_only, omics_only = sheet_ids - omics_ids, omics_ids - sheet_ids
    lines = [
        f"sheet: {len(sheet_ids)} patient ID(s); omics table: {len(omics_ids)} case ID(s); "
        f"{len(common)} in both",
        f"only in the sheet (first {N_SHOWN}): {_first(sheet_only)}",
        f"only in the omics table (first {N_SHOWN}): {_first(omics_only)}",
    ]
    hints = _hints(sheet_only, omics_only, omics_slides or {}, sheet_slides or {})
    if not hints and sheet_only and omics_only:
        hints.append(
            f"no common form recognised (sheet IDs: {id_form(sheet_only)}; omics IDs: "
            f"{id_form(omics_only)}): check that the sheet's patient_id holds the omics "
            "table's case_id values"
        )
    if not sheet_ids:
        hints.append("the sheet has no usable slide (see qc/slides.tsv)")
    return "\n".join(lines + [f"hint: {h}" for h in hints])


def _hints(
    sheet_only: set[str],
    omics_only: set[str],
    omics_slides: dict[str, list[str]],
    sheet_slides: dict[str, str],
) -> list[str]:
    hints: list[str] = []
    if not sheet_only or not omics_only:
        return hints
    n = len(sheet_only)
    if _share(sheet_only, TCGA_LONGER) > 0.5 and _share(omics_only, TCGA_CASE) > 0.5:
        hits, _ = _matches_after(sheet_only, omics_only, lambda i: i[:12].upper())
        hints.append(
            f"sheet IDs look like sample/slide barcodes (e.g. {min(sheet_only)}), omics IDs like "
            f"12-char case barcodes (e.g. {min(omics_only)}); set patient_id to the first 12 "
            f"characters ({hits} of {n} sheet patient(s) would then match)"
        )
    elif _share(omics_only, TCGA_LONGER) > 0.5 and _share(sheet_only, TCGA_CASE) > 0.5:
        hits, _ = _matches_after(sheet_only, omics_only, lambda i: i[:12].upper())
        hints.append(
            f"omics IDs look like sample/slide barcodes (e.g. {min(omics_only)}), sheet IDs like "
            f"12-char case barcodes (e.g. {min(sheet_only)}); set the omics table's case_id to "
            f"the first 12 characters ({hits} of {n} sheet patient(s) would then match)"
        )
    else:
        longer = [s for s in sorted(sheet_only) if any(s.startswith(o) for o in omics_only)]
        shorter = [s for s in sorted(sheet_only) if any(o.startswith(s) for o in omics_only)]
        if longer:
            hints.append(
                f"{len(longer)} sheet ID(s) extend an omics ID (e.g. {longer[0]}): the sheet's "
                "patient_id should be the omics table's case_id, not a longer barcode"
            )
        elif shorter:
            hints.append(
                f"{len(shorter)} sheet ID(s) are the start of an omics ID (e.g. {shorter[0]}): "
                "the omics case_id values are longer barcodes than the sheet's patient_id"
            )
    for label, fn in (
        ("letter case", str.upper),
        ("'_' versus '-'", lambda i: i.replace("_", "-")),
        ("letter case and '_' versus '-'", lambda i: i.replace("_", "-").upper()),
    ):
        hits, example = _matches_after(sheet_only, omics_only, fn)
        if hits:
            hints.append(f"{hits} ID(s) differ only in {label} (e.g. {example})")
            break
    by_slide: dict[str, str] = {}
    for case, slides in omics_slides.items():
        for slide in slides:
            by_slide[slide] = case
            by_slide.setdefault(slide.split(".")[0], case)  # 'X-DX1.<uuid>' also as 'X-DX1'
    moved = [
        (slide, by_slide[slide], patient)
        for slide, patient in sorted(sheet_slides.items())
        if slide in by_slide and by_slide[slide] != patient
    ]
    if moved:
        slide, case, patient = moved[0]
        hints.append(
            f"the omics table's slide_id column lists {len(moved)} sheet slide(s) under other "
            f"case IDs (e.g. slide {slide}: case {case} there, patient {patient} in the sheet); "
            "use those case IDs as patient_id"
        )
    return hints
