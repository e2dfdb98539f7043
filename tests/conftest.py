"""Shared test helpers: run the real workflow with Snakemake on tiny configs.

The tiny whole DAG is built ONCE per test session (`tiny_run`) and shared by the workflow tests and the
SLURM test (which compares its own run against it). Its folder name holds a space and a quote, so every
session also checks that every path reaching a shell command is quoted. Tests that change files work on
a copy (`tiny_copy`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TINY = ROOT / ".test" / "config.yaml"
PACKED_BAYES = ROOT / ".test" / "config_packed_bayes.yaml"
# Rules call `python -m stndt.cli`: make sure it is this interpreter.
os.environ["PATH"] = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
# snakemake-executor-plugin-slurm runs `scontrol show config` when Snakemake starts, with a 10 s timeout:
# where SLURM is installed but no controller runs (CI installs it for tests/test_slurm.py), every local
# Snakemake call of the suite would wait 10 s. Local runs get an `scontrol` that fails at once instead
# (the SLURM test starts a real controller and runs with the real binaries).
NO_SLURM = Path(tempfile.mkdtemp(prefix="no_slurm_"))
(NO_SLURM / "scontrol").write_text("#!/bin/sh\nexit 1\n")
(NO_SLURM / "scontrol").chmod(0o755)
LOCAL_ENV = {**os.environ, "PATH": f"{NO_SLURM}{os.pathsep}{os.environ['PATH']}"}


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def snakemake(
    workdir: Path, config: Path, *args: str, check: bool = True, timeout: int = 900, python: str | Path | None = None
) -> subprocess.CompletedProcess:
    """Run the project's Snakefile with `config`, results relative to `workdir` (with `python` as the
    interpreter running Snakemake, default this one)."""
    cmd = [
        str(python or sys.executable),
        "-m",
        "snakemake",
        "--snakefile",
        str(ROOT / "workflow" / "Snakefile"),
        "--configfile",
        str(config),
        "--directory",
        str(workdir),
        "--cores",
        "2",
        *args,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=workdir, env=LOCAL_ENV)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}")
    return proc


def nothing_to_do(proc: subprocess.CompletedProcess) -> bool:
    return "Nothing to be done" in proc.stdout + proc.stderr


@dataclass(frozen=True)
class TinyRun:
    """The finished tiny DAG: its working folder, results folder and Snakemake's log."""

    workdir: Path
    results: Path
    log: str


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> TinyRun:
    work = tmp_path_factory.mktemp("tiny") / "it's a dir"
    work.mkdir()
    proc = snakemake(work, TINY)
    return TinyRun(work, work / "results", proc.stdout + proc.stderr)


@pytest.fixture
def tiny_copy(tiny_run: TinyRun, tmp_path: Path) -> TinyRun:
    """A private copy of the finished tiny run (mtimes and Snakemake's records kept), for tests that
    change files."""
    work = tmp_path / "copy of it's"
    shutil.copytree(tiny_run.workdir, work, symlinks=True)
    return TinyRun(work, work / "results", tiny_run.log)
