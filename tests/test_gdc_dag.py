"""The raw-GDC route through the real DAG: `snakemake` from a config that names a GDC project.

The config and the command are read from README.md's "Reproduce the paper from raw TCGA"
section; only the endpoint changes (the fake GDC on 127.0.0.1 serving the fixture project of
``gdc_fixture``, real HTTP) and a second config file adds speed settings for ten patients.
No file is written by hand. The first run is interrupted (SIGINT to the process group, as
Ctrl-C does) while a throttled slide is downloading; the restart must finish with md5-verified
files, resuming the partial slide with a Range request and fetching no completed file again.
A third run must have nothing to do. Until the generic chain's commands exist (sheet, cohort,
cohort-page) the run stops after the assembly (`gdc` target) and the report test skips.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagrun
import pytest
import yaml
from fake_gdc import FakeGDC
from gdc_fixture import Project, build_project, expected_features, portal_sample_sheet

from wsirisk.cli import COMMANDS
from wsirisk.layout import Layout

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


def _chain_ready() -> bool:
    """Whether the generic chain's commands exist (sheet, cohort, cohort-page, omics QC merge)."""
    if not {"sheet", "cohort", "cohort-page"} <= set(COMMANDS):
        return False
    import argparse
    import importlib

    parser = argparse.ArgumentParser()
    importlib.import_module(COMMANDS["omics"][0]).build_parser(parser)
    return any("--upstream-qc" in action.option_strings for action in parser._actions)


FULL_DAG = _chain_ready()
FAST = {  # speed settings for the ten-patient fixture (not part of the README's config)
    "train": {"epochs": 2},
    "splits": {"n_folds": 3},
    "features": {"num_workers": 0, "batch_size": 16},
    "gdc": {"download": {"backoff_s": 0.05, "retries": 2}},
    # the fixture's tiny slides have small tissue islands (as the demo's)
    "slides": {"segmentation": {"min_tissue_area_level0": 262144, "min_hole_area_level0": 65536}},
}
THROTTLE_BPS = 40_000
KINDS = ("slides", "rna", "cnv", "mutations", "clinical")


def readme_route() -> tuple[dict, list[str]]:
    """The config and the command of README.md's raw-TCGA section."""
    text = (REPO / "README.md").read_text()
    section = text.split("## Reproduce the paper from raw TCGA", 1)[1].split("\n## ", 1)[0]
    config = yaml.safe_load(re.search(r"```yaml\n(.*?)```", section, re.S).group(1))
    command = re.search(r"```bash\n(.*?)```", section, re.S).group(1).strip()
    return config, shlex.split(command)


def _env() -> dict[str, str]:
    """dagrun's environment, with this checkout's src/ first (a worktree beside an install)."""
    out = dagrun.env()
    out["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), *filter(None, [out.get("PYTHONPATH")])])
    return out


def _command(readme_command: list[str], *targets: str) -> list[str]:
    """The README command, run as `python -m snakemake -s <repo>/Snakefile`, + fast.yaml."""
    assert readme_command[0] == "snakemake"
    args = list(readme_command[1:])
    at = args.index("--configfile")
    args.insert(at + 2, "fast.yaml")  # --configfile tcga_blca.yaml fast.yaml
    # targets first: --configfile takes every word after it
    return [sys.executable, "-m", "snakemake", *targets, "-s", str(REPO / "Snakefile"), *args]


def _user_dir(work: Path, config: dict) -> None:
    """The README's command runs in the checkout, beside config.yaml (the Snakefile's defaults,
    which --configfile files override): the same here, plus tcga_blca.yaml and fast.yaml."""
    shutil.copy(REPO / "config.yaml", work / "config.yaml")
    (work / "tcga_blca.yaml").write_text(yaml.safe_dump(config))
    (work / "fast.yaml").write_text(yaml.safe_dump(FAST))


@pytest.fixture(scope="module")
def project() -> Project:
    return build_project(slide_tiles=8)


@pytest.fixture(scope="module")
def run(project: Project, tmp_path_factory: pytest.TempPathFactory):
    """Interrupted first run, restart, then a third run; returns what the tests check."""
    work = tmp_path_factory.mktemp("gdc_dag")
    config, command = readme_route()
    throttled = project.named("TCGA-ZZ-A002-01Z-00-DX2")
    corrupt = project.named("TCGA-ZZ-A007-01Z")
    targets = () if FULL_DAG else ("gdc",)
    with FakeGDC(project.files) as gdc:
        gdc.always[corrupt.file_id] = ("corrupt",)  # md5 never matches: fails with its name
        gdc.add_fault(project.named("TCGA-ZZ-A005-01Z").file_id, "drop", 50_000)  # truncated
        gdc.add_fault(project.named("TCGA-ZZ-A001-01Z").file_id, "status", 500)  # 500, then ok
        gdc.add_fault(throttled.file_id, "throttle", THROTTLE_BPS)
        assert config["gdc"]["endpoint"] == "https://api.gdc.cancer.gov"
        config["gdc"]["endpoint"] = gdc.url  # the one change to the README's config
        _user_dir(work, config)
        cmd = _command(command, *targets)

        # a terminal's Ctrl-C reaches a process that handles SIGINT; a test run started in the
        # background (`pytest &`) ignores SIGINT, and children inherit an ignored signal across
        # exec: give the run a handled SIGINT (handlers are reset to the default at exec)
        inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            first = subprocess.Popen(
                cmd, cwd=work, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                start_new_session=True, text=True,
            )  # fmt: skip
        finally:
            signal.signal(signal.SIGINT, inherited)
        deadline = time.monotonic() + 600
        while gdc.sent_bytes[throttled.file_id] < 3 * 4096 and first.poll() is None:
            assert time.monotonic() < deadline, "the throttled slide never started"
            time.sleep(0.1)
        os.killpg(first.pid, signal.SIGINT)  # Ctrl-C in the terminal
        try:
            first_out = first.communicate(timeout=180)[0]
        except subprocess.TimeoutExpired:
            os.killpg(first.pid, signal.SIGKILL)
            first_out = first.communicate()[0]
            subprocess.run([*cmd, "--unlock"], cwd=work, env=_env(), check=True)
        layout = Layout(work / "results", work / "data", config["cohort"])
        files_dir = layout.gdc_files_dir("slides")
        partial = files_dir / f"{throttled.file_name}.partial"
        state = {
            "partial_bytes": partial.stat().st_size if partial.exists() else -1,
            "complete": {
                f.file_id
                for f in project.files
                for kind in ("slides", "rna", "cnv", "mutations", "clinical")
                if (layout.gdc_files_dir(kind) / f.file_name).is_file()
            },
            "requests": len(gdc.data_requests),
            "sent": dict(gdc.sent_bytes),
            "first_out": first_out,
        }

        second = subprocess.run(
            cmd, cwd=work, env=_env(), capture_output=True, text=True, timeout=1800
        )
        state["second"] = second
        state["after_second"] = list(gdc.data_requests[state["requests"] :])
        state["sent_second"] = dict(gdc.sent_bytes)
        files_before = len(gdc.files_requests)
        third = subprocess.run(
            cmd, cwd=work, env=_env(), capture_output=True, text=True, timeout=600
        )
        state["third"] = third
        state["third_requests"] = (
            len(gdc.files_requests) - files_before,
            len(gdc.data_requests) - state["requests"] - len(state["after_second"]),
        )
    state.update(work=work, layout=layout, throttled=throttled, corrupt=corrupt)
    return state


def _ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]


def test_interrupted_download_resumes_and_nothing_is_fetched_twice(
    project: Project, run: dict
) -> None:
    _ok(run["second"])
    throttled = run["throttled"]
    have = run["partial_bytes"]
    assert 0 < have < len(throttled.data), run["first_out"][-3000:]
    # the restart asked for the rest of the partial slide and got exactly that
    assert [r for f, r in run["after_second"] if f == throttled.file_id] == [f"bytes={have}-"]
    served_again = run["sent_second"][throttled.file_id] - run["sent"][throttled.file_id]
    assert served_again == len(throttled.data) - have
    # files complete before the interruption were not requested again
    again = {f for f, _ in run["after_second"]}
    assert not again & run["complete"], again & run["complete"]
    # every file but the corrupt one is verified under its GDC name
    layout: Layout = run["layout"]
    for f in project.files:
        found = [
            layout.gdc_files_dir(k) / f.file_name
            for k in ("slides", "rna", "cnv", "mutations", "clinical")
            if (layout.gdc_files_dir(k) / f.file_name).is_file()
        ]
        if f.file_id == run["corrupt"].file_id or "ascat2" in f.file_name:
            assert not found
            continue
        assert len(found) == 1, f.file_name
        assert hashlib.md5(found[0].read_bytes()).hexdigest() == f.hit()["md5sum"]
        assert not Path(f"{found[0]}.partial").exists()


def test_assembly_outputs_and_qc(run: dict) -> None:
    _ok(run["second"])
    layout: Layout = run["layout"]
    import pandas as pd

    table = pd.read_csv(layout.gdc_omics_table)
    got = {
        m: sorted(c.removesuffix("_" + m) for c in table.columns if c.endswith("_" + m))
        for m in ("rnaseq", "cnv", "mut")
    }
    assert got == expected_features()
    qc = pd.read_csv(layout.qc_assembly, sep="\t", keep_default_na=False)
    failed = qc[qc.reason == "download_failed"]
    assert failed.detail.str.contains(run["corrupt"].file_name).all() and len(failed) == 1
    sheet = pd.read_csv(layout.gdc_sample_sheet, sep="\t")
    assert len(sheet) == 10 and all((run["work"] / p).is_file() for p in sheet.path)
    # the features per category are printed by the run, not only stored
    assert "Tumor Suppressor Genes" in run["second"].stdout + run["second"].stderr


@pytest.mark.skipif(
    not FULL_DAG, reason="the generic chain (sheet, cohort, cohort-page) is not here yet"
)
def test_whole_dag_reaches_the_report(run: dict) -> None:
    _ok(run["second"])
    layout: Layout = run["layout"]
    assert layout.report_html.is_file()
    assert "TCGA-ZZ-A001" in (run["work"] / layout.cohort_table).read_text()


def test_third_run_has_nothing_to_do(run: dict) -> None:
    _ok(run["third"])
    assert "Nothing to be done" in run["third"].stdout + run["third"].stderr
    assert run["third_requests"] == (0, 0)  # no query, no download


def test_offline_with_the_users_manifests_and_files(
    project: Project, run: dict, tmp_path: Path
) -> None:
    """No GDC reachable: manifests + portal sample sheets + files already in place + a local
    CDR give the same assembly; only the file that is not there fails (a QC row)."""
    import pandas as pd

    _ok(run["second"])
    online: Layout = run["layout"]
    layout = Layout(tmp_path / "results", tmp_path / "data", online.cohort)
    by_id = {f.file_id: f for f in project.files}
    manifests, sheets = {}, {}
    for kind in KINDS:
        lines = online.gdc_manifest(kind).read_text().splitlines()
        lines = [lines[0]] + [line for line in lines[1:] if "TCGA-CDR" not in line]
        manifests[kind] = f"{kind}_manifest.txt"
        (tmp_path / manifests[kind]).write_text("\n".join(lines) + "\n")
        files = [by_id[line.split("\t")[0]] for line in lines[1:]]
        sheets[kind] = f"{kind}_sample_sheet.tsv"
        (tmp_path / sheets[kind]).write_text(portal_sample_sheet(files))
        shutil.copytree(online.gdc_files_dir(kind), layout.gdc_files_dir(kind))
    (tmp_path / "cdr.xlsx").write_bytes(project.by_name["TCGA-CDR-SupplementalTableS1.xlsx"].data)
    config, command = readme_route()
    config["gdc"].update(
        endpoint="http://127.0.0.1:9",  # nothing listens there
        manifests=manifests,
        sample_sheets=sheets,
        cdr_file="cdr.xlsx",
    )
    _user_dir(tmp_path, config)
    done = subprocess.run(
        _command(command, "gdc"), cwd=tmp_path, env=_env(), capture_output=True, text=True,
        timeout=900,
    )  # fmt: skip
    _ok(done)
    assert "FAILED " + run["corrupt"].file_name in done.stderr  # named on the console
    pd.testing.assert_frame_equal(
        pd.read_csv(layout.gdc_omics_table), pd.read_csv(online.gdc_omics_table)
    )
    sheet = pd.read_csv(layout.gdc_sample_sheet, sep="\t")
    assert (
        sheet.slide_id.tolist() == pd.read_csv(online.gdc_sample_sheet, sep="\t").slide_id.tolist()
    )
    log = pd.read_csv(layout.gdc_download_log("rna"), sep="\t", keep_default_na=False)
    assert set(log.status) == {"present"}  # verified, nothing fetched
