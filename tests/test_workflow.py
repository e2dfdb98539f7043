"""The whole DAG on the tiny config, run by Snakemake itself (once per session, see conftest.tiny_run):
the output contract, the report, reruns, lint, and what a finished run must (not) redo."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import (
    BACKGROUND_NICE,
    LOCAL_ENV,
    PACKED_BAYES,
    ROOT,
    TINY,
    TinyRun,
    background_scenario,
    nothing_to_do,
    snakemake,
    write_config,
)

from stndt.datasets import CO_BPS, METRICS
from stndt.figures import FIGURES
from stndt.members import MASKED_NLL

MEMBER_FILES = (
    "params.json",
    "best.pt",
    "rates_val.h5",
    "rates_test.h5",
    "train_log.csv",
    "metrics_val.json",
    "metrics_test.json",
)


def test_output_contract(tiny_run: TinyRun):
    res = tiny_run.results
    ds = res / "tiny"
    assert sorted(p.name for p in (ds / "raw").glob("*.nwb")) == [
        "sub-Synth_ses-mc_maze_desc-test_ecephys.nwb",
        "sub-Synth_ses-mc_maze_desc-train_behavior+ecephys.nwb",
    ]
    for phase in ("val", "test"):
        with h5py.File(ds / "tensors" / f"{phase}.h5") as f:
            assert "train_spikes_heldin" in f and "targets/mc_maze_20" in f
    assert (ds / "truth.h5").exists()
    for set_dir in (ds, ds / "variants" / "ndt", ds / "variants" / "no_contrast"):
        for member in ("m000", "m001"):
            for name in MEMBER_FILES:
                assert (set_dir / "members" / member / name).stat().st_size > 0, (set_dir, member, name)
        # every training job recorded its time and peak memory (Snakemake's benchmark file)
        prefix = "" if set_dir == ds else f"{set_dir.relative_to(ds)}/"
        for member in ("m000", "m001"):
            bench = pd.read_csv(res / "benchmarks" / "train" / "tiny" / f"{prefix}{member}.tsv", sep="\t")
            assert {"s", "max_rss"} <= set(bench.columns) and bench["s"].iloc[0] > 0
    members = pd.read_csv(ds / "members.csv")
    assert list(members["member"]) == ["m000", "m001"] and {CO_BPS, "lr", MASKED_NLL} <= set(members.columns)
    # the member's own val scores (written by its training job) are the ones in the table
    m0 = json.loads((ds / "members" / "m000" / "metrics_val.json").read_text())
    assert members.loc[0, CO_BPS] == pytest.approx(m0[CO_BPS])
    ens = json.loads((ds / "ensemble.json").read_text())
    assert 1 <= ens["n"] <= 2 and set(ens["members"]) <= {"m000", "m001"} and CO_BPS in ens["honest"]["metrics"]
    curve = pd.read_csv(ds / "ensemble_curve.csv")
    assert list(curve["n"]) == [1, 2]
    baselines = pd.read_csv(ds / "baselines.csv")
    assert set(baselines["method"]) == {
        "stndt_ensemble",
        "stndt_single",
        "ndt_ensemble",
        "ndt_single",
        "no_contrast_ensemble",
        "no_contrast_single",
        "smoothing",
        "oracle",
    }
    assert set(baselines["phase"]) == {"val", "test"} and set(METRICS[:4]) <= set(baselines.columns)
    oracle = baselines[(baselines["method"] == "oracle") & (baselines["phase"] == "val")].iloc[0]
    assert oracle["rate R2"] == pytest.approx(1.0)
    assert set(baselines["split"]) == {"val", "val split-half", "test"}  # every row says what it is
    # the paired ablation: equal pools (2 STNDT members against each variant's 2), paired differences
    paired = pd.read_csv(ds / "paired_ablation.csv")
    assert set(paired["comparison"]) == {"ndt", "no_contrast"} and set(paired["k"]) == {2}
    diff = paired[(paired["kind"] == "paired difference") & (paired["split"] == "test") & (paired["metric"] == CO_BPS)]
    assert len(diff) == 2 and (diff["ci_low"] <= diff["value"]).all() and (diff["value"] <= diff["ci_high"]).all()
    for comparison, d in diff.set_index("comparison").iterrows():
        prefix = f"variants/{comparison}/members"
        own = [json.loads((ds / prefix / m / "metrics_test.json").read_text())[CO_BPS] for m in ("m000", "m001")]
        base = [json.loads((ds / "members" / m / "metrics_test.json").read_text())[CO_BPS] for m in ("m000", "m001")]
        assert d["value"] == pytest.approx(np.mean(own) - np.mean(base))
    ablation = (res / "paper" / "tables" / "table3_ablation.md").read_text()
    assert "paired difference" in ablation and "bootstrap 95% interval" in ablation
    with h5py.File(ds / "submission.h5") as f:
        assert set(f["mc_maze_20"]) >= {"eval_rates_heldin", "eval_rates_heldout"}
    for table in ("table1_main", "table3_ablation"):
        assert (res / "paper" / "tables" / f"{table}.csv").exists()
        assert (res / "paper" / "tables" / f"{table}.md").read_text().startswith("## Table")
    for fig in FIGURES:
        for ext in ("png", "pdf"):
            assert (res / "paper" / "figures" / f"tiny_{fig}.{ext}").stat().st_size > 5_000
    # nothing half-written is left behind
    assert not [p for p in res.rglob("*.tmp")]


def test_scoring_runs_inside_training_not_as_jobs(tiny_run: TinyRun):
    """Members score their val phase in their training job: no `score` job per member and phase."""
    jobs = [line.split("(Rule: ")[1].rstrip(")") for line in tiny_run.log.splitlines() if "(Rule: " in line]
    n_members = 3 * 2
    assert jobs.count("train") + jobs.count("train_variant") == n_members
    # what `score` still does: 3 ensembles x 2 phases, smoothing x 2, the members' test phase (synthetic only)
    assert jobs.count("score") == 3 * 2 + 2 + n_members


def test_rerun_has_nothing_to_do(tiny_run: TinyRun):
    assert nothing_to_do(snakemake(tiny_run.workdir, TINY, "-n"))


def test_a_moved_checkout_plans_nothing(tiny_run: TinyRun, tmp_path: Path):
    """A checkout moved (or re-cloned elsewhere) together with its results replans nothing: no input of
    any rule may be an absolute path into the checkout."""
    here = tmp_path / "checkout"
    for part in ("workflow", "config", "envs", "stndt"):
        shutil.copytree(ROOT / part, here / part, ignore=shutil.ignore_patterns("__pycache__"))
    for part in ("results", ".snakemake"):
        shutil.copytree(tiny_run.workdir / part, here / part, symlinks=True)
    shutil.copy(TINY, here / "config" / "tiny.yaml")

    def run(where: Path, *args: str) -> subprocess.CompletedProcess:
        cmd = [
            sys.executable,
            "-m",
            "snakemake",
            "--snakefile",
            "workflow/Snakefile",
            "--configfile",
            "config/tiny.yaml",
            "--cores",
            "1",
            *args,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=where, env=LOCAL_ENV, timeout=600)
        assert proc.returncode == 0, proc.stderr[-4000:]
        return proc

    run(here)  # the tiny run was made from another checkout: bring this one up to date (tables at most)
    assert nothing_to_do(run(here, "-n"))
    moved = tmp_path / "moved elsewhere"
    shutil.move(here, moved)
    assert nothing_to_do(run(moved, "-n"))


def test_other_interpreter_path_and_other_dataset_space_retrain_nothing(tiny_run: TinyRun, tmp_path: Path):
    """A re-created venv (another interpreter path) or an edit of another dataset's search space must not
    mark finished members out of date; an edit of the dataset's own space must."""
    link = tmp_path / "venv elsewhere"
    link.symlink_to(Path(sys.prefix))
    other_python = link / "bin" / "python"
    assert other_python.exists() and str(other_python) != sys.executable
    assert nothing_to_do(snakemake(tiny_run.workdir, TINY, "-n", python=other_python))

    spaces = yaml.safe_load((ROOT / "config" / "search_spaces.yaml").read_text())
    spaces["dmfc_rsg"]["contrast_lambda"] = {"low": 0.5, "high": 0.9}
    edited = tmp_path / "spaces.yaml"
    edited.write_text(yaml.safe_dump(spaces))
    assert nothing_to_do(snakemake(tiny_run.workdir, TINY, "-n", "--config", f"search_spaces={edited}"))

    spaces["mc_maze"]["contrast_lambda"] = {"low": 0.5, "high": 0.9}  # the tiny dataset's own space
    edited.write_text(yaml.safe_dump(spaces))
    out = snakemake(tiny_run.workdir, TINY, "-n", "--quiet", "rules", "--config", f"search_spaces={edited}")
    assert "train " in out.stdout and not nothing_to_do(out)


def test_gpu_job_without_cuda_fails_at_once_naming_the_cause(tiny_copy: TinyRun):
    """A job given a GPU on a machine without CUDA stops in seconds (not a day of CPU training), and the
    terminal shows the job's log tail with the cause (default workflow profile: --show-failed-logs)."""
    config = yaml.safe_load(TINY.read_text())
    config["resources"]["train"]["gpu"] = 1
    gpu_config = write_config(tiny_copy.workdir.parent / "gpu.yaml", config)
    target = "results/tiny/members/m000/params.json"
    t0 = time.monotonic()
    proc = snakemake(tiny_copy.workdir, gpu_config, target, "--forcerun", "train", "--resources", "gpu=1", check=False)
    elapsed = time.monotonic() - t0
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "CUDA is not available" in text and "Refusing to train on the CPU" in text
    assert elapsed < 60, f"took {elapsed:.0f} s"


def test_deleted_contract_file_is_rebuilt_by_the_default_target(tiny_copy: TinyRun):
    metrics = tiny_copy.results / "tiny" / "members" / "m001" / "metrics_val.json"
    metrics.unlink()
    plan = snakemake(tiny_copy.workdir, TINY, "-n", "--quiet", "rules")
    # the default target asks for it again: the member's training job wrote it (training.pack: 1)
    assert not nothing_to_do(plan) and "train " in plan.stdout
    snakemake(tiny_copy.workdir, TINY, "results/tiny/members/m001/metrics_val.json")
    assert metrics.exists()


def test_outputs_respect_the_umask(tiny_run: TinyRun):
    """Colleagues on a shared cluster can read the results (CI runs with umask 022)."""
    umask = os.umask(0)
    os.umask(umask)
    readable = 0o044 & ~umask  # the read bits a plain open() would give group and others
    private = [
        p for p in tiny_run.results.rglob("*") if not p.is_symlink() and (p.stat().st_mode & readable) != readable
    ]
    assert not private, f"{len(private)} outputs less readable than the umask allows, e.g. {private[:5]}"


def test_report_holds_every_figure_and_table(tiny_copy: TinyRun):
    snakemake(tiny_copy.workdir, TINY, "--report", "report.html")
    html = (tiny_copy.workdir / "report.html").read_text(errors="replace")
    for name in [*FIGURES, "table1_main", "data_overview"]:
        assert name in html


def test_removed_member_is_retrained_with_identical_results(tiny_copy: TinyRun):
    """Every random draw flows from the configured seed: retraining a member reproduces its metrics."""
    ds = tiny_copy.results / "tiny"
    table = pd.read_csv(ds / "members.csv")
    assert not (ds / "packs").exists()  # training.pack: 1: each member's job writes its folder itself
    shutil.rmtree(ds / "members" / "m001")
    snakemake(tiny_copy.workdir, TINY, "results/tiny/members.csv")
    again = pd.read_csv(ds / "members.csv")
    pd.testing.assert_frame_equal(again.drop(columns="train_seconds"), table.drop(columns="train_seconds"))


def test_lint_is_clean():
    out = snakemake(ROOT, ROOT / "config" / "config.yaml", "--lint")
    assert "Congratulations" in out.stdout + out.stderr


def test_workflow_is_snakefmt_formatted():
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "snakefmt"), "--check", str(ROOT / "workflow")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_bad_training_settings_fail_the_dry_run_naming_the_key(tmp_path: Path):
    base = yaml.safe_load(TINY.read_text())
    for section, bad, key in (
        ("training", {"max_epoch": 4}, "training.max_epoch"),
        ("search_overrides", {"n_layer": 1}, "search_overrides.n_layer"),
        ("training", {"patience": -5}, "training.patience"),
    ):
        cfg = write_config(tmp_path / "c.yaml", {**base, section: {**base.get(section, {}), **bad}})
        proc = snakemake(tmp_path, cfg, "-n", check=False)
        assert proc.returncode != 0 and key in proc.stdout + proc.stderr, (key, proc.stderr[-2000:])


PACKED_TARGETS = ("results/tiny/members.csv", "results/tiny/variants/ndt/members.csv")


@background_scenario("packed_bayes_run")
def _packed_bayes_run(work: Path) -> TinyRun:
    """The tiny DAG with packs of 2 members per training job and a Bayesian search in waves of 2."""
    cfg = write_config(work / "config.yaml", yaml.safe_load(PACKED_BAYES.read_text()))
    # training and the members tables: what packing changes
    proc = snakemake(work, cfg, *PACKED_TARGETS, nice=BACKGROUND_NICE)
    return TinyRun(work, work / "results", proc.stdout + proc.stderr)


@pytest.fixture(scope="module")
def packed_bayes_run(background_scenarios) -> TinyRun:
    return background_scenarios["packed_bayes_run"].result()


def test_packs_train_several_members_per_job_with_member_level_outputs(packed_bayes_run: TinyRun):
    ds = packed_bayes_run.results / "tiny"
    log = packed_bayes_run.log
    assert log.count("(Rule: train_pack)") == 2  # stndt m000-m001, m002-m003
    assert log.count("(Rule: train_pack_variant)") == 1  # ndt m000-m001
    for pack, members in (
        ("packs/m000-m001", ("m000", "m001")),
        ("packs/m002-m003", ("m002", "m003")),
        ("variants/ndt/packs/m000-m001", ("m000", "m001")),
    ):
        summary = json.loads((ds / pack / "pack.json").read_text())
        assert [Path(m).name for m in summary["members"]] == list(members)
        set_dir = ds / pack.rsplit("packs/", 1)[0]
        for m in members:
            for name in MEMBER_FILES:
                assert (set_dir / "members" / m / name).stat().st_size > 0
    assert list(pd.read_csv(ds / "members.csv")["member"]) == ["m000", "m001", "m002", "m003"]
    assert nothing_to_do(
        snakemake(packed_bayes_run.workdir, packed_bayes_run.workdir / "config.yaml", "-n", *PACKED_TARGETS)
    )


def test_bayesian_wave_is_proposed_from_the_first_waves_results(packed_bayes_run: TinyRun):
    from stndt.train.members import space_for
    from stndt.train.search.space import load_search_spaces, sample_params
    from stndt.train.search.waves import completed_members, propose_wave

    ds = packed_bayes_run.results / "tiny"
    config = yaml.safe_load((packed_bayes_run.workdir / "config.yaml").read_text())
    space = space_for(load_search_spaces(ROOT / "config" / "search_spaces.yaml"), "mc_maze", config["search_overrides"])
    wave = json.loads((ds / "search" / "wave001.json").read_text())
    assert sorted(wave["members"]) == ["m002", "m003"] and wave["completed"] == 2
    # wave 1 is Optuna's proposal from the first wave's val co-bps, not the random draws of m002/m003 ...
    assert wave["members"]["m002"] != sample_params(space, 0, 2)
    # ... and exactly what the library proposes from those two finished members (deterministic)
    completed = completed_members({m: ds / "members" / m / "params.json" for m in ("m000", "m001")}, space)
    assert propose_wave(space, 0, 1, 2, completed) == [wave["members"]["m002"], wave["members"]["m003"]]
    # the members were trained with the proposed values; NDT member i reuses STNDT member i's values
    for m in ("m002", "m003"):
        given = json.loads((ds / "members" / m / "params.json").read_text())["given"]
        assert {k: given[k] for k in wave["members"][m]} == wave["members"][m]
    ndt = json.loads((ds / "variants" / "ndt" / "members" / "m001" / "params.json").read_text())["given"]
    stndt = json.loads((ds / "members" / "m001" / "params.json").read_text())["given"]
    assert {k: v for k, v in ndt.items() if k not in ("spatial", "contrastive")} == {
        k: v for k, v in stndt.items() if k not in ("spatial", "contrastive")
    }


def test_a_damaged_wave_file_is_named_and_a_deleted_one_is_proposed_again(packed_bayes_run: TinyRun, tmp_path: Path):
    work = tmp_path / "copy"
    shutil.copytree(packed_bayes_run.workdir, work, symlinks=True)
    config = work / "config.yaml"
    wave = work / "results" / "tiny" / "search" / "wave001.json"
    original = wave.read_text()
    wave.write_text(original[: len(original) // 2])
    proc = snakemake(work, config, "-n", *PACKED_TARGETS, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "wave001.json: damaged Bayesian-search wave file" in out and "Delete it" in out
    wave.unlink()
    dry = snakemake(work, config, "-n", check=False)  # the default target asks for the wave files
    assert "propose_wave" in dry.stdout + dry.stderr
    run = snakemake(work, config, "results/tiny/search/wave001.json", *PACKED_TARGETS)
    assert wave.read_text() == original and "rule train" not in run.stdout + run.stderr  # train or train_pack


def test_a_results_folder_in_use_by_another_checkout_is_refused(tmp_path: Path):
    from stndt.io import lock_results

    shared = tmp_path / "shared results"
    config = yaml.safe_load(TINY.read_text())
    config["results_dir"] = str(shared)
    work = tmp_path / "second checkout"
    work.mkdir()
    held = lock_results(shared)  # the first checkout's run, still going
    try:
        proc = snakemake(work, write_config(work / "config.yaml", config), check=False)
    finally:
        held.close()
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "is in use by another Snakemake run" in out and f"pid {os.getpid()}" in out
    assert not (shared / "tiny").exists()  # nothing was staged into the folder in use


def test_a_failed_member_that_stalls_the_bayesian_search_is_named_with_its_log(tmp_path: Path):
    config = yaml.safe_load(TINY.read_text())
    config["variants"] = {"stndt": 3}
    config["search"] = {"method": "bayes", "wave_size": 2}
    cfg = write_config(tmp_path / "config.yaml", config)
    blocker = tmp_path / "results" / "tiny" / "members" / "m000" / "train.log"  # m000 cannot open its log
    blocker.mkdir(parents=True)
    proc = snakemake(tmp_path, cfg, "--keep-going", "results/tiny/members.csv", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "waits for members that did not finish" in out
    assert "tiny: m000 (job logs: results/logs/train/tiny/m000.log)" in out  # m001 finished: not named
    assert (tmp_path / "results" / "tiny" / "members" / "m001" / "params.json").exists()
