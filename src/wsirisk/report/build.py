"""`wsirisk report`: gather the folds of one cohort into summary.json and an HTML page."""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from wsirisk import layout
from wsirisk.layout import Layout
from wsirisk.report import html, survival
from wsirisk.store import open_group, write_json, write_text

log = logging.getLogger("wsirisk.report")


@dataclass
class Folds:
    """Out-of-fold predictions pooled over the folds of one model."""

    cindex: list[float | None] = field(default_factory=list)
    reasons: list[str | None] = field(default_factory=list)
    histories: list[list[dict]] = field(default_factory=list)
    patients: list[str] = field(default_factory=list)
    risk: list[float] = field(default_factory=list)
    months: list[float] = field(default_factory=list)
    censorship: list[int] = field(default_factory=list)
    attention: dict[str, np.ndarray] = field(default_factory=dict)  # slide_id -> (N,)
    embeddings: dict[str, list[np.ndarray]] = field(default_factory=dict)  # expert -> rows
    best_val: list[float | None] = field(default_factory=list)


def load_folds(paths: list[Path]) -> Folds:
    """Read every fold store (layout: train/<model>/fold<k>.zarr)."""
    folds = Folds()
    for path in paths:
        group = open_group(path)
        attrs = dict(group.attrs)
        folds.cindex.append(attrs.get("cindex"))
        folds.reasons.append(attrs.get("cindex_reason"))
        folds.histories.append(list(attrs.get("history", [])))
        best = attrs.get("best_epoch_val_cindex")
        folds.best_val.append(best.get("val_cindex") if isinstance(best, dict) else best)
        patients = list(attrs["val_patients"])
        folds.patients += patients
        folds.risk += [float(v) for v in group[layout.FOLD_VAL_RISK][:]]
        folds.months += [float(v) for v in group["val_months"][:]]
        folds.censorship += [int(v) for v in group["val_censorship"][:]]
        if "attention" in group:
            for name, array in group["attention"].arrays():
                folds.attention[name] = np.asarray(array[:], dtype=float)
        if "embeddings" in group:
            for name, array in group["embeddings"].arrays():
                folds.embeddings.setdefault(name, []).append(np.asarray(array[:], dtype=float))
    return folds


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


def build_report(config: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    """Compute the summary, draw the figures and write index.html + summary.json."""
    from wsirisk.report import figures
    from wsirisk.training.metrics import mean_std

    lay = Layout.from_config(config)
    model = config["train"]["model"]
    n_folds = int(config["splits"]["n_folds"])
    folds = load_folds([lay.fold_store(model, k) for k in range(n_folds)])
    months = np.asarray(folds.months)
    censorship = np.asarray(folds.censorship)
    risk = np.asarray(folds.risk)
    high = survival.risk_groups(risk)
    p_value = survival.logrank_p(months, censorship, high)
    mean, std = mean_std(folds.cindex)
    oracle = None
    if config["demo"]["enabled"] and lay.demo_truth.exists():
        oracle = oracle_cindex(lay.demo_truth, lay.omics_store)
    feature_stores = sorted(
        (lay.cohort_dir / "features" / config["features"]["encoder"]).glob("*.zarr")
    )
    encoder = (
        encoder_info(feature_stores)
        if model != "snn"
        else {"encoder": None, "weights": None, "weights_sha256": None, "random_init": False}
    )
    summary = {
        "cohort": lay.cohort,
        "model": model,
        "encoder": encoder["encoder"],
        "encoder_weights": encoder["weights"],
        "encoder_weights_sha256": encoder["weights_sha256"],
        "encoder_random_init": encoder["random_init"],
        "cindex_folds": folds.cindex,
        "cindex_undefined_reasons": folds.reasons,
        "cindex_mean": mean,
        "cindex_std": std,
        "cindex_pooled_oof": concordance(months, censorship, risk),
        "best_epoch_val_cindex_selected_on_val": folds.best_val,
        "oracle_cindex": oracle,
        "logrank_p": p_value,
        "n_patients": int(months.size),
        "n_events": int((1 - censorship).sum()),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    images = figures.draw_all(config, lay, folds, months, censorship, risk, high, p_value, out_dir)
    qc_rows = _read_tsv(lay.qc_slides)
    reference = _reference_rows(config)
    page = html.render(summary, config, images, qc_rows, reference, package_versions())
    write_json(out_dir / "summary.json", summary)
    write_text(out_dir / "index.html", page)
    write_text(lay.results_dir / "index.html", html.cohort_index(lay.results_dir))
    return summary


def _read_tsv(path: Path) -> list[dict[str, str]]:
    import csv

    if not path.exists():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def _reference_rows(config: dict[str, Any]) -> list[dict[str, str]]:
    import csv

    path = config.get("report", {}).get("reference_table")
    if not path:
        return []
    if not Path(path).exists():
        log.warning("report.reference_table %s not found: no paper numbers shown", path)
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def build_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config-json", required=True, help="the whole workflow config as JSON")
    parser.add_argument("--out-dir", type=Path, required=True)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    config = json.loads(args.config_json)
    summary = build_report(config, args.out_dir)
    print(
        json.dumps(
            {
                k: summary[k]
                for k in ("cindex_mean", "cindex_std", "oracle_cindex", "logrank_p", "model")
            }
        )
    )
    return 0
