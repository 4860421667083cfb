"""Clinical tables -> survival_months, censorship (1 = censored), one row per patient.

Recognised layouts (by header):

- ``cdr``: the TCGA-CDR supplementary table (``bcr_patient_barcode``, ``OS``/``OS.time``,
  ``DSS``, ``DFI``, ``PFI``): the curated endpoints, ``#N/A`` for missing.  The only layout
  that offers DSS/DFI/PFI.  Read as TSV or as the GDC's xlsx (sheet ``TCGA-CDR``, else the
  first sheet; xlsx is recognised by its zip magic bytes, not its name).
- ``portal``: GDC portal ``clinical.tsv`` of 2020 (``--`` for missing) and 2022 (``'--``):
  ``case_id, submitter_id, ..., vital_status, days_to_death, days_to_last_follow_up``,
  one or more rows per case (one per diagnosis/treatment).
- ``portal_prefixed``: the 2024+ portal (``cases.submitter_id``, ``demographic.vital_status``,
  ``demographic.days_to_death``, ``diagnoses.days_to_last_follow_up``), several rows per case;
  its companion ``follow_up.tsv`` (``follow_ups.days_to_follow_up``) can be merged in.
- ``biotab``: BCR Biotab ``clinical_patient_<x>.txt`` / follow-up files: two extra header rows
  (column aliases, then ``CDE_ID:...``), ``vital_status``, ``death_days_to``
  (or ``days_to_death``), ``last_contact_days_to`` (or ``days_to_last_followup``).

Overall survival outside the CDR: dead -> days_to_death (largest reported), alive -> the
largest days_to_last_follow_up / follow-up day; patients lacking the needed day, with an
unknown vital status or a negative time are skipped (``attrs['skipped']``: case -> reason).
Days -> months: divided by 30.4375 (the mean Gregorian month, 365.25 / 12).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from wsirisk.gdc.barcodes import parse_barcode
from wsirisk.gdc.textio import MISSING, header_columns, read_tsv, to_number

CDR_SHEET = "TCGA-CDR"
_ZIP_MAGIC = b"PK\x03\x04"

DAYS_PER_MONTH = 30.4375
ENDPOINTS = ("OS", "DSS", "DFI", "PFI")
OUTPUT_COLUMNS = ["case_id", "survival_months", "censorship"]

_PORTAL = {
    "case": "submitter_id",
    "vital": "vital_status",
    "death": ["days_to_death"],
    "last": ["days_to_last_follow_up"],
    "project": "project_id",
}
_PREFIXED = {
    "case": "cases.submitter_id",
    "vital": "demographic.vital_status",
    "death": ["demographic.days_to_death"],
    "last": ["diagnoses.days_to_last_follow_up", "follow_ups.days_to_follow_up"],
    "project": "project.project_id",
}
_BIOTAB = {
    "case": "bcr_patient_barcode",
    "vital": "vital_status",
    "death": ["death_days_to", "days_to_death"],
    "last": ["last_contact_days_to", "days_to_last_followup"],
    "project": None,
}


def days_to_months(days: pd.Series | float) -> pd.Series | float:
    """Days / 30.4375 (mean month of the Gregorian calendar)."""
    return days / DAYS_PER_MONTH


def is_xlsx(path: Path) -> bool:
    """True for an xlsx workbook (a zip archive), whatever its name."""
    try:
        with Path(path).open("rb") as fh:
            return fh.read(4) == _ZIP_MAGIC
    except OSError:
        return False


def xlsx_columns(path: Path) -> list[str]:
    """Header row of the CDR sheet (or the first sheet) of an xlsx; [] if unreadable."""
    import openpyxl

    with Path(path).open("rb") as handle:  # a handle: openpyxl would refuse a foreign suffix
        try:
            book = openpyxl.load_workbook(handle, read_only=True)
        except Exception:  # any unreadable workbook is "not a table"
            return []
        try:
            sheet = book[CDR_SHEET] if CDR_SHEET in book.sheetnames else book.worksheets[0]
            first = next(sheet.iter_rows(max_row=1, values_only=True), ())
            return ["" if v is None else str(v).strip() for v in first]
        finally:
            book.close()


def read_table(path: Path) -> pd.DataFrame:
    """A clinical table as strings: TSV (plain or gzip) or xlsx (see the module doc)."""
    path = Path(path)
    if not is_xlsx(path):
        return read_tsv(path)
    try:
        with path.open("rb") as handle:
            sheets = pd.read_excel(handle, sheet_name=None, dtype=str, engine="openpyxl")
    except Exception as exc:  # openpyxl raises many kinds; name the file
        raise ValueError(f"{path}: cannot read as an xlsx table ({exc})") from exc
    table = sheets.get(CDR_SHEET, next(iter(sheets.values())))
    table.columns = [str(c).strip() for c in table.columns]
    return table.fillna("").astype(str)


def detect_format(path: Path) -> str | None:
    """'cdr', 'portal', 'portal_prefixed', 'follow_up', 'biotab', or None if none fits."""
    cols = set(xlsx_columns(path) if is_xlsx(path) else header_columns(path))
    if "bcr_patient_barcode" in cols and {"OS", "OS.time"} <= cols:
        return "cdr"
    if {"cases.submitter_id", "demographic.vital_status"} <= cols:
        return "portal_prefixed"
    if "cases.submitter_id" in cols and "follow_ups.days_to_follow_up" in cols:
        return "follow_up"
    if {"case_id", "submitter_id", "vital_status"} <= cols and "days_to_death" in cols:
        return "portal"
    if "bcr_patient_barcode" in cols and "vital_status" in cols:
        return "biotab"
    return None


def read_clinical(
    path: Path,
    *,
    endpoint: str = "OS",
    follow_up: Path | None = None,
    project: str | None = None,
) -> pd.DataFrame:
    """case_id, survival_months, censorship for every usable patient of a clinical file.

    ``endpoint`` OS/DSS/DFI/PFI (not OS: CDR only).  ``follow_up`` adds a portal follow_up.tsv's
    days to the last-contact candidates.  ``project`` (``TCGA-BLCA``) keeps that project only.
    """
    paths = [Path(path)] + ([Path(follow_up)] if follow_up is not None else [])
    return read_clinical_files(paths, endpoint=endpoint, project=project)


def read_clinical_files(
    paths: list[Path], *, endpoint: str = "OS", project: str | None = None
) -> pd.DataFrame:
    """Survival from several clinical files: a CDR table wins; otherwise portal / Biotab /
    follow-up rows of all files are pooled per patient (see the module doc)."""
    endpoint = endpoint.upper()
    if endpoint not in ENDPOINTS:
        raise ValueError(f"unknown endpoint {endpoint!r}: use one of {ENDPOINTS}")
    formats = {Path(p): detect_format(Path(p)) for p in paths}
    for p, fmt in formats.items():
        if fmt is None:
            raise ValueError(
                f"{p}: not a recognised clinical table (CDR, portal clinical.tsv or Biotab)"
            )
    cdr = sorted(p for p, fmt in formats.items() if fmt == "cdr")
    if cdr:
        return _from_cdr(cdr[0], endpoint, project)
    names = ", ".join(str(p) for p in formats)
    if endpoint != "OS":
        raise ValueError(
            f"{names}: endpoint {endpoint} needs the TCGA-CDR table; these give OS only"
        )
    if set(formats.values()) <= {"follow_up"}:
        raise ValueError(f"{names}: follow-up tables have no vital status; add the clinical.tsv")
    specs = {
        "portal": _PORTAL,
        "portal_prefixed": _PREFIXED,
        "follow_up": _PREFIXED,
        "biotab": _BIOTAB,
    }
    longs = []
    for p, fmt in formats.items():
        spec = specs[fmt]
        table = read_tsv(p)
        if fmt == "biotab":
            table = table[table["bcr_patient_barcode"] != "bcr_patient_barcode"]
            table = table[~table["bcr_patient_barcode"].str.startswith("CDE_ID")]
        if project and spec["project"] and spec["project"] in table:
            table = table[table[spec["project"]] == project]
        longs.append(_long_form(table, spec, p))
    return _overall_survival(pd.concat(longs, ignore_index=True), names)


def _long_form(table: pd.DataFrame, spec: dict, path: Path) -> pd.DataFrame:
    """case, vital, death_days, last_days per input row (missing columns -> NaN/'')."""
    if spec["case"] not in table:
        raise ValueError(f"{path}: missing column {spec['case']!r}")
    out = pd.DataFrame({"case": table[spec["case"]].str.strip()})
    vital = table[spec["vital"]] if spec["vital"] in table else pd.Series("", index=table.index)
    out["vital"] = vital.str.strip().str.lower()
    for key, target in (("death", "death_days"), ("last", "last_days")):
        cols = [c for c in spec[key] if c in table]
        if cols:
            numbers = [to_number(table[c], f"{path}: column {c}") for c in cols]
            out[target] = pd.concat(numbers, axis=1).max(axis=1)
        else:
            out[target] = np.nan
    return out[~out["case"].isin(MISSING)]


def _overall_survival(long: pd.DataFrame, path: Path | str) -> pd.DataFrame:
    rows, skipped = [], {}
    for case, g in long.groupby("case", sort=True):
        vital = set(g["vital"]) - {"", "--", "'--", "not reported", "unknown"}
        death, last = g["death_days"].max(), g["last_days"].max()
        if "dead" in vital:
            if np.isnan(death):
                skipped[case] = "dead without days_to_death"
                continue
            days, censored = death, 0
        elif "alive" in vital:
            if np.isnan(last):
                skipped[case] = "alive without a follow-up day"
                continue
            days, censored = last, 1
        else:
            skipped[case] = f"vital status unknown ({sorted(set(g['vital']))})"
            continue
        if days < 0:
            skipped[case] = f"negative survival time ({days:g} days)"
            continue
        rows.append((_case_barcode(case), days_to_months(float(days)), censored))
    return _frame(rows, skipped, path)


def read_cdr(path: Path, *, endpoint: str = "OS", project: str | None = None) -> pd.DataFrame:
    """case_id, survival_months, censorship from a TCGA-CDR table (TSV or xlsx) for one
    endpoint; ``project`` (``TCGA-BLCA``) keeps the rows of CDR ``type`` BLCA (may be none)."""
    endpoint = endpoint.upper()
    if endpoint not in ENDPOINTS:
        raise ValueError(f"unknown endpoint {endpoint!r}: use one of {ENDPOINTS}")
    return _from_cdr(Path(path), endpoint, project)


def _from_cdr(path: Path, endpoint: str, project: str | None) -> pd.DataFrame:
    table = read_table(path)
    time_col = f"{endpoint}.time"
    for col in (endpoint, time_col):
        if col not in table:
            raise ValueError(f"{path}: CDR table lacks column {col!r}")
    if project:
        if "type" not in table:
            raise ValueError(f"{path}: CDR table lacks column 'type' to filter {project}")
        table = table[table["type"] == project.removeprefix("TCGA-")]
    event = to_number(table[endpoint], f"{path}: column {endpoint}")
    days = to_number(table[time_col], f"{path}: column {time_col}")
    if not event.dropna().isin([0, 1]).all():
        raise ValueError(f"{path}: column {endpoint} must be 0/1")
    rows, skipped = [], {}
    for case, e, d in zip(table["bcr_patient_barcode"].str.strip(), event, days, strict=True):
        if np.isnan(e) or np.isnan(d):
            skipped[case] = f"{endpoint} or {time_col} missing"
        elif d < 0:
            skipped[case] = f"negative {time_col} ({d:g} days)"
        else:
            rows.append((case, days_to_months(float(d)), 1 - int(e)))
    return _frame(rows, skipped, path)


def _case_barcode(case: str) -> str:
    try:
        return parse_barcode(case).case_id
    except ValueError:
        return case


def _frame(rows: list[tuple], skipped: dict[str, str], path: Path | str) -> pd.DataFrame:
    out = pd.DataFrame(rows, columns=OUTPUT_COLUMNS)
    out["censorship"] = out["censorship"].astype("int8")
    dup = out["case_id"].duplicated()
    if dup.any():
        raise ValueError(f"{path}: several rows for case(s) {sorted(out.loc[dup, 'case_id'])[:5]}")
    out.attrs["skipped"] = skipped
    out.attrs["source"] = str(path)
    return out.reset_index(drop=True)
