"""`wsirisk report`: one model's folds -> report/<model>/index.html, summary.json, oof.tsv, figures.

    wsirisk report --config-json "$(cat config.json)" --model me_mamba \
        --out-dir results/<cohort>/report/me_mamba

Reads (config paths via wsirisk.layout): train/<model>/fold<k>.zarr (k < splits.n_folds),
cohort/summary.json + cohort/patients.tsv, qc/slides.tsv (+ qc/sheet.tsv), qc/omics.tsv,
features/<encoder>/*.zarr (encoder attributes; heatmaps), slides/<slide>.zarr and the slide files
(heatmaps), omics.zarr + the demo's truth.csv (oracle, demo only), report.reference_table.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from wsirisk import layout
from wsirisk.layout import Layout
from wsirisk.report import html, survival
from wsirisk.report.evaluate import evaluate, risk_scale
from wsirisk.report.folds import Folds, load_folds
from wsirisk.report.reference import load_reference, paper_row
from wsirisk.store import open_group, write_json, write_text

log = logging.getLogger("wsirisk.report")


def concordance(months: np.ndarray, censorship: np.ndarray, risk: np.ndarray) -> float | None:
    """Harrell's C via training.metrics (lifelines); None when undefined."""
    from wsirisk.training.metrics import cindex

    return cindex(months, risk, censorship).value


def oracle_cindex(truth_csv: Path, omics_store: Path) -> float | None:
    """C-index of the demo's true risk against the observed survival of all patients."""
    import pandas as pd

    truth = pd.read_csv(truth_csv).set_index("case_id")
    group = open_group(omics_store)
    patients = list(group.attrs["patients"])
    keep = [p for p in patients if p in truth.index]
    index = [patients.index(p) for p in keep]
    months = group[layout.OMICS_MONTHS][:][index]
    censorship = group[layout.OMICS_CENSORSHIP][:][index]
    return concordance(months, censorship, truth.loc[keep, "true_risk"].to_numpy())


def encoder_info(features_stores: list[Path]) -> dict[str, Any]:
    """Encoder name and weights recorded by the feature stage (first store that has them)."""
    for path in features_stores:
        if path.exists():
            attrs = dict(open_group(path).attrs)
            if "encoder" in attrs:
                return {
                    "encoder": attrs.get("encoder"),
                    "weights": attrs.get("weights"),
                    "weights_sha256": attrs.get("weights_sha256"),
                    "random_init": bool(attrs.get("random_init", attrs.get("weights") == "random")),
                }
    return {"encoder": None, "weights": None, "weights_sha256": None, "random_init": False}


def package_versions() -> dict[str, str]:
    """Versions of the packages that shape the numbers."""
    import platform
    from importlib import metadata

    names = [
        "wsirisk",
        "torch",
        "timm",
        "numpy",
        "pandas",
        "zarr",
        "lifelines",
        "scikit-learn",
        "scikit-survival",
        "scipy",
        "openslide-python",
        "openslide-bin",
        "snakemake",
        "mamba-ssm",
    ]
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def model_modalities(model: str, folds: Folds) -> list[str]:
    """Modalities the model uses: the fold stores' ``modalities`` attribute, else the model's."""
    for fold in folds.folds:
        if fold.attrs.get("modalities"):
            return sorted(fold.attrs["modalities"])
    try:
        from wsirisk.models import build_model

        return sorted(build_model(model, path_dim=8, omics_sizes=[2] * 6).modalities)
    except (ValueError, TypeError, ImportError, RuntimeError, KeyError) as err:
        log.warning("modalities of %s unknown (%s): read from the embeddings", model, err)
        names = {n for f in folds.folds for n in f.embeddings}
        return sorted(names & {"pathology", "genomics"})


def modality_warnings(model: str, modalities: list[str], folds: Folds) -> list[str]:
    """Visible warnings when patients lacked a modality the model uses (union over folds)."""
    n = len(folds.patients)
    out = []
    for modality, key in (("pathology", "no_pathology"), ("genomics", "no_omics")):
        if modality not in modalities:
            continue
        lacking = set()
        for fold in folds.folds:
            lacking |= set(fold.attrs.get("missing", {}).get(key, []))
        if lacking:
            other = "genomics" if modality == "pathology" else "pathology"
            what = "slide features" if modality == "pathology" else "omics"
            out.append(
                f"{len(lacking)} patient(s) of the cohort had no {what}: {model} saw "
                f"{other} only for them" + (" (all of them!)" if len(lacking) >= n > 0 else "")
            )
    for fold in folds.folds:
        for note in fold.attrs.get("warnings", []) or []:
            out.append(f"fold {fold.index}: {note}")
    return out


def read_tsv(path: Path) -> list[dict[str, str]]:
    import csv

    if not path.exists():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


COUNT_LABELS = (
    ("both", "with slides and omics"),
    ("slides_only", "slides only"),
    ("omics_only", "omics only"),
    ("dropped", "dropped"),
)


def cohort_overview(lay: Layout) -> dict[str, Any]:
    """cohort/summary.json (+ patients.tsv): counts per modality, exclusions, banner."""
    overview: dict[str, Any] = {"summary_path": str(lay.cohort_summary), "summary": None}
    if not lay.cohort_summary.exists():
        return overview
    summary = json.loads(lay.cohort_summary.read_text())
    overview["summary"] = summary
    overview["banner"] = summary.get("banner") or None
    counts = summary.get("counts", summary)
    rows = []
    for key, label in COUNT_LABELS:
        for name in (key, f"n_{key}", f"patients_{key}"):
            if isinstance(counts.get(name), int | float):
                rows.append((label, counts[name]))
                break
    if not rows:  # an unknown layout: every number it holds
        rows = [(k, v) for k, v in counts.items() if isinstance(v, int | float)]
    overview["counts"] = rows
    patients = read_tsv(lay.cohort_table)
    overview["n_rows"] = len(patients)
    overview["excluded"] = [r for r in patients if (r.get("reason") or "").strip()]
    return overview


def extraction_failures(lay: Layout) -> list[dict[str, str]]:
    """Slides whose feature extraction failed (status ``error`` in a batch manifest of any
    encoder): tiled fine, so not in qc/slides.tsv's failures, but absent from training."""
    rows = []
    for manifest in sorted((lay.cohort_dir / "features").glob("*/batches/batch*.tsv")):
        for row in read_tsv(manifest):
            if row.get("status") == "error":
                rows.append(
                    {
                        "slide_id": row.get("slide_id", ""),
                        "patient_id": row.get("patient_id", ""),
                        "status": "features failed",
                        "reason_code": "extract_error",
                        "reason": f"{manifest.relative_to(lay.cohort_dir)}: {row.get('reason', '')}",
                    }
                )
    return rows


def qc_tables(lay: Layout, folds: Folds) -> dict[str, Any]:
    """qc/slides.tsv (rejected sheet rows included by qc-slides), qc/omics.tsv, imputed cells."""
    slides = read_tsv(lay.qc_slides)
    if lay.qc_sheet.exists() and not any(r.get("status") == "rejected" for r in slides):
        for row in read_tsv(lay.qc_sheet):  # qc-slides did not merge them: show them anyway
            slides.append(
                {
                    "slide_id": row.get("slide_id", ""),
                    "status": "rejected",
                    "reason": f"{row.get('sheet', '')} line {row.get('line', '')}: "
                    f"{row.get('reason', '')}",
                }
            )
    slides += extraction_failures(lay)
    omics = read_tsv(lay.qc_omics)
    total = None
    for row in omics:
        for key, value in row.items():
            if key and "imput" in key.lower() and str(value).strip().lstrip("-").isdigit():
                total = (total or 0) + int(value)
    return {
        "slides": slides,
        "omics": omics,
        "imputed": {
            "qc_total": total,
            "folds": [f.attrs.get("n_imputed") for f in folds.folds],
        },
    }


def heatmap_note(modalities: list[str], folds: Folds, images: dict[str, Path]) -> str | None:
    if any(k.startswith("heatmap") for k in images):
        return None
    if "pathology" not in modalities:
        return "the model does not use slides"
    if not folds.attention:
        return "the fold stores hold no patch attention (no patient with slide features?)"
    return "the slides of the highest/lowest-risk patients could not be read (see the log)"


def build_report(config: dict[str, Any], model: str, out_dir: Path) -> dict[str, Any]:
    """Compute one model's summary, draw its figures, write index.html + summary.json + oof.tsv."""
    from wsirisk.report import figures

    lay = Layout.from_config(config)
    n_folds = int(config.get("splits", {}).get("n_folds", 5))
    folds = load_folds([lay.fold_store(model, k) for k in range(n_folds)])
    evaluation = evaluate(folds)
    modalities = model_modalities(model, folds)
    oracle = None
    if config.get("demo", {}).get("enabled") and lay.demo_truth.exists():
        oracle = oracle_cindex(lay.demo_truth, lay.omics_store)
    encoder_name = config.get("features", {}).get("encoder")
    encoder = {"encoder": None, "weights": None, "weights_sha256": None, "random_init": False}
    if "pathology" in modalities and encoder_name:
        encoder = encoder_info(sorted((lay.cohort_dir / "features" / encoder_name).glob("*.zarr")))
        encoder["encoder"] = encoder["encoder"] or encoder_name
    report_cfg = config.get("report", {}) or {}
    ref = load_reference(report_cfg.get("reference_table"))
    paper = paper_row(
        ref,
        model,
        report_cfg.get("reference_cohort") or lay.cohort,
        encoder["encoder"],
        "pathology" in modalities,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    images, panels = figures.draw_all(config, lay, model, folds, evaluation, out_dir)
    summary = {
        "format": SUMMARY_FORMAT,
        "cohort": lay.cohort,
        "model": model,
        "modalities": modalities,
        "risk_scale": risk_scale(evaluation["risk_kind"], evaluation["n_bins"]),
        "encoder": encoder["encoder"],
        "encoder_weights": encoder["weights"],
        "encoder_weights_sha256": encoder["weights_sha256"],
        "encoder_random_init": encoder["random_init"],
        **evaluation,
        "best_epoch_val_cindex_selected_on_val": [_best(f.attrs) for f in folds.folds],
        "oracle_cindex": oracle,
        "paper": paper,
        "reference": ref.to_json(),
        "cohort_table": cohort_overview(lay),
        "warnings": modality_warnings(model, modalities, folds),
        "tsne_title": figures.tsne_title(model),
        "tsne_panels": [p.to_json() for p in panels],
        "fold_missing": [
            {k: len(v) for k, v in (f.attrs.get("missing") or {}).items()} for f in folds.folds
        ],
        "figures": {k: Path(v).name for k, v in images.items()},
    }
    summary["heatmap_note"] = heatmap_note(modalities, folds, images)
    qc = qc_tables(lay, folds)
    page = html.render(summary, config, images, qc, ref, package_versions())
    write_oof(out_dir / "oof.tsv", folds)
    write_json(out_dir / "summary.json", summary)
    write_text(out_dir / "index.html", page)
    return summary


SUMMARY_FORMAT = "wsirisk-model-report/1"


def _best(attrs: dict[str, Any]) -> float | None:
    best = attrs.get("best_epoch_val_cindex")
    return best.get("val_cindex") if isinstance(best, dict) else best


def write_oof(path: Path, folds: Folds) -> None:
    """Out-of-fold predictions, one row per patient (the numbers behind KM and the C-index)."""
    risk = folds.pooled("risk")
    high = survival.risk_groups(risk)
    lines = ["patient_id\tfold\trisk\tmonths\tcensorship\trisk_group"]
    for patient, fold, r, m, c, h in zip(
        folds.patients,
        folds.fold_of,
        risk,
        folds.pooled("months"),
        folds.pooled("censorship"),
        high,
        strict=True,
    ):
        lines.append(f"{patient}\t{fold}\t{r:.6g}\t{m:.6g}\t{c}\t{'high' if h else 'low'}")
    write_text(path, "\n".join(lines) + "\n")


def build_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config-json", required=True, help="the whole workflow config as JSON")
    parser.add_argument(
        "--model", default=None, help="model whose folds to report (default: train.model)"
    )
    parser.add_argument(
        "--out-dir", type=Path, default=None, help="default: results/<cohort>/report/<model>"
    )


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    config = json.loads(args.config_json)
    model = args.model or config["train"]["model"]
    out_dir = args.out_dir or Layout.from_config(config).model_report_dir(model)
    summary = build_report(config, model, out_dir)
    keys = ("model", "cindex_mean", "cindex_std", "cindex_pooled_oof", "cindex_pooled_ci95")
    print(json.dumps({k: summary[k] for k in (*keys, "oracle_cindex", "logrank_p")}))
    if summary["reference"]["status"] != "ok":
        log.warning("%s", summary["reference"]["note"])
    return 0
