"""Shared test helpers: run the real workflow with Snakemake on tiny configs.

The tiny whole DAG is built ONCE per test session (`tiny_run`) and shared by the workflow tests and the
SLURM test (which compares its own run against it; that run starts in the background when the session
begins, `slurm_background`). Its folder name holds a space and a quote, so every
session also checks that every path reaching a shell command is quoted. Tests that change files work on
a copy (`tiny_copy`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import slurm_harness
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
    workdir: Path,
    config: Path,
    *args: str,
    check: bool = True,
    timeout: int = 900,
    python: str | Path | None = None,
    nice: int = 0,
) -> subprocess.CompletedProcess:
    """Run the project's Snakefile with `config`, results relative to `workdir` (with `python` as the
    interpreter running Snakemake, default this one; `nice`: its CPU priority and its jobs')."""
    cmd = [
        *(["nice", "-n", str(nice)] if nice else []),
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


# ---- scenarios built in the background
# The long tiny-DAG scenarios of some modules train one member (or one pack) at a time, leaving one of
# the two cores idle for most of the suite. Registered here, each starts when the session begins, at
# the lowest CPU priority, so it takes only CPU that the tests leave idle; the tests using it run last
# and its fixture then takes the result (`background_scenarios[name].result()`), by then mostly ready.
BACKGROUND_NICE = 19
_SCENARIOS: dict[str, Callable[[Path], object]] = {}


def background_scenario(name: str):
    """Register `build(folder)` as the background scenario behind the fixture `name` (it runs its
    Snakemake calls with `nice=BACKGROUND_NICE`)."""

    def register(build: Callable[[Path], object]) -> Callable[[Path], object]:
        _SCENARIOS[name] = build
        return build

    return register


def _waits_in_background(item) -> bool:
    return bool(item.get_closest_marker("slurm") or set(getattr(item, "fixturenames", ())) & set(_SCENARIOS))


def pytest_collection_modifyitems(session, config, items):
    """Tests that take a background scenario or the SLURM run go last (in their order): by then those
    runs are done, having used the CPU the other tests left idle. (Their module fixtures only take the
    runs' results, so setting them up once more after other modules costs nothing.)"""
    items.sort(key=_waits_in_background)


@pytest.fixture(scope="session", autouse=True)
def background_scenarios(request, tmp_path_factory):
    """{fixture name: Future of its scenario} for the registered scenarios this session's tests use."""
    used = {name for item in request.session.items for name in getattr(item, "fixturenames", ())}
    wanted = {name: build for name, build in _SCENARIOS.items() if name in used}
    with ThreadPoolExecutor(max_workers=max(1, len(wanted))) as pool:
        yield {name: pool.submit(build, tmp_path_factory.mktemp(name)) for name, build in wanted.items()}


@pytest.fixture(scope="session", autouse=True)
def slurm_background(request, tmp_path_factory):
    """The SLURM test's workflow run (tests/slurm_harness.py), started when a session that holds the
    SLURM tests begins: it mostly waits on the executor plugin's status polls, so the rest of the suite
    runs meanwhile and tests/test_slurm.py collects it. None when no SLURM test was collected."""
    if not any(item.get_closest_marker("slurm") for item in request.session.items):
        yield None
        return
    run = slurm_harness.start(tmp_path_factory.mktemp("slurm_vs_local") / "slurm")
    yield run
    slurm_harness.stop(run)


@pytest.fixture
def tiny_copy(tiny_run: TinyRun, tmp_path: Path) -> TinyRun:
    """A private copy of the finished tiny run (mtimes and Snakemake's records kept), for tests that
    change files."""
    work = tmp_path / "copy of it's"
    shutil.copytree(tiny_run.workdir, work, symlinks=True)
    return TinyRun(work, work / "results", tiny_run.log)
