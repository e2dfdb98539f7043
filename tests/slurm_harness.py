"""The SLURM test's workflow run: a real local cluster and the tiny config through the SLURM executor.

Why a harness apart from tests/test_slurm.py: the run is bound by the executor plugin's status polls,
not by CPU (the plugin adds 10 s to its poll interval after every poll that sees no job finish, so each
level of the DAG costs about 14 s, some 4 minutes in all, with the two cores mostly idle). conftest.py
starts it in the background when a session that holds the SLURM tests begins, the rest of the suite
runs meanwhile, and tests/test_slurm.py collects it and compares it with the local run.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLUSTER_SH = REPO / "tests" / "slurm" / "cluster.sh"
TEST_PROFILE = REPO / "tests" / "slurm" / "profile"
SNAKEFILE = Path(os.environ.get("STNDT_SLURM_TEST_SNAKEFILE", REPO / "workflow" / "Snakefile"))
TINY_CONFIG = Path(os.environ.get("STNDT_SLURM_TEST_CONFIG", REPO / ".test" / "config.yaml"))
# The venv running pytest is the one whose snakemake (and `stndt` CLI) the jobs must use.
VENV_BIN = Path(sys.executable).parent
CLUSTER_PREREQ_MISSING = 3  # cluster.sh's exit code when binaries/root are missing
# From the run's start: it shares the two cores with the rest of the suite.
RUN_TIMEOUT_S = 1800


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def cluster(cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(CLUSTER_SH), cmd], capture_output=True, text=True, timeout=120)


@dataclass
class Run:
    """One finished workflow run: its working directory, results directory and combined log."""

    workdir: Path
    results: Path
    returncode: int
    log: str


@dataclass
class BackgroundRun:
    """The SLURM run while it goes on: `problem` says why there is none (no cluster), `skip` whether
    that may be a skip rather than a failure."""

    workdir: Path
    proc: subprocess.Popen | None = None
    logfile: Path | None = None
    deadline: float = 0.0
    problem: str = ""
    skip: bool = False
    cluster_was_running: bool = True


def scontrol_jobs() -> list[dict[str, str]]:
    """Every job slurmctld still remembers, as KEY=VALUE dicts (`scontrol show jobs -o`, one per line)."""
    out = subprocess.run(["scontrol", "show", "jobs", "-o"], capture_output=True, text=True, check=True).stdout
    jobs = []
    for line in out.splitlines():
        if not line.strip() or line.startswith("No jobs"):
            continue
        # Keys look like JobId, Socks/Node, NtasksPerN:B:S:C; values may hold '=' (TRES=cpu=1,mem=1G)
        # but never ' KEY=' for the fields read here (JobId, JobState, Comment, WorkDir).
        pairs = re.findall(r"([\w/:]+)=(.*?)(?= [\w/:]+=|$)", line.strip())
        jobs.append({key: value.strip() for key, value in pairs})
    return jobs


def snakemake_cmd(workdir: Path, extra: list[str]) -> list[str]:
    return [
        str(VENV_BIN / "snakemake"),
        "--snakefile", str(SNAKEFILE),
        "--configfile", str(TINY_CONFIG),
        "--directory", str(workdir),
        "--nocolor",
        *extra,
    ]  # fmt: skip


def start(workdir: Path) -> BackgroundRun:
    """Start the local cluster (unless it runs) and the tiny config through the SLURM executor."""
    run = BackgroundRun(workdir)
    if not TINY_CONFIG.is_file():
        run.problem = f"tiny workflow config {TINY_CONFIG} does not exist (the SLURM test runs the workflow on it)"
        return run
    run.cluster_was_running = cluster("status").returncode == 0
    started = cluster("start")
    if started.returncode != 0:
        run.problem = f"local SLURM cluster could not be started (cluster.sh start, rc={started.returncode}): " + (
            started.stderr.strip() or started.stdout.strip()
        )
        run.skip = started.returncode == CLUSTER_PREREQ_MISSING and not in_ci()
        if in_ci():
            run.problem += "  [CI=true: a cluster that does not start is a failure]"
        return run
    workdir.mkdir(parents=True)
    env = dict(os.environ, PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    # sbatch --export=ALL hands this environment (the venv's PATH) to the jobs on the node.
    run.logfile = workdir.parent / f"{workdir.name}.log"
    run.proc = subprocess.Popen(
        snakemake_cmd(workdir, ["--executor", "slurm", "--profile", str(TEST_PROFILE)]),
        cwd=REPO,
        env=env,
        stdout=run.logfile.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # so a hung run can be killed with everything it started
    )
    run.deadline = time.monotonic() + RUN_TIMEOUT_S
    return run


def _kill(proc: subprocess.Popen) -> None:
    # snakemake may ignore SIGTERM while waiting on the cluster: escalate to SIGKILL.
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def cancel_jobs_in(workdir: Path) -> None:
    """scancel any SLURM job of ours still queued/running (only after a failed or killed run)."""
    for job in scontrol_jobs():
        if Path(job.get("WorkDir", "")) == workdir and job.get("JobState") in {"PENDING", "RUNNING"}:
            subprocess.run(["scancel", job["JobId"]], check=False)


def finish(run: BackgroundRun) -> Run:
    """Wait for the run, killing it (and its SLURM jobs) at its deadline."""
    assert run.proc is not None and run.logfile is not None, run.problem
    try:
        rc = run.proc.wait(timeout=max(1.0, run.deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        _kill(run.proc)
        rc = -999
    if rc != 0:
        cancel_jobs_in(run.workdir)
    return Run(run.workdir, run.workdir / "results", rc, run.logfile.read_text(errors="replace"))


def stop(run: BackgroundRun) -> None:
    """End of session: stop a run nobody collected, and the cluster if this session started it."""
    if run.proc is not None and run.proc.poll() is None:
        _kill(run.proc)
        cancel_jobs_in(run.workdir)
    if not run.problem and not run.cluster_was_running:
        stopped = cluster("stop")
        assert stopped.returncode == 0, f"cluster.sh stop failed: {stopped.stderr}"
