"""profiles/slurm on a real SLURM cluster: slurmctld + slurmd (+ munge) on loopback.

`tests/slurm/cluster.sh` starts a single-node cluster in a temporary directory (Debian's
`slurmctld slurmd slurm-client munge`; `tests/slurm/cluster.sh install` installs them). The node
looks like a 4-GPU node (32 CPUs, 128000 MB, fake GPUs), accounting is off (no slurmdbd), so the
profile's squeue status path is the one exercised. A tiny demo cohort then runs through
`snakemake --profile profiles/slurm` to the report; every sbatch call is recorded (a wrapper in
front of the real sbatch) and checked: extraction asks for one GPU, no group job sums its
members, every request the profile made passes `sbatch --test-only`, the old summed group request
does not. A second run submits nothing. Last, a CPU-only cluster (no GPU gres) runs an extract
job with `compute.gpus_per_job: 0`.

Skips (with the reason) when the SLURM binaries, root or the executor plugin are missing.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CLUSTER_SH = REPO / "tests" / "slurm" / "cluster.sh"
PROFILE = REPO / "profiles" / "slurm"
pytestmark = pytest.mark.slow

NODE = {"cpus": 32, "mem_mb": 128000, "gpus": 4}  # the test cluster's one node
SLURM_TOOLS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scontrol", "srun")
# Removed from every recorded sbatch call before `--test-only`: names, logs, the command.
_PER_JOB = ("--job-name", "--output", "--comment", "-D")


def _which(tool: str) -> str | None:
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    return shutil.which(tool, path=path)


def _plugin_missing() -> str | None:
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        return "snakemake-executor-plugin-slurm not installed: pip install -e '.[slurm]'"
    return None


def _cluster_missing() -> str | None:
    missing = [tool for tool in SLURM_TOOLS if _which(tool) is None]
    if missing:
        return f"SLURM not installed ({', '.join(missing)} missing): tests/slurm/cluster.sh install"
    if os.geteuid() != 0:
        return "the test cluster needs root (slurmd switches to the job's user)"
    return _plugin_missing()


def _no_conda_path() -> str:
    """PATH with the venv's bin first and every directory holding conda/mamba left out."""
    dirs = [str(Path(sys.executable).parent)]
    for entry in os.environ.get("PATH", "").split(os.pathsep) + ["/usr/sbin", "/sbin"]:
        if entry and not any((Path(entry) / name).exists() for name in ("conda", "mamba")):
            dirs.append(entry)
    return os.pathsep.join(dict.fromkeys(dirs))


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "CONDA"))}
    env["PATH"] = _no_conda_path()
    env["OMP_NUM_THREADS"] = "2"
    env.update(extra)
    return env


def _tiny_config(workdir: Path, cohort: str = "slurm") -> Path:
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    config["cohort"] = cohort
    config["demo"].update({"n_patients": 6, "tiles_per_slide": 8, "seed": 1})
    config["splits"]["n_folds"] = 2
    config["train"].update({"epochs": 2})
    config["features"]["num_workers"] = 0
    if "slides_per_job" in schema["properties"]["features"]["properties"]:
        config["features"]["slides_per_job"] = 4  # extraction batches, once the DAG has them
    path = workdir / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _snakemake(
    workdir: Path,
    env: dict[str, str],
    *args: str,
    configfiles: tuple[str, ...] = ("tiny.yaml",),
    timeout: float = 900,
) -> subprocess.CompletedProcess:
    command = [
        sys.executable,
        "-m",
        "snakemake",
        "--profile",
        str(PROFILE),
        "-s",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        *(str(workdir / name) for name in configfiles),
        *args,
    ]
    return subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=timeout, cwd=workdir
    )


def _slurm_logs(workdir: Path, limit: int = 6000) -> str:
    """The slurm job logs the plugin kept (it deletes those of successful jobs)."""
    text = ""
    for log in sorted((workdir / ".snakemake" / "slurm_logs").rglob("*.log")):
        text += f"\n--- {log.relative_to(workdir)}\n{log.read_text(errors='replace')[-1500:]}"
    return text[-limit:]


class Cluster:
    """One running test cluster (tests/slurm/cluster.sh start/stop)."""

    def __init__(self, directory: Path, gpus: int) -> None:
        self.dir = directory
        self.gpus = gpus
        self.env = {"SLURM_CONF": str(directory / "slurm.conf")}
        self.bin = directory / "bin"  # srun for inside jobs (see cluster.sh)

    def start(self) -> float:
        started = time.monotonic()
        args = ["--gpus", str(self.gpus), "--cpus", str(NODE["cpus"])]
        args += ["--mem-mb", str(NODE["mem_mb"])]
        done = subprocess.run(
            ["bash", str(CLUSTER_SH), "start", str(self.dir), *args],
            capture_output=True,
            text=True,
            timeout=180,
            env=_env(),
        )
        if done.returncode != 0:
            self.stop()
            pytest.fail(f"cluster did not start:\n{done.stdout}\n{done.stderr[-4000:]}")
        return time.monotonic() - started

    def stop(self) -> None:
        subprocess.run(
            ["bash", str(CLUSTER_SH), "stop", str(self.dir)],
            capture_output=True,
            text=True,
            timeout=120,
            env=_env(),
        )

    def run(self, *command: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(
            list(command), capture_output=True, text=True, timeout=timeout, env=_env(**self.env)
        )

    def finished(self) -> dict[str, str]:
        """job id -> final state of every job that ended (jobcomp/filetxt: one line per job)."""
        record = self.dir / "log" / "jobcomp.txt"
        if not record.exists():
            return {}
        jobs = {}
        for line in record.read_text().splitlines():
            fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
            jobs[fields["JobId"]] = fields["JobState"]
        return jobs


def _sbatch_recorder(bindir: Path, log: Path) -> None:
    """An `sbatch` in front of the real one that appends its arguments (JSON) to `log`."""
    real = _which("sbatch")
    bindir.mkdir(parents=True, exist_ok=True)
    script = bindir / "sbatch"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        f"with open({str(log)!r}, 'a') as handle:\n"
        "    handle.write(json.dumps(sys.argv[1:]) + '\\n')\n"
        f"os.execv({real!r}, [{real!r}, *sys.argv[1:]])\n"
    )
    script.chmod(0o755)


def _submissions(log: Path) -> list[list[str]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def _request(argv: list[str]) -> list[str]:
    """The resource part of an sbatch call: without per-job names, log paths and the command."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in _PER_JOB:
            skip = True
            continue
        if arg.startswith("--wrap") or arg == "--parsable":
            continue
        out.append(arg)
    return out


def _rule(argv: list[str]) -> str:
    comment = argv[argv.index("--comment") + 1]
    match = re.match(r"(rule|group)_([A-Za-z0-9_]+?)(_wildcards_.*)?$", comment)
    assert match, comment
    return ("group:" if match.group(1) == "group" else "") + match.group(2)


def _value(request: list[str], flag: str) -> str | None:
    """`--flag V`, `--flag=V` or `-t V` from a request."""
    for i, arg in enumerate(request):
        if arg == flag and i + 1 < len(request):
            return request[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def _size(request: list[str]) -> tuple[int, int, int, int]:
    """(GPUs, CPUs, MB, minutes) of a request, to find the largest."""
    gpus = _value(request, "--gpus") or "0"
    return (
        int(gpus.rsplit(":", 1)[-1]),
        int(_value(request, "--cpus-per-task") or 1),
        int(_value(request, "--mem") or 0),
        int(_value(request, "-t") or 0),
    )


# ---------------------------------------------------------------------------------------------


def test_profiles_dry_run_without_conda(tmp_path: Path) -> None:
    """Both profiles plan the demo with no conda on PATH (the pip-installed path)."""
    reason = _plugin_missing()
    if reason:
        pytest.skip(reason)
    env = _env()
    assert shutil.which("conda", path=env["PATH"]) is None
    for profile in ("slurm", "workstation"):
        workdir = tmp_path / profile
        workdir.mkdir()
        command = [sys.executable, "-m", "snakemake", "--profile", str(REPO / "profiles" / profile)]
        command += ["-s", str(REPO / "Snakefile"), "--directory", str(workdir)]
        command += ["--configfile", str(REPO / "config.yaml"), "-n"]
        done = subprocess.run(
            command, capture_output=True, text=True, env=env, timeout=300, cwd=workdir
        )
        text = done.stdout + done.stderr
        assert done.returncode == 0, f"{profile}: {text[-3000:]}"
        assert "conda" not in text.lower(), f"{profile}: {text[-3000:]}"
        # planned GPU jobs (tile/extract may wait for the sheet checkpoint)
        assert re.search(r"^train\s+\d+$", text, re.M), f"{profile}: {text[-3000:]}"


@pytest.fixture(scope="module")
def slurm_run(tmp_path_factory: pytest.TempPathFactory):
    """The tiny demo run through profiles/slurm on a fresh 4-GPU test cluster."""
    reason = _cluster_missing()
    if reason:
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("slurm")
    cluster = Cluster(root / "cluster", gpus=NODE["gpus"])
    try:
        startup_s = cluster.start()
        workdir = root / "work"
        workdir.mkdir()
        _tiny_config(workdir)
        log = root / "sbatch.jsonl"
        _sbatch_recorder(root / "bin", log)
        env = _env(**cluster.env)
        env["PATH"] = os.pathsep.join([str(root / "bin"), str(cluster.bin), env["PATH"]])
        started = time.monotonic()
        # first status check after 5 s instead of 40 s: the demo's jobs take seconds. A status
        # check that never sees the jobs end (sacct without accounting) hangs snakemake, which
        # then ignores SIGTERM: the timeout kills it and the fixture cancels the jobs.
        try:
            done = _snakemake(workdir, env, "--slurm-init-seconds-before-status-checks", "5")
        except subprocess.TimeoutExpired as timeout:
            err = timeout.stderr or b""
            err = err.decode(errors="replace") if isinstance(err, bytes) else err
            done = subprocess.CompletedProcess(
                timeout.cmd, -9, "", f"{err}\nsnakemake still running after {timeout.timeout} s"
            )
        run_s = time.monotonic() - started
        yield {
            "cluster": cluster,
            "workdir": workdir,
            "env": env,
            "log": log,
            "done": done,
            "startup_s": startup_s,
            "run_s": run_s,
            "submissions": _submissions(log),
        }
    finally:
        cluster.stop()


def _assert_ran(run: dict) -> None:
    done = run["done"]
    assert done.returncode == 0, (
        f"snakemake rc {done.returncode}\n{done.stderr[-5000:]}\n{_slurm_logs(run['workdir'])}"
    )


def test_demo_runs_to_report_on_slurm(slurm_run: dict) -> None:
    _assert_ran(slurm_run)
    workdir = slurm_run["workdir"]
    report = workdir / "results" / "slurm" / "report"
    assert (report / "index.html").is_file()
    summaries = [json.loads(p.read_text()) for p in report.rglob("summary.json")]
    assert summaries and all(len(s["cindex_folds"]) == 2 for s in summaries)
    rules = [_rule(argv) for argv in slurm_run["submissions"]]
    for rule in ("make_demo", "tile", "extract", "omics", "train", "report"):
        assert rule in rules, (rule, sorted(set(rules)))
    # the Snakefile's localrules (small bookkeeping) run beside Snakemake, never on SLURM
    for rule in ("sheet", "qc_slides", "cohort", "splits", "cohort_page"):
        assert rule not in rules, (rule, sorted(set(rules)))
    assert (workdir / "results" / "slurm" / "cohort" / "summary.json").is_file()
    # every job the plugin submitted ran on SLURM and completed (the plugin read it from squeue)
    states = slurm_run["cluster"].finished()
    assert len(states) == len(rules), states
    assert set(states.values()) == {"COMPLETED"}, states
    print(
        f"\nSLURM demo: {len(rules)} jobs, cluster start {slurm_run['startup_s']:.1f} s, "
        f"snakemake {slurm_run['run_s']:.0f} s"
    )


def test_extraction_asks_for_one_gpu(slurm_run: dict) -> None:
    _assert_ran(slurm_run)
    extract = [argv for argv in slurm_run["submissions"] if _rule(argv) == "extract"]
    assert extract
    assert not [argv for argv in slurm_run["submissions"] if _rule(argv).startswith("group:")]
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    wanted = profile["set-resources"]["extract"]
    for argv in extract:
        request = _request(argv)
        assert "--gpus=1" in request, request
        assert _value(request, "--mem") == str(wanted["mem_mb"]), request
        assert _value(request, "-t") == str(wanted["runtime"]), request
        assert _value(request, "--cpus-per-task") == str(profile["set-threads"]["extract"])
    print("\nextract sbatch:", shlex.join(_request(extract[0])))


def test_second_run_submits_nothing(slurm_run: dict) -> None:
    _assert_ran(slurm_run)
    before = len(_submissions(slurm_run["log"]))
    again = _snakemake(slurm_run["workdir"], slurm_run["env"], timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Nothing to be done" in again.stdout + again.stderr
    assert len(_submissions(slurm_run["log"])) == before


def test_requests_fit_a_gpu_node(slurm_run: dict) -> None:
    """Every distinct request passes `sbatch --test-only`; the old summed group request fails."""
    _assert_ran(slurm_run)
    cluster: Cluster = slurm_run["cluster"]
    requests = {tuple(_request(argv)) for argv in slurm_run["submissions"]}
    largest = max(requests, key=_size)
    for request in sorted(requests, key=_size):
        done = cluster.run("sbatch", "--test-only", *request, "--wrap", "true")
        assert done.returncode == 0 and "to start at" in done.stderr, (request, done.stderr)
    gpus, cpus, mem_mb, _ = _size(largest)
    assert gpus == 1
    # four such GPU jobs fit the 4-GPU node side by side
    assert cpus * NODE["gpus"] <= NODE["cpus"] and mem_mb * NODE["gpus"] <= NODE["mem_mb"]
    summed = ["--mem", "256000", "--cpus-per-task=64", "--gpus=8", "-t", "240"]
    refused = cluster.run("sbatch", "--test-only", *summed, "--wrap", "true")
    assert refused.returncode != 0, refused.stderr
    print("\nlargest request:", shlex.join(largest))


def test_cpu_only_cluster(slurm_run: dict, tmp_path: Path) -> None:
    """No GPU gres: a GPU request is refused; with gpus_per_job 0 extraction runs anyway."""
    _assert_ran(slurm_run)
    slurm_run["cluster"].stop()
    cluster = Cluster(tmp_path / "cpu-cluster", gpus=0)
    cluster.start()
    try:
        refused = cluster.run("sbatch", "--test-only", "--gpus=1", "--wrap", "true")
        assert refused.returncode != 0, refused.stderr
        workdir = slurm_run["workdir"]
        log = tmp_path / "sbatch.jsonl"
        _sbatch_recorder(tmp_path / "bin", log)
        env = _env(**cluster.env)
        env["PATH"] = os.pathsep.join([str(tmp_path / "bin"), str(cluster.bin), env["PATH"]])
        # one extraction job: a batch manifest (batched DAG) or a slide's features store
        features = workdir / "results" / "slurm" / "features"
        batches = sorted(features.rglob("batch*.tsv"))
        target = batches[0] if batches else next(features.rglob("DEMO-000-DX1.zarr"))
        # the README's CPU-only switch, in a config file (--config would pass '0' as a string)
        (workdir / "cpu_only.yaml").write_text("compute: {gpus_per_job: 0}\n")
        done = _snakemake(
            workdir,
            env,
            "--slurm-init-seconds-before-status-checks",
            "5",
            "--force",
            str(target.relative_to(workdir)),
            configfiles=("tiny.yaml", "cpu_only.yaml"),
            timeout=600,
        )
        assert done.returncode == 0, f"{done.stderr[-4000:]}\n{_slurm_logs(workdir)}"
        submitted = _submissions(log)
        assert [_rule(argv) for argv in submitted] == ["extract"]
        assert not any(arg.startswith("--gpus") for arg in submitted[0]), submitted[0]
        assert list(cluster.finished().values()) == ["COMPLETED"]
    finally:
        cluster.stop()
