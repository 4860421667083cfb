"""``wsirisk cohort``: one row per patient before any training, and the slide/omics match check.

Patients are the union of the validated sheet's patients, the patients of rejected sheet rows
(qc/slides.tsv status ``rejected``), the omics store's patients and the patients the omics QC
dropped. Per patient (cohort/patients.tsv, columns :data:`PATIENT_COLUMNS`):

- ``n_slides``: slides of the validated sheet; ``n_slides_ok``: those tiled with tissue
  (qc/slides.tsv status ``ok`` and ``n_tiles > 0``); ``n_slides_rejected``: sheet rows rejected;
- ``has_label``: in the omics store (survival time and censorship passed QC);
- ``has_omics``: has a label and at least one non-NaN omics value (all-NaN = omics absent);
- ``status``: ``both`` (label, usable slide, omics), ``slides_only``, ``omics_only``, or
  ``dropped`` (no label, or no modality at all); ``reason``: every exclusion, ``;``-separated
  (also partial ones, e.g. one of two slides failed).

The check: when a model in ``--models`` uses pathology and genomics and fewer than
``--min-both-fraction`` of the labelled patients have both, the command fails (exit 1) with a
message naming the mismatch (:func:`wsirisk.cohort.ids.describe_mismatch`), unless
``--allow-mismatch``: then cohort/summary.json carries a ``banner`` for the report. Unimodal
models never fail that check; any model without a single labelled patient it can use fails
(training could not start). On failure the patient table is still written (to read), the
summary is not.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from wsirisk.cohort.ids import describe_mismatch
from wsirisk.cohort.sheet import read_tsv, read_validated_sheet, tsv_text
from wsirisk.store import write_json, write_text

PATIENT_COLUMNS = (
    "patient_id",
    "status",
    "n_slides",
    "n_slides_ok",
    "n_slides_rejected",
    "has_omics",
    "has_label",
    "reason",
)
STATUSES = ("both", "slides_only", "omics_only", "dropped")
PATHOLOGY, GENOMICS = "pathology", "genomics"


@dataclass
class Patient:
    patient_id: str
    slides: list[str] = field(default_factory=list)
    slides_ok: list[str] = field(default_factory=list)
    slide_notes: list[str] = field(default_factory=list)
    rejected: int = 0
    has_label: bool = False
    has_omics: bool = False
    omics_notes: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        if not self.has_label:
            return "dropped"
        if self.slides_ok and self.has_omics:
            return "both"
        if self.slides_ok:
            return "slides_only"
        return "omics_only" if self.has_omics else "dropped"

    def row(self) -> dict[str, str]:
        notes = list(self.omics_notes)
        if not self.slides and not self.rejected:
            notes.append("no slide in the sheet")
        notes += self.slide_notes
        return {
            "patient_id": self.patient_id,
            "status": self.status,
            "n_slides": str(len(self.slides)),
            "n_slides_ok": str(len(self.slides_ok)),
            "n_slides_rejected": str(self.rejected),
            "has_omics": str(self.has_omics).lower(),
            "has_label": str(self.has_label).lower(),
            "reason": "; ".join(notes),
        }


def model_modalities(names: list[str], omics_sizes: list[int]) -> dict[str, set[str]]:
    """Modalities each model uses (``build_model(name).modalities``); unknown names raise."""
    from wsirisk.models import MODEL_NAMES, build_model

    out = {}
    for name in names:
        if name not in MODEL_NAMES:
            raise ValueError(f"--models: unknown model {name!r}; known: {', '.join(MODEL_NAMES)}")
        sizes = [max(1, n) for n in omics_sizes] or [1] * 6
        out[name] = set(build_model(name, omics_sizes=sizes).modalities)
    return out


def gather(
    sheet: Path, qc_slides: Path, omics: Path, qc_omics: Path
) -> tuple[dict[str, Patient], dict[str, Any]]:
    """Patients by ID and side information (omics sizes, slide lists) for the mismatch hints."""
    from wsirisk.omics.load import load_omics

    patients: dict[str, Patient] = {}

    def get(pid: str) -> Patient:
        return patients.setdefault(pid, Patient(pid))

    sheet_rows = read_validated_sheet(sheet)
    qc_rows = read_tsv(qc_slides, ("slide_id", "patient_id", "status", "reason"), "slide QC table")
    by_slide = {r["slide_id"]: r for r in qc_rows if r["status"] != "rejected"}
    for row in sheet_rows:
        patient = get(row["patient_id"])
        slide = row["slide_id"]
        patient.slides.append(slide)
        qc = by_slide.get(slide)
        if qc is None:
            patient.slide_notes.append(f"slide {slide} not in {qc_slides}")
        elif qc["status"] == "ok" and _int(qc.get("n_tiles")) > 0:
            patient.slides_ok.append(slide)
        else:
            code = qc.get("reason_code") or qc["status"]
            why = qc["reason"] or "no tissue tile"
            patient.slide_notes.append(f"slide {slide} {qc['status']} ({code}: {why})")
    for row in qc_rows:
        if row["status"] == "rejected" and row["patient_id"]:
            patient = get(row["patient_id"])
            patient.rejected += 1
            patient.slide_notes.append(
                f"sheet row of slide {row['slide_id']!r} rejected ({row.get('reason_code', '')}: "
                f"{row['reason']})"
            )
    data = load_omics(omics)
    present = np.zeros(len(data.patients), dtype=bool)
    for values in data.groups.values():
        present |= np.isfinite(values).any(axis=1)
    for case, has in zip(data.patients, present, strict=True):
        patient = get(case)
        patient.has_label = True
        patient.has_omics = bool(has)
        if not has:
            patient.omics_notes.append(f"omics absent (every value NaN in {omics})")
    for row in read_tsv(qc_omics, ("case_id", "status", "reason", "detail"), "omics QC table"):
        if row["status"] == "dropped" and row["case_id"] and row["case_id"] not in data.patients:
            get(row["case_id"]).omics_notes.append(
                f"omics table: dropped ({row['reason']}: {row['detail']})"
            )
    for patient in patients.values():
        if not patient.has_label and not patient.omics_notes:
            patient.omics_notes.append(f"no survival label: case not in {omics}")
    side = {
        "omics_sizes": [data.group_sizes[s] for s in data.groups],
        "omics_slides": data.slides,
        "sheet_slides": {r["slide_id"]: r["patient_id"] for r in sheet_rows},
        "sheet_patients": {r["patient_id"] for r in sheet_rows},
        "omics_patients": set(data.patients),
        "n_slides": len(sheet_rows),
        "n_slides_ok": sum(len(p.slides_ok) for p in patients.values()),
        "n_slides_rejected": sum(1 for r in qc_rows if r["status"] == "rejected"),
    }
    return dict(sorted(patients.items())), side


def _int(value: str | None) -> int:
    try:
        return int(float(value or 0))
    except ValueError:
        return 0


@dataclass
class CohortCheck:
    summary: dict[str, Any]
    error: str | None


def check_cohort(
    patients: dict[str, Patient],
    side: dict[str, Any],
    models: list[str],
    min_both_fraction: float = 0.5,
    allow_mismatch: bool = False,
) -> CohortCheck:
    """Counts, per-model usable patients, and the mismatch verdict (error text or banner)."""
    counts = {status: 0 for status in STATUSES}
    for patient in patients.values():
        counts[patient.status] += 1
    labelled = [p for p in patients.values() if p.has_label]
    both = counts["both"]
    fraction = both / len(labelled) if labelled else None
    modalities = model_modalities(models, side["omics_sizes"])
    per_model = []
    errors: list[str] = []
    for name, used in modalities.items():
        usable = sum(
            (PATHOLOGY in used and bool(p.slides_ok)) or (GENOMICS in used and p.has_omics)
            for p in labelled
        )
        per_model.append(
            {
                "name": name,
                "modalities": sorted(used),
                "multimodal": {PATHOLOGY, GENOMICS} <= used,
                "usable_patients": usable,
            }
        )
        if usable == 0:
            errors.append(
                f"model {name} uses {'+'.join(sorted(used))}, but no labelled patient has it"
            )
    multimodal = [m["name"] for m in per_model if m["multimodal"]]
    diagnosis = None
    low = bool(multimodal) and fraction is not None and fraction < min_both_fraction
    if low or errors:
        diagnosis = describe_mismatch(
            side["sheet_patients"], side["omics_patients"], side["omics_slides"],
            side["sheet_slides"],
        )  # fmt: skip
    share = f"{fraction:.0%}" if fraction is not None else "n/a"
    mismatch = None
    if low:
        mismatch = (
            f"only {both} of {len(labelled)} labelled patient(s) ({share}) have both slides and "
            f"omics, below min_both_fraction {min_both_fraction:g}, and multimodal model(s) "
            f"{', '.join(multimodal)} use both"
        )
    banner = None
    error = None
    if errors:
        error = "; ".join(errors) + "\n" + str(diagnosis)
    elif mismatch and not allow_mismatch:
        error = (
            f"slide/omics mismatch: {mismatch}.\n{diagnosis}\nFix the IDs, or allow it "
            "(--allow-mismatch; the report then carries a banner)."
        )
    elif mismatch:
        banner = (
            f"Slide/omics mismatch allowed: {mismatch}. Patients without a usable slide were "
            f"trained and scored from omics alone, so the figures are not multimodal results. "
            + str(diagnosis).replace("\n", " | ")
        )
    summary = {
        "patients": len(patients),
        "counts": counts,
        "labelled": len(labelled),
        "with_slides": sum(bool(p.slides_ok) for p in labelled),
        "with_omics": sum(p.has_omics for p in labelled),
        "both_fraction": fraction,
        "min_both_fraction": min_both_fraction,
        "allow_mismatch": allow_mismatch,
        "slides": {
            "in_sheet": side["n_slides"],
            "ok": side["n_slides_ok"],
            "rejected_rows": side["n_slides_rejected"],
        },
        "models": per_model,
        "mismatch": None if mismatch is None else f"{mismatch}\n{diagnosis}",
        "banner": banner,
    }
    return CohortCheck(summary, error)


def patients_tsv(patients: dict[str, Patient]) -> str:
    return tsv_text((p.row() for p in patients.values()), PATIENT_COLUMNS)


def console_summary(summary: dict[str, Any]) -> str:
    c = summary["counts"]
    share = summary["both_fraction"]
    return (
        f"cohort: {summary['patients']} patient(s): {c['both']} both, {c['slides_only']} slides "
        f"only, {c['omics_only']} omics only, {c['dropped']} dropped; {summary['labelled']} "
        f"labelled ({'n/a' if share is None else f'{share:.0%}'} with both); slides: "
        f"{summary['slides']['ok']} usable of {summary['slides']['in_sheet']}, "
        f"{summary['slides']['rejected_rows']} sheet row(s) rejected; models: "
        + ", ".join(f"{m['name']} ({'+'.join(m['modalities'])})" for m in summary["models"])
    )


def build_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sheet", type=Path, required=True, help="validated sheet (cohort/slides.tsv)"
    )
    parser.add_argument("--qc-slides", type=Path, required=True, help="qc/slides.tsv")
    parser.add_argument("--omics", type=Path, required=True, help="omics.zarr")
    parser.add_argument("--qc-omics", type=Path, required=True, help="qc/omics.tsv")
    parser.add_argument("--models", required=True, help="comma-separated model names")
    parser.add_argument(
        "--min-both-fraction",
        type=float,
        default=0.5,
        help="least share of labelled patients with slides and omics for a multimodal model",
    )
    parser.add_argument(
        "--allow-mismatch", action="store_true", help="go on below the share (report banner)"
    )
    parser.add_argument("--out", type=Path, required=True, help="cohort/patients.tsv")
    parser.add_argument("--summary", type=Path, required=True, help="cohort/summary.json")


def run(args: argparse.Namespace) -> int:
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    try:
        if not models:
            raise ValueError("--models: no model named")
        if not 0.0 <= args.min_both_fraction <= 1.0:
            raise ValueError(f"--min-both-fraction must be in [0, 1], got {args.min_both_fraction}")
        patients, side = gather(args.sheet, args.qc_slides, args.omics, args.qc_omics)
        check = check_cohort(patients, side, models, args.min_both_fraction, args.allow_mismatch)
    except (FileNotFoundError, ValueError) as exc:
        print(f"wsirisk cohort: error: {exc}", file=sys.stderr)
        return 1
    write_text(args.out, patients_tsv(patients))
    print(console_summary(check.summary), file=sys.stderr)
    if check.error is not None:
        print(f"wsirisk cohort: error: {check.error}\n(patients: {args.out})", file=sys.stderr)
        return 1
    summary = {
        **check.summary,
        "inputs": {
            "sheet": str(args.sheet),
            "qc_slides": str(args.qc_slides),
            "omics": str(args.omics),
            "qc_omics": str(args.qc_omics),
        },
        "patients_table": str(args.out),
    }
    write_json(args.summary, summary)
    if check.summary["banner"]:
        print(f"wsirisk cohort: WARNING: {check.summary['banner']}", file=sys.stderr)
    return 0
