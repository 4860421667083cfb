"""HTML of one model's report (self-contained: figures are embedded as data URIs)."""

from __future__ import annotations

import base64
import html as _html
from pathlib import Path
from typing import Any

from wsirisk.report.reference import BACKBONE_LABELS, Reference

STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1150px;color:#222}
table{border-collapse:collapse;margin:0.6em 0}td,th{border:1px solid #ccc;padding:3px 8px;
font-size:0.9em;text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
tr.ours td{background:#fff6d6;font-weight:bold}tr.paper td{background:#eef4ff}
tr.flag td{background:#ffe3e3}.warn{background:#ffe3e3;padding:0.6em;border:1px solid #d99}
.banner{background:#c62828;color:#fff;padding:0.8em;font-weight:bold;font-size:1.1em}
.note{background:#fff3cd;padding:0.6em;border:1px solid #e0c36a}
pre{background:#f7f7f7;padding:0.8em;overflow:auto;font-size:0.85em}img{max-width:100%}
"""
MAX_ROWS = 200


def e(value: Any) -> str:
    return _html.escape(str(value))


def fmt(value: float | None, digits: int = 4) -> str:
    return "undefined" if value is None else f"{value:.{digits}f}"


def mean_std(mean: float | None, std: float | None, digits: int = 4) -> str:
    return "undefined" if mean is None else f"{mean:.{digits}f} ± {fmt(std, digits)}"


def ci(low: float | None, high: float | None) -> str:
    return "undefined" if low is None or high is None else f"[{low:.4f}, {high:.4f}]"


def img(path: Path | None, alt: str) -> str:
    if path is None or not Path(path).exists():
        return f"<p><em>{e(alt)}: not available</em></p>"
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img alt="{e(alt)}" src="data:image/png;base64,{data}">'


def table(
    header: list[str], rows: list[list[Any]], classes: list[str] | None = None, tid: str = ""
) -> str:
    head = "".join(f"<th>{e(h)}</th>" for h in header)
    body = []
    for index, row in enumerate(rows):
        cls = f' class="{classes[index]}"' if classes and classes[index] else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>")
    ident = f' id="{e(tid)}"' if tid else ""
    return f"<table{ident}><tr>{head}</tr>{''.join(body)}</table>"


def tsv_table(rows: list[dict[str, str]], columns: list[str] | None = None) -> str:
    """Rows of a TSV (the first MAX_ROWS), every column unless ``columns`` is given."""
    if not rows:
        return "<p><em>no rows</em></p>"
    columns = columns or list(rows[0])
    shown = [[r.get(c, "") for c in columns] for r in rows[:MAX_ROWS]]
    more = f"<p>… {len(rows) - MAX_ROWS} more rows in the file</p>" if len(rows) > MAX_ROWS else ""
    return table(columns, shown) + more


def page(title: str, body: list[str]) -> str:
    return "\n".join(
        [
            f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title>"
            f"<style>{STYLE}</style></head><body>",
            *body,
            "</body></html>",
        ]
    )


def banner(text: str | None) -> str:
    return f"<div class='banner' id='cohort-banner'>{e(text)}</div>" if text else ""


def reference_note(reference: Reference) -> str:
    """The visible note when the paper's table cannot be shown."""
    if reference.status == "ok":
        return ""
    return f"<p class='note' id='reference-note'><b>Paper's table not shown</b>: {e(reference.note)}</p>"


def cohort_overview(overview: dict[str, Any]) -> str:
    """Counts of the cohort table (patients with both / slides only / omics only / dropped)."""
    summary = overview.get("summary")
    if summary is None:
        return (
            f"<p class='note'>No cohort table ({e(overview['summary_path'])} not found): "
            "counts of patients per modality are not available.</p>"
        )
    rows = [[label, value] for label, value in overview["counts"]]
    parts = [table(["patients", "count"], rows, tid="cohort-counts")]
    excluded = overview.get("excluded", [])
    if excluded:
        parts.append(f"<p>{len(excluded)} patient(s) not used by every model, with the reason:</p>")
        parts.append(tsv_table(excluded))
    return "\n".join(parts)


def qc_section(slides: list[dict[str, str]], omics: list[dict[str, str]], imputed: dict) -> str:
    parts = ["<h2>Quality control</h2>", "<h3>Slides (qc/slides.tsv)</h3>"]
    if slides:
        statuses: dict[str, int] = {}
        for row in slides:
            statuses[row.get("status", "?")] = statuses.get(row.get("status", "?"), 0) + 1
        parts.append("<p>" + ", ".join(f"{e(k)}: {v}" for k, v in statuses.items()) + "</p>")
        bad = [r for r in slides if r.get("status") != "ok"]
        if bad:
            parts.append("<p>Slides not used (incl. rejected sample-sheet rows):</p>")
            parts.append(tsv_table(bad))
    else:
        parts.append("<p><em>no slide QC table</em></p>")
    parts.append("<h3>Omics (qc/omics.tsv)</h3>")
    total = imputed.get("qc_total")
    folds = imputed.get("folds", [])
    text = []
    if total is not None:
        text.append(f"imputed cells in qc/omics.tsv: {total}")
    if folds:
        text.append(
            "NaN cells imputed with the training fold's means, per fold: "
            + ", ".join(f"fold {k}: {n}" for k, n in enumerate(folds))
        )
    if text:
        parts.append("<p>" + "; ".join(e(t) for t in text) + "</p>")
    parts.append(tsv_table(omics) if omics else "<p><em>no omics QC rows</em></p>")
    return "\n".join(parts)


def paper_table(summary: dict[str, Any], reference: Reference) -> str:
    """The paper's Table 1 layout (method x cohort) with our row in our cohort's column, right
    under the paper's row for the same method and backbone."""
    paper = summary["paper"]
    column = paper["cohort_column"]
    cohorts = reference.cohorts + ([column] if column not in reference.cohorts else [])
    methods: dict[tuple[str, str], dict[str, str]] = {}
    for row in reference.rows:
        key = (row["model"], row["backbone"])
        methods.setdefault(key, {"modalities": row["modalities"]})
        methods[key][row["cohort"]] = mean_std(float(row["cindex_mean"]), float(row["cindex_std"]))
    weights = "random init" if summary["encoder_random_init"] else summary["encoder_weights"]
    encoder = summary["encoder"] or "no slides"
    label = f"ours: {summary['model']} ({encoder}{', ' + str(weights) if weights else ''})"
    ours = [label, "+".join(summary["modalities"])] + [
        mean_std(summary["cindex_mean"], summary["cindex_std"]) if c == column else ""
        for c in cohorts
    ]
    rows, classes = [], []
    matched = (paper["method"], paper["backbone"]) if paper["match"] != "none" else None
    for (method, backbone), cells in methods.items():
        rows.append(
            [f"{method} ({BACKBONE_LABELS.get(backbone, backbone)})", cells["modalities"]]
            + [cells.get(c, "") for c in cohorts]
        )
        classes.append("paper" if (method, backbone) == matched else "")
        if (method, backbone) == matched:
            rows.append(ours)
            classes.append("ours")
    if matched is None:
        rows.append(ours)
        classes.append("ours")
    parts = [table(["method (backbone)", "modalities"] + cohorts, rows, classes, "paper-table")]
    if column not in reference.cohorts:
        parts.append(
            f"<p class='note'>Cohort {e(summary['cohort'])} matches no cohort column of the "
            f"paper's table ({', '.join(e(c) for c in reference.cohorts)}); set "
            "report.reference_cohort to name it.</p>"
        )
    if paper["match"] == "none":
        parts.append(f"<p class='note'>No paper row for this model: {e(paper['note'])}</p>")
    elif paper["match"] != "exact":
        parts.append(f"<p class='note'>Closest paper method: {e(paper['note'])}</p>")
    return "\n".join(parts)


def render(
    summary: dict[str, Any],
    config: dict[str, Any],
    images: dict[str, Path],
    qc: dict[str, Any],
    reference: Reference,
    versions: dict[str, str],
) -> str:
    """The page of one model."""
    import yaml

    model, cohort = summary["model"], summary["cohort"]
    cohort_info = summary["cohort_table"]
    parts = [
        "<p><a href='../index.html'>← all models of this cohort</a></p>",
        banner(cohort_info.get("banner")),
        f"<h1>Survival report — {e(model)} on cohort {e(cohort)}</h1>",
        f"<p>model <b>{e(model)}</b> (modalities: {e(', '.join(summary['modalities']))}); "
        + (
            f"encoder <b>{e(summary['encoder'])}</b>; weights <b>{e(summary['encoder_weights'])}</b>"
            if summary["encoder"]
            else "no slide encoder (the model does not use slides)"
        )
        + "</p>",
    ]
    if summary["encoder_random_init"]:
        parts.append(
            "<p class='warn'><b>Random-init encoder</b>: patch features come from a randomly "
            "initialised encoder (weights: random), not pretrained weights.</p>"
        )
    if config.get("demo", {}).get("enabled"):
        parts.append(
            "<p class='warn'>Synthetic demo cohort (generated by the pipeline): numbers say "
            "the pipeline learns a planted signal, not anything about patients.</p>"
        )
    for warning in summary["warnings"]:
        parts.append(f"<p class='warn'>{e(warning)}</p>")
    parts.append(reference_note(reference))
    parts.append("<h2>Cohort</h2>" + cohort_overview(cohort_info))
    parts.append(f"<h2>Risk score</h2><p id='risk-scale'>{e(summary['risk_scale'])}</p>")
    parts.append(cindex_section(summary))
    parts.append(td_auc_ibs_section(summary))
    parts.append("<h2>Beside the paper (ME-Mamba Table 1)</h2>")
    parts.append(
        paper_table(summary, reference)
        if reference.status == "ok"
        else "<p><em>not shown: see the note at the top of the page</em></p>"
    )
    parts.append("<h2>Kaplan–Meier: out-of-fold risk groups</h2>")
    p_value = summary["logrank_p"]
    groups = summary["risk_groups"]
    parts.append(
        f"<p id='logrank'>log-rank p = {'undefined' if p_value is None else f'{p_value:.3e}'} "
        f"(lifelines; {groups['n_high']} high-risk vs {groups['n_low']} low-risk patients, "
        f"split at the {e(groups['split'])})</p>"
    )
    parts.append(img(images.get("km"), "Kaplan-Meier"))
    parts.append("<h2>Learning curves</h2>" + img(images.get("learning"), "learning curves"))
    parts.append("<h2>Attention heatmaps (highest and lowest risk)</h2>")
    if any(k.startswith("heatmap") for k in images):
        for tag in ("highest", "lowest"):
            parts.append(img(images.get(f"heatmap_{tag}"), f"heatmap {tag}"))
            parts.append(img(images.get(f"tiles_{tag}"), f"top tiles {tag}"))
    else:
        parts.append(f"<p class='note'>No heatmap: {e(summary['heatmap_note'])}</p>")
    parts.append(f"<h2>{e(summary['tsne_title'])}</h2>")
    if "tsne" in images:
        parts.append(
            "<p>One projection per fold: each fold is a separate model, so points of different "
            "folds are not comparable; colours split each fold's patients at its median risk."
            "</p>" + img(images["tsne"], "t-SNE")
        )
    notes = [p for p in summary["tsne_panels"] if p["note"]]
    if notes:
        parts.append(
            "<ul>"
            + "".join(
                f"<li>fold {p['fold']}, {e(p['embedding'])}: {e(p['note'])}</li>" for p in notes
            )
            + "</ul>"
        )
    if not summary["tsne_panels"]:
        parts.append("<p><em>no embeddings in the fold stores</em></p>")
    parts.append(qc_section(qc["slides"], qc["omics"], qc["imputed"]))
    parts.append(
        "<h2>Configuration</h2><pre>" + e(yaml.safe_dump(config, sort_keys=True)) + "</pre>"
    )
    parts.append(
        "<h2>Package versions</h2>"
        + table(["package", "version"], sorted([[k, v] for k, v in versions.items()]))
    )
    return page(f"wsirisk: {cohort} / {model}", parts)


def cindex_section(summary: dict[str, Any]) -> str:
    rows, classes = [], []
    for flag, best in zip(
        summary["fold_flags"], summary["best_epoch_val_cindex_selected_on_val"], strict=True
    ):
        rows.append([f"fold {flag['fold']}", fmt(flag["cindex"]), flag["text"] or "", fmt(best)])
        classes.append("flag" if flag["flag"] else "")
    rows.append(["mean ± std", mean_std(summary["cindex_mean"], summary["cindex_std"]), "", ""])
    low, high = summary["cindex_pooled_ci95"]
    rows.append(
        [
            "pooled out-of-fold [bootstrap 95 % CI]",
            f"{fmt(summary['cindex_pooled_oof'])} {ci(low, high)}",
            summary["cindex_pooled_reason"] or "",
            "",
        ]
    )
    classes += ["", ""]
    if summary["oracle_cindex"] is not None:
        rows.append(["oracle (true risk)", fmt(summary["oracle_cindex"]), "", ""])
        classes.append("")
    flagged = [f for f in summary["fold_flags"] if f["flag"]]
    warn = ""
    if flagged:
        warn = (
            "<p class='warn' id='fold-flags'>"
            + "; ".join(f"fold {f['fold']}: {e(f['text'])}" for f in flagged)
            + "</p>"
        )
    boot = summary["bootstrap"]
    return (
        "<h2>C-index (validation folds, last epoch)</h2>"
        + warn
        + table(
            ["", "C-index", "note", "best epoch (selected on validation: optimistic)"],
            rows,
            classes,
            "cindex-table",
        )
        + "<p>Harrell's C (lifelines); censorship 1 = censored; higher risk = shorter survival. "
        f"{summary['n_patients']} patients, {summary['n_events']} events. The interval resamples "
        f"patients ({boot['n_boot']} bootstrap draws, seed {boot['seed']}, percentile).</p>"
    )


def td_auc_ibs_section(summary: dict[str, Any]) -> str:
    auc, ibs = summary["td_auc"], summary["ibs"]
    km = ibs["km_reference"]
    rows = []
    for a, b, k in zip(auc["folds"], ibs["folds"], km["folds"], strict=True):
        rows.append(
            [
                f"fold {a['fold']}",
                fmt(a["mean_auc"]) if a["mean_auc"] is not None else a["reason"],
                ", ".join(f"{t:.1f}: {v:.3f}" for t, v in zip(a["times"], a["auc"], strict=True)),
                fmt(b["ibs"]) if b["ibs"] is not None else b["reason"],
                fmt(k["ibs"]) if k["ibs"] is not None else k["reason"],
            ]
        )
    rows.append(
        [
            "mean ± std",
            mean_std(auc["mean"], auc["std"]),
            "",
            mean_std(ibs["mean"], ibs["std"]),
            mean_std(km["mean"], km["std"]),
        ]
    )
    times = ", ".join(f"{t:.1f}" for t in auc["times_months"])
    ibs_times = ibs["times_months"]
    span = f"{ibs_times[0]:.1f}–{ibs_times[-1]:.1f}" if ibs_times else "none"
    return (
        "<h2>Time-dependent AUC and integrated Brier score</h2>"
        + table(
            [
                "",
                "td-AUC (mean over times)",
                "AUC(t) by month t",
                "IBS (lower = better)",
                "IBS of Kaplan–Meier (no model)",
            ],
            rows,
            tid="td-auc-table",
        )
        + f"<p>td-AUC: {e(auc['definition'])} (times {times} months; a time outside a fold's "
        f"follow-up is left out for that fold).<br>IBS: {e(ibs['definition'])} ({span} "
        f"months). {e(km['definition'])}: a model above it predicts survival worse than no "
        "model (discrete-time models trained with the NLL are often optimistic).</p>"
    )


def cohort_index(results_dir: Path) -> str:
    """results/index.html: one link per cohort page found under ``results_dir``."""
    links = []
    for cohort_page in sorted(Path(results_dir).glob("*/report/index.html")):
        cohort = cohort_page.parent.parent.name
        links.append(f"<li><a href='{e(cohort)}/report/index.html'>{e(cohort)}</a></li>")
    return page("wsirisk cohorts", ["<h1>wsirisk cohorts</h1>", f"<ul>{''.join(links)}</ul>"])
