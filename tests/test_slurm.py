"""The workflow on a real single-node SLURM cluster gives the same results as a local run.

Why: the SLURM profile and executor plugin are part of the deliverable; a mocked sbatch would not
catch a job that fails on the node (wrong PATH, wrong resources, sacct hangs). tests/slurm/cluster.sh
starts munged + slurmctld + slurmd here in a few seconds, so this runs in CI every time.

The workflow runs on the tiny config through `--executor slurm --profile tests/slurm/profile`, started
in the background when the session begins (tests/slurm_harness.py: the run waits on the plugin's status
polls far more than it computes), and this module compares it with the session's local run of the same
config (conftest.tiny_run, built once and shared with the workflow tests), in separate directories:
1. both runs completed;
2. every non-local job of the SLURM run is a COMPLETED job in `scontrol show jobs` (kept for MinJobAge)
   whose working directory is the run's, one per job, with its per-job SLURM log: this cannot pass
   unless the jobs really went through sbatch;
3. the result files are the same set and their CSV/JSON/HDF5 contents are numerically equal.

Skipped (with the reason) when the cluster cannot be started here for lack of binaries or root;
with CI=true that is a failure instead. Env overrides for debugging the harness itself:
STNDT_SLURM_TEST_SNAKEFILE, STNDT_SLURM_TEST_CONFIG.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from slurm_harness import BackgroundRun, Run, finish, scontrol_jobs

pytestmark = pytest.mark.slurm

# Floats equal up to this: both runs use the same seeds and thread counts, so they are expected to be
# bit-identical; the tolerance only absorbs last-bit reduction-order noise, not a real difference.
RTOL, ATOL = 1e-6, 1e-9
# Metric files may record wall time, host or dates: those differ between two correct runs.
VOLATILE_KEY = re.compile(r"time|second|elapsed|duration|wall|date|host|(^|_)s$", re.IGNORECASE)
# Contents compared numerically; every other file only has to exist in both runs (figures, NWB files
# with creation dates). Logs and benchmarks hold times and paths, so they are not compared at all.
COMPARED_SUFFIXES = {".csv", ".json", ".h5", ".hdf5"}
SKIPPED_DIRS = {"logs", "benchmarks"}


@pytest.fixture(scope="module")
def runs(slurm_background: BackgroundRun | None, tiny_run) -> dict[str, Run]:
    """The session's local run of the tiny config, and the same config run through SLURM (started in
    the background when the session began: conftest.slurm_background)."""
    assert slurm_background is not None, "conftest did not start the SLURM run for this session's SLURM tests"
    if slurm_background.problem:
        if slurm_background.skip:
            pytest.skip(slurm_background.problem)
        pytest.fail(slurm_background.problem)
    slurm = finish(slurm_background)
    return {"local": Run(tiny_run.workdir, tiny_run.results, 0, tiny_run.log), "slurm": slurm}


# ----------------------------------------------------------------------------- parsing helpers


def job_stats(log: str) -> Counter:
    """Snakemake's 'Job stats' table (rule -> number of jobs) from a run's log."""
    match = re.search(r"^Job stats:\n.*\n-+ +-+\n(.*?)^total +\d+", log, re.MULTILINE | re.DOTALL)
    assert match, "no 'Job stats' table in the snakemake log"
    return Counter({name: int(n) for name, n in re.findall(r"^(\S+) +(\d+)$", match.group(1), re.MULTILINE)})


def local_rule_jobs(log: str) -> Counter:
    """Jobs the SLURM run executed on the submit host itself ('localrule NAME:' headers)."""
    return Counter(re.findall(r"^localrule (\S+):$", log, re.MULTILINE))


def rule_of_comment(comment: str) -> str:
    """Rule name from the plugin's job comment 'rule_NAME' or 'rule_NAME_wildcards_WILDCARDS'."""
    match = re.fullmatch(r"rule_(.+?)(?:_wildcards_.*)?", comment)
    assert match, f"unexpected SLURM job comment {comment!r} (not from snakemake-executor-plugin-slurm?)"
    return match.group(1)


# ---------------------------------------------------------------------------- comparing results


def result_files(results: Path) -> set[str]:
    """Relative paths of every file under a results dir, minus dot-dirs (caches) and logs."""
    return {
        str(p.relative_to(results))
        for p in results.rglob("*")
        if p.is_file()
        and not any(part.startswith(".") or part in SKIPPED_DIRS for part in p.relative_to(results).parts)
    }


def _norm_str(value: str, roots: tuple[Path, ...]) -> str:
    for root in roots:  # paths into a run's own directory differ between the runs
        value = value.replace(str(root), "<RUN>")
    return value


def assert_values_equal(a, b, where: str, roots: tuple[Path, ...]) -> None:
    """Recursive equality for JSON-like values: floats up to RTOL/ATOL, run paths normalised."""
    if isinstance(a, dict) and isinstance(b, dict):
        keys_a = {k for k in a if not VOLATILE_KEY.search(str(k))}
        keys_b = {k for k in b if not VOLATILE_KEY.search(str(k))}
        assert keys_a == keys_b, f"{where}: keys differ: {sorted(keys_a ^ keys_b)}"
        for k in sorted(keys_a):
            assert_values_equal(a[k], b[k], f"{where}/{k}", roots)
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), f"{where}: lengths {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_values_equal(x, y, f"{where}[{i}]", roots)
    elif isinstance(a, float) or isinstance(b, float):
        assert isinstance(a, (int, float)) and isinstance(b, (int, float)), f"{where}: {a!r} != {b!r}"
        assert (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=RTOL, abs_tol=ATOL), (
            f"{where}: {a!r} != {b!r}"
        )
    elif isinstance(a, str) and isinstance(b, str):
        assert _norm_str(a, roots[:1]) == _norm_str(b, roots[1:]), f"{where}: {a!r} != {b!r}"
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def assert_csv_equal(pa: Path, pb: Path, roots: tuple[Path, ...]) -> None:
    a, b = pd.read_csv(pa), pd.read_csv(pb)
    keep = [c for c in a.columns if not VOLATILE_KEY.search(str(c))]
    assert list(a.columns) == list(b.columns), f"{pa.name}: columns {list(a.columns)} != {list(b.columns)}"
    assert a.shape == b.shape, f"{pa.name}: shape {a.shape} != {b.shape}"
    for col in keep:
        where = f"{pa.name}[{col}]"
        if pd.api.types.is_numeric_dtype(a[col]) and pd.api.types.is_numeric_dtype(b[col]):
            np.testing.assert_allclose(
                a[col].to_numpy(float), b[col].to_numpy(float), rtol=RTOL, atol=ATOL, err_msg=where
            )
        else:
            va = [_norm_str(str(v), roots[:1]) for v in a[col]]
            vb = [_norm_str(str(v), roots[1:]) for v in b[col]]
            assert va == vb, f"{where}: {va} != {vb}"


def _plain(value):
    """h5py attribute values (numpy scalars/arrays, bytes) as plain Python values."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _h5_attrs(obj) -> dict:
    return {key: _plain(value) for key, value in obj.attrs.items()}


def assert_h5_equal(pa: Path, pb: Path, roots: tuple[Path, ...]) -> None:
    with h5py.File(pa, "r") as fa, h5py.File(pb, "r") as fb:
        names_a, names_b = [], []
        fa.visit(names_a.append)
        fb.visit(names_b.append)
        assert sorted(names_a) == sorted(names_b), f"{pa.name}: members differ: {sorted(set(names_a) ^ set(names_b))}"
        assert_values_equal(_h5_attrs(fa), _h5_attrs(fb), f"{pa.name}:/@", roots)
        for name in sorted(names_a):
            oa, ob = fa[name], fb[name]
            assert_values_equal(_h5_attrs(oa), _h5_attrs(ob), f"{pa.name}:{name}@", roots)
            if not isinstance(oa, h5py.Dataset):
                continue
            where = f"{pa.name}:{name}"
            xa, xb = oa[()], ob[()]
            assert oa.shape == ob.shape and oa.dtype == ob.dtype, (
                f"{where}: {oa.shape}/{oa.dtype} != {ob.shape}/{ob.dtype}"
            )
            if np.issubdtype(oa.dtype, np.floating):
                np.testing.assert_allclose(xa, xb, rtol=RTOL, atol=ATOL, equal_nan=True, err_msg=where)
            else:
                assert np.array_equal(np.asarray(xa), np.asarray(xb)), f"{where}: contents differ"


# ------------------------------------------------------------------------------------- tests


def test_both_runs_complete(runs):
    for name, run in runs.items():
        assert run.returncode == 0, f"{name} run failed (rc={run.returncode}); log tail:\n{run.log[-4000:]}"


def test_every_job_ran_under_slurm(runs):
    local, slurm = runs["local"], runs["slurm"]
    assert slurm.returncode == 0, "SLURM run failed (see test_both_runs_complete)"
    expected = job_stats(local.log)
    assert job_stats(slurm.log) == expected, "the SLURM run planned other jobs than the local run"
    ours = [j for j in scontrol_jobs() if Path(j.get("WorkDir", "")) == slurm.workdir]
    assert ours, f"no SLURM job has WorkDir {slurm.workdir}: nothing was submitted through sbatch"
    not_done = [(j["JobId"], j.get("JobState")) for j in ours if j.get("JobState") != "COMPLETED"]
    assert not not_done, f"SLURM jobs not COMPLETED: {not_done}"
    submitted = Counter(rule_of_comment(j.get("Comment", "")) for j in ours)
    on_host = local_rule_jobs(slurm.log)
    assert submitted + on_host == expected, (
        f"jobs seen by slurmctld {dict(submitted)} + run on the submit host {dict(on_host)} "
        f"!= jobs of the workflow {dict(expected)}"
    )
    # Every model variant trains as SLURM jobs (one member per job, not on the submit host): STNDT through
    # `train`, the others through its twin `train_variant`.
    comments = [j.get("Comment", "") for j in ours]
    variant_comments = [c for c in comments if rule_of_comment(c) == "train_variant"]
    assert any("ndt" in c for c in variant_comments), f"no NDT member among the SLURM train jobs: {variant_comments}"
    compute = {"train", "train_variant", "score"}
    assert not compute & set(on_host), f"compute jobs ran on the submit host: {on_host}"
    # The plugin writes .snakemake/slurm_logs/rule_NAME/[WILDCARDS/]JOBID.log for each job it submits.
    logs = {p.stem for p in (slurm.workdir / ".snakemake" / "slurm_logs").rglob("*.log")}
    missing = sorted(j["JobId"] for j in ours if j["JobId"] not in logs)
    assert not missing, f"no per-job SLURM log for jobs {missing}"


def test_results_equal(runs):
    local, slurm = runs["local"], runs["slurm"]
    assert local.returncode == 0 and slurm.returncode == 0, "a run failed (see test_both_runs_complete)"
    files_local, files_slurm = result_files(local.results), result_files(slurm.results)
    assert files_local == files_slurm, f"result files differ: {sorted(files_local ^ files_slurm)}"
    compared = sorted(f for f in files_local if Path(f).suffix in COMPARED_SUFFIXES)
    assert compared, f"no CSV/JSON/HDF5 result to compare in {sorted(files_local)}"
    roots = (local.workdir, slurm.workdir)
    for rel in compared:
        pa, pb = local.results / rel, slurm.results / rel
        suffix = pa.suffix
        if suffix == ".csv":
            assert_csv_equal(pa, pb, roots)
        elif suffix == ".json":
            assert_values_equal(json.loads(pa.read_text()), json.loads(pb.read_text()), rel, roots)
        else:
            assert_h5_equal(pa, pb, roots)
