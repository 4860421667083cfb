"""`wsirisk cohort-page`: every model reported so far on one cohort, side by side, each beside
the paper's Table 1 row for the same method, cohort and backbone.

    wsirisk cohort-page --config-json "$(cat config.json)" --out results/<cohort>/report/index.html

Reads every ``report/*/summary.json`` beside ``--out`` (models of earlier runs too, also those
not in this config), ``cohort/summary.json`` (counts, banner) and ``report.reference_table``;
writes ``--out``, ``models.json`` beside it and ``<results_dir>/index.html`` (one link per
cohort). Fold-paired comparisons against ME-Mamba use the two reports' per-fold C-indices when
both models were validated on the same folds.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from wsirisk.layout import Layout
from wsirisk.report import html
from wsirisk.report.build import SUMMARY_FORMAT, cohort_overview
from wsirisk.report.reference import BACKBONE_LABELS, Reference, load_reference, paper_row
from wsirisk.store import write_json, write_text
from wsirisk.training.compare import paired_fold_comparison

log = logging.getLogger("wsirisk.report")
REFERENCE_MODEL = "me_mamba"
C_COLUMN = "C-index mean ± std"


def find_summaries(report_dir: Path) -> dict[str, dict[str, Any]]:
    """model -> summary.json of every per-model report under ``report_dir``."""
    out = {}
    for path in sorted(Path(report_dir).glob("*/summary.json")):
        try:
            summary = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            log.warning("%s skipped: %s", path, err)
            continue
        if summary.get("format") != SUMMARY_FORMAT:
            log.warning("%s skipped: not a %s summary", path, SUMMARY_FORMAT)
            continue
        out[summary["model"]] = summary
    return out


def versus_reference(
    summary: dict[str, Any], reference: dict[str, Any] | None
) -> dict[str, Any] | None:
    """Fold-paired comparison of a model against ME-Mamba (None for ME-Mamba itself / absent)."""
    if reference is None or summary["model"] == reference["model"]:
        return None
    if summary["fold_val_patients_sha256"] != reference["fold_val_patients_sha256"]:
        return {
            "n_folds": 0,
            "mean_diff": None,
            "diffs": [],
            "wilcoxon_p": None,
            "ttest_p": None,
            "reason": "not paired: the two models were validated on different folds",
        }
    return paired_fold_comparison(summary["cindex_folds"], reference["cindex_folds"])


def model_entries(
    summaries: dict[str, dict[str, Any]], ref: Reference, cohort: str, config_models: list[str]
) -> list[dict[str, Any]]:
    """One models.json entry per report, ME-Mamba first, then this config's models, then the rest."""
    order = [REFERENCE_MODEL] + [m for m in config_models if m != REFERENCE_MODEL]
    names = sorted(summaries, key=lambda m: (order.index(m) if m in order else len(order), m))
    reference = summaries.get(REFERENCE_MODEL)
    entries = []
    for name in names:
        s = summaries[name]
        entries.append(
            {
                "model": name,
                "report": f"{name}/index.html",
                "in_config": name in config_models,
                "modalities": s["modalities"],
                "encoder": s["encoder"],
                "encoder_random_init": s["encoder_random_init"],
                "n_patients": s["n_patients"],
                "n_events": s["n_events"],
                "cindex_folds": s["cindex_folds"],
                "cindex_mean": s["cindex_mean"],
                "cindex_std": s["cindex_std"],
                "cindex_pooled_oof": s["cindex_pooled_oof"],
                "cindex_pooled_ci95": s["cindex_pooled_ci95"],
                "td_auc_mean": s["td_auc"]["mean"],
                "td_auc_std": s["td_auc"]["std"],
                "ibs_mean": s["ibs"]["mean"],
                "ibs_std": s["ibs"]["std"],
                "ibs_km_mean": s["ibs"]["km_reference"]["mean"],
                "logrank_p": s["logrank_p"],
                "flagged_folds": [f for f in s["fold_flags"] if f["flag"]],
                "risk_kind": s["risk_kind"],
                "vs_me_mamba": versus_reference(s, reference),
                "paper": paper_row(ref, name, cohort, s["encoder"], "pathology" in s["modalities"]),
            }
        )
    return entries


def _versus(entry: dict[str, Any]) -> str:
    vs = entry["vs_me_mamba"]
    if vs is None:
        return "reference" if entry["model"] == REFERENCE_MODEL else "no ME-Mamba report"
    if vs["mean_diff"] is None or vs["n_folds"] < 2:
        return vs["reason"] or "undefined"
    p_w, p_t = vs["wilcoxon_p"], vs["ttest_p"]
    return (
        f"{vs['mean_diff']:+.4f} over {vs['n_folds']} folds (Wilcoxon p "
        f"{html.fmt(p_w, 3)}; paired t p {html.fmt(p_t, 3)})"
    )


def _paper_label(paper: dict[str, Any], column: str) -> str:
    backbone = BACKBONE_LABELS.get(paper["backbone"], paper["backbone"] or "any backbone")
    return f"paper: {paper['method']} ({backbone}), {column}"


def render(
    cohort: str,
    entries: list[dict[str, Any]],
    ref: Reference,
    column: str,
    overview: dict[str, Any],
) -> str:
    header = [
        "model",
        "modalities",
        "encoder",
        "patients (events)",
        f"{C_COLUMN} ({column})",
        "pooled OOF C-index [bootstrap 95 % CI]",
        "td-AUC",
        "IBS (Kaplan–Meier reference)",
        "Δ C-index vs ME-Mamba (fold-paired)",
        "flags",
    ]
    rows, classes = [], []
    for entry in entries:
        low, high = entry["cindex_pooled_ci95"]
        flags = "; ".join(f"fold {f['fold']}: {f['text']}" for f in entry["flagged_folds"])
        encoder = entry["encoder"] or "—"
        if entry["encoder_random_init"]:
            encoder += " (random init)"
        rows.append(
            [
                f"ours: {entry['model']}" + ("" if entry["in_config"] else " (earlier run)"),
                "+".join(entry["modalities"]),
                encoder,
                f"{entry['n_patients']} ({entry['n_events']})",
                html.mean_std(entry["cindex_mean"], entry["cindex_std"]),
                f"{html.fmt(entry['cindex_pooled_oof'])} {html.ci(low, high)}",
                html.mean_std(entry["td_auc_mean"], entry["td_auc_std"]),
                html.mean_std(entry["ibs_mean"], entry["ibs_std"])
                + f" (KM {html.fmt(entry['ibs_km_mean'])})",
                _versus(entry),
                flags,
            ]
        )
        classes.append("ours")
        paper = entry["paper"]
        if paper["cindex_mean"] is not None:
            match = "" if paper["match"] == "exact" else f"{paper['match']}: {paper['note']}"
            rows.append(
                [
                    _paper_label(paper, column),
                    paper.get("modalities", ""),
                    BACKBONE_LABELS.get(paper["backbone"], paper["backbone"] or ""),
                    "",
                    html.mean_std(paper["cindex_mean"], paper["cindex_std"]),
                    "",
                    "",
                    "",
                    "",
                    match,
                ]
            )
            classes.append("paper")
        elif ref.status == "ok":
            rows.append(["paper: no matching row", "", "", "", "", "", "", "", "", paper["note"]])
            classes.append("paper")
    links = " · ".join(
        f"<a href='{html.e(entry['report'])}'>{html.e(entry['model'])}</a>" for entry in entries
    )
    parts = [
        html.banner(overview.get("banner")),
        f"<h1>Cohort {html.e(cohort)}: every model run so far</h1>",
        f"<p>Per-model reports: {links or '<em>none yet</em>'}</p>",
        html.reference_note(ref),
        html.table(header, rows, classes, "models-table"),
        "<p>C-index: Harrell's C on each validation fold (last epoch), mean ± std over folds; "
        "the paper's row for the same method, backbone and cohort sits in the same column. "
        "Pooled: all out-of-fold predictions at once, with a patient bootstrap interval. "
        "td-AUC and IBS: mean ± std over folds (each model's report says how). Δ vs ME-Mamba: "
        "per-fold differences on the same folds; with 5 folds the smallest two-sided Wilcoxon "
        "p is 0.0625.</p>",
        "<h2>Cohort</h2>" + html.cohort_overview(overview),
    ]
    return html.page(f"wsirisk: {cohort}", parts)


def build_cohort_page(config: dict[str, Any], out: Path) -> dict[str, Any]:
    lay = Layout.from_config(config)
    report_cfg = config.get("report", {}) or {}
    ref = load_reference(report_cfg.get("reference_table"))
    cohort = report_cfg.get("reference_cohort") or lay.cohort
    train = config.get("train", {}) or {}
    config_models = list(train.get("models") or [train.get("model")])
    summaries = find_summaries(out.parent)
    entries = model_entries(summaries, ref, cohort, [m for m in config_models if m])
    column = entries[0]["paper"]["cohort_column"] if entries else cohort
    overview = cohort_overview(lay)
    document = {
        "cohort": lay.cohort,
        "reference": ref.to_json(),
        "cohort_column": column,
        "banner": overview.get("banner"),
        "models": {e["model"]: e for e in entries},
    }
    write_json(out.parent / "models.json", document)
    write_text(out, render(lay.cohort, entries, ref, column, overview))
    write_text(lay.results_dir / "index.html", html.cohort_index(lay.results_dir))
    return document


def build_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config-json", required=True, help="the whole workflow config as JSON")
    parser.add_argument(
        "--out", type=Path, default=None, help="default: results/<cohort>/report/index.html"
    )


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    config = json.loads(args.config_json)
    out = args.out or Layout.from_config(config).report_html
    document = build_cohort_page(config, out)
    print(
        f"cohort page: {out} ({len(document['models'])} model(s): {', '.join(document['models'])})"
    )
    if document["reference"]["status"] != "ok":
        log.warning("%s", document["reference"]["note"])
    return 0
