"""The data stage run by Snakemake itself: synthetic, local and (planned) DANDI sources."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import snakemake, write_config

from stndt.datasets import NLB_DATASETS

TINY = {"n_heldin": 12, "n_heldout": 4, "n_train": 24, "n_val": 8, "n_test": 8}


def test_dandi_config_plans_download_of_all_seven_datasets(tmp_path: Path):
    cfg = write_config(tmp_path / "c.yaml", {"datasets": {n: {"source": "dandi"} for n in NLB_DATASETS}})
    out = snakemake(tmp_path, cfg, "-n", "data").stdout
    assert "download" in out
    for name in NLB_DATASETS:
        assert f"results/{name}/raw" in out


def test_bad_config_key_stops_the_run_and_names_it(tmp_path: Path):
    cfg = write_config(
        tmp_path / "c.yaml", {"datasets": {"syn": {"source": "synthetic", "layout": "mc_maze", "n_trials": 3}}}
    )
    proc = snakemake(tmp_path, cfg, "-n", "data", check=False)
    assert proc.returncode != 0 and "n_trials" in proc.stdout + proc.stderr
    cfg = write_config(tmp_path / "c.yaml", {"datasets": {"syn": {"source": "synthetic", "layout": "mc_mazz"}}})
    proc = snakemake(tmp_path, cfg, "-n", "data", check=False)
    assert proc.returncode != 0 and "datasets.syn.layout" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_local_dataset_goes_through_the_same_rules_and_a_replaced_file_rebuilds(tiny_run, tmp_path: Path):
    """The user's own NLB-format files (here: a copy of the session's tiny synthetic ones, built once)."""
    raw = tiny_run.results / "tiny" / "raw"
    with h5py.File(tiny_run.results / "tiny" / "tensors" / "val.h5") as f:  # the synthetic source's tensors
        assert f.attrs["phase"] == "val" and "targets/mc_maze_20/eval_spikes_heldout" in f
    mine = tmp_path / "my data"
    shutil.copytree(raw, mine)
    local = write_config(
        tmp_path / "l.yaml",
        {
            "results_dir": "local_results",
            "datasets": {"mine": {"source": "local", "layout": "mc_maze", "path": str(mine)}},
        },
    )
    snakemake(tmp_path, local, "data")
    tensors = tmp_path / "local_results" / "mine" / "tensors" / "val.h5"
    with h5py.File(tmp_path / "local_results" / "mine" / "tensors" / "test.h5") as f:
        assert "targets" not in f  # no hidden targets for a user's real test split
    with h5py.File(tensors) as f:
        before = f["train_spikes_heldin"][()]
    assert (tmp_path / "local_results" / "mine" / "figures" / "data_overview.png").stat().st_size > 10_000
    assert "Nothing to be done" in snakemake(tmp_path, local, "-n", "data").stdout  # never redone

    # the user replaces a file with a different recording: what depends on it is rebuilt
    other = tmp_path / "other"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "stndt.cli",
            "synthesize",
            "--layout",
            "mc_maze",
            "--raw",
            str(other),
            "--hidden",
            str(tmp_path / "other_full.nwb"),
            "--params",
            json.dumps({**TINY, "n_conditions": 4}),
            "--seed",
            "7",
        ],
        check=True,
        capture_output=True,
    )
    train_file = next(mine.glob("*train*.nwb"))
    shutil.copyfile(other / train_file.name, train_file)
    plan = snakemake(tmp_path, local, "-n", "data")
    assert "link_local" in plan.stdout and "tensors" in plan.stdout
    snakemake(tmp_path, local, "data")
    with h5py.File(tensors) as f:
        assert not np.array_equal(f["train_spikes_heldin"][()], before)
