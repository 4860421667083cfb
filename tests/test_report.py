"""`wsirisk report` per model and `wsirisk cohort-page` on synthetic fold stores of two models."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from lifelines.statistics import logrank_test
from lifelines.utils import concordance_index
from PIL import Image
from report_data import (
    ALL_CENSORED_FOLD,
    N_FOLDS,
    config,
    config_json,
    write_cohort_files,
    write_reference,
    write_run,
)

from wsirisk.cli import main
from wsirisk.store import open_group
from wsirisk.training.compare import paired_fold_comparison

BANNER = "Slides and omics do not match: 3 of 50 patients lack slides (allowed by config)"


class _Tables(HTMLParser):
    """Every <table id=...> of a page as rows of cell texts (first row = header)."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.classes: dict[str, list[str]] = {}
        self._id: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = dict(attrs)
        if tag == "table":
            self._id = attr.get("id") or f"table{len(self.tables)}"
            self.tables[self._id], self.classes[self._id] = [], []
        elif tag == "tr" and self._id:
            self.tables[self._id].append([])
            self.classes[self._id].append(attr.get("class") or "")
        elif tag in {"td", "th"} and self._id:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in {"td", "th"} and self._cell is not None and self._id:
            self.tables[self._id][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._id = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def tables(page: Path) -> _Tables:
    parser = _Tables()
    parser.feed(page.read_text())
    return parser


def _report(cfg: dict[str, Any], model: str) -> Path:
    out = Path(cfg["results_dir"]) / cfg["cohort"] / "report" / model
    argv = ["report", "--config-json", config_json(cfg), "--model", model, "--out-dir", str(out)]
    assert main(argv) == 0
    return out


def _cohort_page(cfg: dict[str, Any]) -> Path:
    out = Path(cfg["results_dir"]) / cfg["cohort"] / "report" / "index.html"
    assert main(["cohort-page", "--config-json", config_json(cfg), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("report")
    cfg = config(root, reference=str(write_reference(root)))
    lay = write_run(
        cfg, "me_mamba", ("fusion", "genomics", "pathology"), no_pathology=("TCGA-XX-0000",)
    )
    write_run(cfg, "snn", ("genomics",), reversed_folds=(0,), seed=2)
    write_cohort_files(lay, banner=BANNER)
    reports = {m: _report(cfg, m) for m in ("me_mamba", "snn")}
    page = _cohort_page(cfg)
    return {"cfg": cfg, "lay": lay, "reports": reports, "page": page}


def _summary(run: dict[str, Any], model: str) -> dict[str, Any]:
    return json.loads((run["reports"][model] / "summary.json").read_text())


def _fold_arrays(run: dict[str, Any], model: str) -> list[dict[str, np.ndarray]]:
    out = []
    for k in range(N_FOLDS):
        group = open_group(run["lay"].fold_store(model, k))
        out.append(
            {n: np.asarray(group[n][:]) for n in ("val_risk", "val_months", "val_censorship")}
        )
    return out


@pytest.mark.parametrize("model", ["me_mamba", "snn"])
def test_cindex_and_logrank_equal_lifelines_recomputed(run: dict[str, Any], model: str) -> None:
    summary = _summary(run, model)
    folds = _fold_arrays(run, model)
    for k, fold in enumerate(folds):
        if k == ALL_CENSORED_FOLD:
            assert summary["cindex_folds"][k] is None
            continue
        expected = concordance_index(
            fold["val_months"], -fold["val_risk"], event_observed=1 - fold["val_censorship"]
        )
        assert summary["cindex_folds"][k] == pytest.approx(expected)
    risk, months, cens = (np.concatenate([f[n] for f in folds]) for n in folds[0])
    pooled = concordance_index(months, -risk, event_observed=1 - cens)
    assert summary["cindex_pooled_oof"] == pytest.approx(pooled)
    low, high = summary["cindex_pooled_ci95"]
    assert low < pooled < high
    high_group = risk > np.median(risk)
    expected_p = logrank_test(
        months[high_group], months[~high_group], 1 - cens[high_group], 1 - cens[~high_group]
    ).p_value
    assert summary["logrank_p"] == pytest.approx(expected_p)
    page = (run["reports"][model] / "index.html").read_text()
    assert f"log-rank p = {expected_p:.3e}" in page
    oof = (run["reports"][model] / "oof.tsv").read_text().splitlines()
    assert len(oof) == 1 + risk.size


def test_folds_below_chance_and_undefined_are_flagged(run: dict[str, Any]) -> None:
    snn = _summary(run, "snn")
    flags = {f["fold"]: f for f in snn["fold_flags"]}
    assert snn["cindex_folds"][0] < 0.5 and flags[0]["flag"] == "below_chance"
    assert flags[ALL_CENSORED_FOLD]["flag"] == "undefined"
    assert "no events" in flags[ALL_CENSORED_FOLD]["text"]
    assert [k for k, f in flags.items() if f["flag"]] == [0, ALL_CENSORED_FOLD]
    t = tables(run["reports"]["snn"] / "index.html")
    rows = dict(
        zip([r[0] for r in t.tables["cindex-table"]], t.classes["cindex-table"], strict=True)
    )
    assert rows["fold 0"] == "flag" and rows[f"fold {ALL_CENSORED_FOLD}"] == "flag"
    assert rows["fold 2"] == ""
    page = (run["reports"]["snn"] / "index.html").read_text()
    assert "worse than chance" in page and "id='fold-flags'" in page
    models = json.loads((run["page"].parent / "models.json").read_text())
    assert [f["fold"] for f in models["models"]["snn"]["flagged_folds"]] == [0, ALL_CENSORED_FOLD]


def test_td_auc_ibs_and_risk_scale_in_summary_and_page(run: dict[str, Any]) -> None:
    summary = _summary(run, "me_mamba")
    assert summary["risk_kind"] == "discrete_time" and summary["n_bins"] == 4
    assert "[−4, 0]" in summary["risk_scale"]
    assert len(summary["td_auc"]["times_months"]) == 3
    defined = [f["mean_auc"] for f in summary["td_auc"]["folds"] if f["mean_auc"] is not None]
    assert len(defined) == N_FOLDS - 1 and 0.5 < summary["td_auc"]["mean"] <= 1
    undefined = summary["td_auc"]["folds"][ALL_CENSORED_FOLD]
    assert undefined["mean_auc"] is None and "no deaths" in undefined["reason"]
    assert 0 < summary["ibs"]["mean"] < 0.25
    page = (run["reports"]["me_mamba"] / "index.html").read_text()
    assert "id='risk-scale'" in page and "higher (closer to 0) = worse" in page
    td = tables(run["reports"]["me_mamba"] / "index.html").tables["td-auc-table"]
    assert td[-1][0] == "mean ± std" and td[-1][1].startswith(f"{summary['td_auc']['mean']:.4f}")


def test_tsne_is_drawn_per_fold_with_model_titles(run: dict[str, Any]) -> None:
    for model, names in (("me_mamba", {"fusion", "genomics", "pathology"}), ("snn", {"genomics"})):
        summary = _summary(run, model)
        panels = summary["tsne_panels"]
        assert {(p["fold"], p["embedding"]) for p in panels} == {
            (k, n) for k in range(N_FOLDS) for n in names
        }
        png = run["reports"][model] / summary["figures"]["tsne"]
        grouping = json.loads(Image.open(png).info["Description"])["tsne_panels"]
        for panel in grouping:  # every panel holds one fold's validation patients only
            val = set(open_group(run["lay"].fold_store(model, panel["fold"])).attrs["val_patients"])
            assert set(panel["patients"]) <= val and len(panel["patients"]) >= 5
    mm = _summary(run, "me_mamba")
    missing = [p for p in mm["tsne_panels"] if p["fold"] == 0 and p["embedding"] == "pathology"]
    assert missing[0]["n_patients"] == 9 and "without this embedding" in missing[0]["note"]
    assert "experts" in mm["tsne_title"]
    assert "expert" not in _summary(run, "snn")["tsne_title"]
    assert "expert" not in (run["reports"]["snn"] / "index.html").read_text().lower()


def test_modality_gap_cohort_counts_qc_and_banner_on_the_model_page(run: dict[str, Any]) -> None:
    page = (run["reports"]["me_mamba"] / "index.html").read_text()
    assert "id='cohort-banner'" in page and BANNER in page
    summary = _summary(run, "me_mamba")
    assert any("had no slide features" in w for w in summary["warnings"])
    counts = tables(run["reports"]["me_mamba"] / "index.html").tables["cohort-counts"]
    assert ["with slides and omics", "47"] in counts and ["dropped", "1"] in counts
    assert "no slide and no omics row" in page  # patients.tsv exclusions
    assert "sheets/x.tsv line 4: unsafe slide id" in page  # rejected sheet row from qc/slides
    assert "all omics NaN" in page and "imputed cells in qc/omics.tsv: 7" in page
    assert "No heatmap" in page and "no patch attention" in page


def test_cohort_page_lists_both_models_with_the_paper_value_in_our_column(
    run: dict[str, Any],
) -> None:
    assert (run["reports"]["me_mamba"] / "index.html").exists()
    assert (run["reports"]["snn"] / "index.html").exists()
    models = json.loads((run["page"].parent / "models.json").read_text())
    assert list(models["models"]) == ["me_mamba", "snn"]
    assert models["cohort_column"] == "BLCA" and models["reference"]["status"] == "ok"
    paper = models["models"]["me_mamba"]["paper"]
    assert (paper["method"], paper["backbone"], paper["cindex_mean"]) == (
        "ME-Mamba",
        "resnet50",
        0.6993,
    )
    assert models["models"]["snn"]["paper"]["cindex_mean"] == 0.6339
    t = tables(run["page"])
    header, *rows = t.tables["models-table"]
    column = header.index("C-index mean ± std (BLCA)")
    by_label = {r[0]: r for r in rows}
    ours = by_label["ours: me_mamba"]
    theirs = by_label["paper: ME-Mamba (ResNet-50), BLCA"]
    summary = _summary(run, "me_mamba")
    assert ours[column] == f"{summary['cindex_mean']:.4f} ± {summary['cindex_std']:.4f}"
    assert theirs[column] == "0.6993 ± 0.0270"
    assert by_label["paper: SNN (ResNet-50), BLCA"][column] == "0.6339 ± 0.0509"
    html = run["page"].read_text()
    assert "href='me_mamba/index.html'" in html and "href='snn/index.html'" in html
    assert BANNER in html
    assert "href='../index.html'" in (run["reports"]["snn"] / "index.html").read_text()
    # the per-model page: the paper's layout, our value in the BLCA column under the paper's row
    paper_rows = tables(run["reports"]["me_mamba"] / "index.html").tables["paper-table"]
    blca = paper_rows[0].index("BLCA")
    labels = [r[0] for r in paper_rows]
    ours_row = paper_rows[labels.index(next(lbl for lbl in labels if lbl.startswith("ours:")))]
    assert labels[labels.index(ours_row[0]) - 1] == "ME-Mamba (ResNet-50)"
    assert ours_row[blca] == ours[column] and len(paper_rows[0]) == 2 + 2  # BLCA, LUAD only


def test_paired_comparison_against_me_mamba(run: dict[str, Any]) -> None:
    models = json.loads((run["page"].parent / "models.json").read_text())
    vs = models["models"]["snn"]["vs_me_mamba"]
    expected = paired_fold_comparison(
        _summary(run, "snn")["cindex_folds"], _summary(run, "me_mamba")["cindex_folds"]
    )
    assert vs == expected  # JSON keeps floats exactly
    assert vs["n_folds"] == N_FOLDS - 1
    assert models["models"]["me_mamba"]["vs_me_mamba"] is None
    assert f"{vs['mean_diff']:+.4f} over 4 folds" in run["page"].read_text()


def test_missing_reference_is_a_visible_note_and_old_models_stay_listed(
    run: dict[str, Any], tmp_path: Path
) -> None:
    cfg = dict(run["cfg"], report={"reference_table": str(tmp_path / "nowhere.csv")})
    cfg["train"] = {"model": "snn"}  # me_mamba is not in this config: still listed
    out = tmp_path / "snn"
    argv = ["report", "--config-json", config_json(cfg), "--model", "snn", "--out-dir", str(out)]
    assert main(argv) == 0
    page = (out / "index.html").read_text()
    assert "id='reference-note'" in page and "nowhere.csv does not resolve" in page
    assert json.loads((out / "summary.json").read_text())["reference"]["status"] == "missing"
    cohort_page = tmp_path / "page" / "index.html"
    for model in ("me_mamba", "snn"):  # the reports of the earlier run, copied beside the page
        target = cohort_page.parent / model
        target.mkdir(parents=True)
        (target / "summary.json").write_text((run["reports"][model] / "summary.json").read_text())
    assert main(["cohort-page", "--config-json", config_json(cfg), "--out", str(cohort_page)]) == 0
    html = cohort_page.read_text()
    assert "id='reference-note'" in html and "ours: me_mamba (earlier run)" in html
    models = json.loads((cohort_page.parent / "models.json").read_text())
    assert models["reference"]["status"] == "missing"
    assert models["models"]["me_mamba"]["in_config"] is False


def test_no_banner_without_one(tmp_path: Path) -> None:
    cfg = config(tmp_path, reference=None)
    lay = write_run(cfg, "snn", ("genomics",))
    write_cohort_files(lay, banner=None)
    out = _report(cfg, "snn")
    page = (out / "index.html").read_text()
    assert "cohort-banner" not in page
    assert "report.reference_table is not set" in page
    assert re.search(r"with slides and omics</td><td>47", page)


def test_paper_table_gathers_cohorts_in_the_papers_layout(
    run: dict[str, Any], tmp_path: Path
) -> None:
    results = Path(run["cfg"]["results_dir"])
    luad = dict(run["cfg"], cohort="tcga_luad")
    write_run(luad, "snn", ("genomics",), seed=4)
    _report(luad, "snn")
    reference = run["cfg"]["report"]["reference_table"]
    md = tmp_path / "table.md"
    assert main(["paper-table", str(results), "--out", str(md), "--reference", reference]) == 0
    lines = [
        [cell.strip() for cell in line.split("|")[1:-1]]
        for line in md.read_text().splitlines()
        if line.startswith("|")
    ]
    header, rows = lines[0], lines[2:]
    assert header == ["method (backbone)", "modalities", "BLCA", "LUAD"]  # ResNet-50 block only
    labels = [r[0] for r in rows]
    ours = labels.index("**ours: me_mamba (resnet50_trunc)**")
    assert labels[ours - 1] == "ME-Mamba (ResNet-50)"
    assert "ME-Mamba (UNI)" not in labels
    mm = _summary(run, "me_mamba")
    assert rows[ours][2] == f"{mm['cindex_mean']:.4f} ± {mm['cindex_std']:.4f}"
    assert rows[ours][3] == "" and rows[ours - 1][2:] == ["0.6993 ± 0.0270", "0.7014 ± 0.0236"]
    snn = rows[labels.index("**ours: snn**")]
    luad_summary = json.loads((results / "tcga_luad/report/snn/summary.json").read_text())
    assert snn[3] == f"{luad_summary['cindex_mean']:.4f} ± {luad_summary['cindex_std']:.4f}"
    assert labels[labels.index("**ours: snn**") - 1] == "SNN (ResNet-50)"
    # cohort folders named one by one, CSV out, and a reference that does not resolve
    csv_out = tmp_path / "table.csv"
    argv = ["paper-table", str(results / "tcga_blca"), str(results / "tcga_luad")]
    assert main([*argv, "--out", str(csv_out), "--reference", reference]) == 0
    assert csv_out.read_text().splitlines()[0] == "source,method,modalities,BLCA,LUAD"
    assert "ours,ours: me_mamba (resnet50_trunc)," in csv_out.read_text()
    missing = tmp_path / "missing.md"
    assert main([*argv, "--out", str(missing), "--reference", str(tmp_path / "no.csv")]) == 0
    text = missing.read_text()
    assert "Paper's table not shown" in text and "**ours: me_mamba (resnet50_trunc)**" in text
    with pytest.raises(FileNotFoundError, match="neither a cohort folder"):
        main(["paper-table", str(tmp_path), "--out", str(md)])


def test_ibs_has_a_kaplan_meier_reference(run: dict[str, Any]) -> None:
    summary = _summary(run, "me_mamba")
    km = summary["ibs"]["km_reference"]
    assert len(km["folds"]) == N_FOLDS and 0.05 < km["mean"] < 0.3
    header = tables(run["reports"]["me_mamba"] / "index.html").tables["td-auc-table"][0]
    assert header[-1] == "IBS of Kaplan–Meier (no model)"
