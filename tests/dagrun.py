"""Run the real Snakemake DAG from tests: a fresh working directory, this repository's Snakefile.

Shared by the workflow tests (demo, real cohort, GDC, SLURM). ``snakemake`` runs as a subprocess
with this interpreter's environment so it finds the same `wsirisk` and packages.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def env() -> dict[str, str]:
    """This interpreter's bin first on PATH, two threads (the CI machine has two cores)."""
    out = dict(os.environ)
    out["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{out.get('PATH', '')}"
    out["OMP_NUM_THREADS"] = "2"
    return out


def snakemake(
    workdir: Path, configfile: Path, *extra: str, timeout: int = 1500
) -> subprocess.CompletedProcess:
    """``snakemake -s REPO/Snakefile --directory WORKDIR --configfile CONFIG --cores 2 EXTRA``."""
    command = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(configfile),
        "--cores",
        "2",
        *extra,
    ]
    return subprocess.run(command, capture_output=True, text=True, env=env(), timeout=timeout)


def default_config() -> dict:
    """config.yaml as shipped (the demo cohort)."""
    return yaml.safe_load((REPO / "config.yaml").read_text())


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def planned_rules(dry_run_output: str) -> set[str]:
    """Rule names in the job-stats table of a dry run."""
    rules, in_table = set(), False
    for line in dry_run_output.splitlines():
        if line.startswith("job ") and "count" in line:
            in_table = True
            continue
        if in_table:
            parts = line.split()
            if not parts or parts[0] == "total":
                break
            if not set(parts[0]) <= {"-"}:
                rules.add(parts[0])
    return rules
