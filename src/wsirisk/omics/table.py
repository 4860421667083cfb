"""Read a PORPOISE/MCAT cohort table (one row per slide) -> one row per patient + a QC table.

Input columns: ``case_id``, ``slide_id`` (optional), ``survival_months``, ``censorship``
(1 = censored), feature columns ending in ``_rnaseq``, ``_cnv`` or ``_mut``, and optional
clinical columns (age, is_female, oncotree_code, site, train); ``Unnamed: *`` index dumps are
ignored silently, any other column is ignored with a QC row.

Patients are dropped (with a QC row naming the reason and the table's line numbers, header =
line 1) when their rows disagree on survival (``conflicting_duplicate``), or the survival time
is missing / not a number / not finite / negative (``missing_time``, ``unparseable_time``,
``non_finite_time``, ``negative_time``), or the censorship is missing, not a number or not 0/1
(``missing_censorship``, ``unparseable_censorship``, ``unknown_censorship``). Several rows of
one case are normal (one row per slide); rows that repeat a case without naming a new slide
give a ``duplicate_case`` row (kept: the first non-NaN value of each feature is used).
NaN feature cells are kept as NaN and counted (imputation is done per training fold);
feature columns that are NaN for every kept patient are ignored (one QC row).
``slide_id`` values lose a whole-slide file extension (``.svs``...), as CLAM/MCAT feature
files are named by the stem.  QC rows: case_id, column, status (dropped | ignored | coerced
| kept), reason, detail.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from wsirisk.layout import check_id

FEATURE_SUFFIXES = ("_rnaseq", "_cnv", "_mut")
REQUIRED_COLUMNS = ("case_id", "survival_months", "censorship")
KNOWN_COLUMNS = frozenset(
    {*REQUIRED_COLUMNS, "slide_id", "age", "site", "is_female", "oncotree_code", "train"}
)
# slide_id "TCGA-...-DX1.<uuid>.svs" -> "TCGA-...-DX1.<uuid>" (the file stem, as CLAM/MCAT do)
SLIDE_SUFFIXES = (".svs", ".tif", ".tiff", ".ndpi", ".mrxs", ".scn", ".vms", ".vmu", ".bif")
QC_COLUMNS = ("case_id", "column", "status", "reason", "detail")


@dataclass
class CohortTable:
    """A cleaned cohort table: one row per kept patient, in order of first appearance."""

    source: str
    patients: pd.DataFrame  # index case_id; survival_months, censorship, then feature columns
    slides: dict[str, list[str]]
    feature_columns: list[str]
    qc: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=QC_COLUMNS))
    n_rows: int = 0

    @property
    def case_ids(self) -> list[str]:
        return [str(case) for case in self.patients.index]

    @property
    def nan_cells(self) -> int:
        return int(self.patients[self.feature_columns].isna().to_numpy().sum())


def is_feature_column(name: str) -> bool:
    """True for ``<GENE>_rnaseq``, ``<GENE>_cnv`` and ``<GENE>_mut`` columns."""
    return any(name.endswith(suffix) and len(name) > len(suffix) for suffix in FEATURE_SUFFIXES)


def slide_stem(slide_id: str) -> str:
    """Strip a whole-slide file extension: 'X-DX1.abc.svs' -> 'X-DX1.abc'."""
    lower = slide_id.lower()
    for suffix in SLIDE_SUFFIXES:
        if lower.endswith(suffix):
            return slide_id[: -len(suffix)]
    return slide_id


def read_table_file(path: Path) -> pd.DataFrame:
    """Read a CSV, TSV or zipped CSV into a DataFrame (case_id/slide_id as strings)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"omics table not found: {path}")
    sep = "\t" if ".tsv" in path.suffixes else ","
    try:
        return pd.read_csv(path, sep=sep, low_memory=False, dtype={"case_id": str, "slide_id": str})
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read as a table ({exc})") from exc


def read_cohort_table(path: Path) -> CohortTable:
    """Read and clean a cohort table file (see module docstring)."""
    return clean_table(read_table_file(path), source=str(path))


def _qc(case_id: str, column: str, status: str, reason: str, detail: str = "") -> dict:
    return {
        "case_id": case_id,
        "column": column,
        "status": status,
        "reason": reason,
        "detail": detail,
    }


def _parse_censorship(value: object) -> int | None:
    number = pd.to_numeric(pd.Series([value]), errors="coerce").iloc[0]
    if pd.isna(number) or number not in (0, 1):
        return None
    return int(number)


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or not str(value).strip()


def _lines(rows: pd.DataFrame) -> str:
    """'line 5' / 'lines 5, 9' of ``rows`` (index = 0-based data row; header = line 1)."""
    numbers = [str(int(i) + 2) for i in rows.index]
    return ("line " if len(numbers) == 1 else "lines ") + ", ".join(numbers)


def _check_columns(frame: pd.DataFrame, source: str, qc: list[dict]) -> list[str]:
    """Validate the header; return the feature columns and record ignored columns."""
    missing = [name for name in REQUIRED_COLUMNS if name not in frame.columns]
    if missing:
        raise ValueError(f"{source}: missing required column(s) {missing}")
    duplicated = frame.columns[frame.columns.duplicated()].tolist()
    if duplicated:
        raise ValueError(f"{source}: duplicated column(s) {duplicated}")
    features = []
    for name in map(str, frame.columns):
        if is_feature_column(name):
            features.append(name)
        elif name not in KNOWN_COLUMNS and not name.startswith("Unnamed:"):
            qc.append(_qc("", name, "ignored", "unknown_column"))
    return features


def _numeric_features(frame: pd.DataFrame, features: list[str], qc: list[dict]) -> pd.DataFrame:
    """Coerce feature columns to float64; non-numeric cells become NaN (one QC row per column)."""
    raw = frame[features]
    numeric = raw.apply(pd.to_numeric, errors="coerce").astype(np.float64)
    bad = (numeric.isna() & raw.notna()).sum()
    for name, count in bad[bad > 0].items():
        qc.append(_qc("", str(name), "coerced", "non_numeric", f"{int(count)} cell(s) -> NaN"))
    return numeric


def _patient_problem(rows: pd.DataFrame) -> tuple[str, str] | None:
    """(reason, detail) when a patient's survival rows are unusable, else None."""
    where = _lines(rows)
    months = pd.to_numeric(rows["survival_months"], errors="coerce")
    censor_numeric = pd.to_numeric(rows["censorship"], errors="coerce")
    censor_keys = censor_numeric.astype(object).where(
        censor_numeric.notna(), rows["censorship"].astype(str)
    )
    if len(rows) > 1 and (months.nunique(dropna=False) > 1 or censor_keys.nunique() > 1):
        detail = (
            f"{where}: survival_months={rows['survival_months'].tolist()}; "
            f"censorship={rows['censorship'].tolist()}"
        )
        return "conflicting_duplicate", detail
    raw_month, month = rows["survival_months"].iloc[0], months.iloc[0]
    if pd.isna(month):
        if _blank(raw_month):
            return "missing_time", f"{where}: survival_months={raw_month!r}"
        return "unparseable_time", f"{where}: survival_months={raw_month!r} is not a number"
    if not np.isfinite(month):
        return "non_finite_time", f"{where}: survival_months={raw_month!r}"
    if month < 0:
        return "negative_time", f"{where}: survival_months={month:g}"
    raw_censor = rows["censorship"].iloc[0]
    if _parse_censorship(raw_censor) is None:
        if _blank(raw_censor):
            return "missing_censorship", f"{where}: censorship={raw_censor!r} (expected 0 or 1)"
        if pd.isna(censor_numeric.iloc[0]):
            return "unparseable_censorship", f"{where}: censorship={raw_censor!r} is not a number"
        return "unknown_censorship", f"{where}: censorship={raw_censor!r} (expected 0 or 1)"
    return None


def _duplicate_detail(rows: pd.DataFrame) -> str | None:
    """Why several rows of one case are not one row per slide, or None when they are."""
    if len(rows) < 2:
        return None
    if "slide_id" not in rows.columns:
        return f"{_lines(rows)} repeat the case (the table has no slide_id column)"
    slides = rows["slide_id"].map(lambda v: "" if _blank(v) else slide_stem(str(v).strip()))
    repeated = slides[slides.duplicated(keep=False)]
    if repeated.empty:
        return None
    names = sorted({name or "<empty>" for name in repeated})
    return (
        f"{_lines(rows.loc[repeated.index])} repeat the case with slide_id {', '.join(names)}; "
        "first non-NaN value of each feature kept"
    )


def _slide_list(case_id: str, rows: pd.DataFrame, qc: list[dict]) -> list[str]:
    if "slide_id" not in rows.columns:
        return []
    slides: list[str] = []
    for value in rows["slide_id"].dropna().astype(str).str.strip():
        if not value:
            continue
        stem = slide_stem(value)
        try:
            check_id(stem, "slide_id")
        except ValueError as exc:
            qc.append(_qc(case_id, "slide_id", "ignored", "unsafe_slide_id", str(exc)))
            continue
        if stem not in slides:
            slides.append(stem)
    return slides


def clean_table(frame: pd.DataFrame, source: str = "<table>") -> CohortTable:
    """Validate a slide-level table and collapse it to one row per patient (see module doc)."""
    qc: list[dict] = []
    features = _check_columns(frame, source, qc)
    frame = frame.reset_index(drop=True)
    case_ids = frame["case_id"].astype("string").str.strip()
    no_case = case_ids.isna() | (case_ids == "")
    for index in np.flatnonzero(no_case.to_numpy()):
        qc.append(_qc("", "case_id", "dropped", "missing_case_id", f"line {int(index) + 2}"))
    frame = frame.loc[~no_case.to_numpy()].copy()
    frame["case_id"] = case_ids[~no_case].astype(str)
    numeric = _numeric_features(frame, features, qc)

    kept: list[str] = []
    months: list[float] = []
    censorship: list[int] = []
    slides: dict[str, list[str]] = {}
    groups = frame.groupby("case_id", sort=False)
    for case_id, rows in groups:
        case_id = str(case_id)
        problem = _patient_problem(rows)
        if problem is not None:
            qc.append(_qc(case_id, "", "dropped", *problem))
            continue
        duplicate = _duplicate_detail(rows)
        if duplicate is not None:
            qc.append(_qc(case_id, "case_id", "kept", "duplicate_case", duplicate))
        kept.append(case_id)
        months.append(float(pd.to_numeric(rows["survival_months"]).iloc[0]))
        censorship.append(int(pd.to_numeric(rows["censorship"]).iloc[0]))
        slides[case_id] = _slide_list(case_id, rows, qc)
        if len(rows) > 1 and features:
            conflicts = int((numeric.loc[rows.index].nunique(dropna=True) > 1).sum())
            if conflicts:
                qc.append(
                    _qc(
                        case_id,
                        "",
                        "kept",
                        "conflicting_features",
                        f"{conflicts} feature column(s) differ across {_lines(rows)}; "
                        "first non-NaN value kept",
                    )
                )

    first = numeric.groupby(frame["case_id"], sort=False).first() if features else None
    patients = pd.DataFrame(
        {"survival_months": months, "censorship": censorship},
        index=pd.Index(kept, name="case_id"),
    )
    if first is not None:
        patients = patients.join(first.loc[kept])
    all_nan = patients[features].isna().all() if len(patients) else pd.Series(dtype=bool)
    empty = [str(name) for name in all_nan[all_nan].index]
    if empty:
        listed = ";".join(empty[:50]) + (f";... (+{len(empty) - 50})" if len(empty) > 50 else "")
        qc.append(_qc("", "", "ignored", "all_nan_features", f"{len(empty)} column(s): {listed}"))
        patients = patients.drop(columns=empty)
        dropped = set(empty)
        features = [name for name in features if name not in dropped]
    for case_id, count in patients[features].isna().sum(axis=1).items():
        if count:
            qc.append(_qc(str(case_id), "", "kept", "nan_features", f"{int(count)} NaN cell(s)"))
    return CohortTable(
        source=source,
        patients=patients,
        slides=slides,
        feature_columns=features,
        qc=pd.DataFrame(qc, columns=list(QC_COLUMNS)),
        n_rows=len(frame) + int(no_case.sum()),
    )
