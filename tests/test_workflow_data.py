"""The data stage run by Snakemake itself: synthetic, local and (planned) DANDI sources."""
from __future__ import annotations

import shutil
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
    cfg = write_config(tmp_path / "c.yaml", {"datasets": {"syn": {"source": "synthetic", "layout": "mc_maze",
                                                                  "n_trials": 3}}})
    proc = snakemake(tmp_path, cfg, "-n", "data", check=False)
    assert proc.returncode != 0 and "n_trials" in proc.stdout + proc.stderr
    cfg = write_config(tmp_path / "c.yaml", {"datasets": {"syn": {"source": "synthetic", "layout": "mc_mazz"}}})
    proc = snakemake(tmp_path, cfg, "-n", "data", check=False)
    assert proc.returncode != 0 and "datasets.syn.layout" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_data_target_builds_synthetic_and_local_datasets(tmp_path: Path):
    cfg = write_config(tmp_path / "c.yaml", {"datasets": {"syn": {"source": "synthetic", "layout": "mc_maze",
                                                                  "synthetic": TINY}}})
    snakemake(tmp_path, cfg, "data")
    res = tmp_path / "results" / "syn"
    for phase in ("val", "test"):
        with h5py.File(res / "tensors" / f"{phase}.h5") as f:
            assert f.attrs["phase"] == phase and "targets/mc_maze/eval_spikes_heldout" in f
    assert (res / "truth.h5").exists() and (res / "figures" / "data_overview.png").stat().st_size > 10_000
    rerun = snakemake(tmp_path, cfg, "-n", "data")
    assert "Nothing to be done" in rerun.stdout + rerun.stderr  # finished outputs are never redone

    # the user's own files (here: a copy of the synthetic ones) go through the same rules
    mine = tmp_path / "my data"
    shutil.copytree(res / "raw", mine)
    local = write_config(tmp_path / "l.yaml", {"results_dir": "local_results", "datasets": {
        "mine": {"source": "local", "layout": "mc_maze", "path": str(mine)}}})
    snakemake(tmp_path, local, "data")
    tensors = tmp_path / "local_results" / "mine" / "tensors" / "val.h5"
    with h5py.File(tmp_path / "local_results" / "mine" / "tensors" / "test.h5") as f:
        assert "targets" not in f  # no hidden targets for a user's real test split
    with h5py.File(tensors) as f:
        before = f["train_spikes_heldin"][()]

    # the user replaces a file with a different recording: what depends on it is rebuilt
    other = write_config(tmp_path / "o.yaml", {"results_dir": "other", "seed": 7, "datasets": {
        "syn": {"source": "synthetic", "layout": "mc_maze", "synthetic": TINY}}})
    snakemake(tmp_path, other, "data")
    train_file = next(mine.glob("*train*.nwb"))
    shutil.copyfile(tmp_path / "other" / "syn" / "raw" / train_file.name, train_file)
    plan = snakemake(tmp_path, local, "-n", "data")
    assert "link_local" in plan.stdout and "tensors" in plan.stdout
    snakemake(tmp_path, local, "data")
    with h5py.File(tensors) as f:
        assert not np.array_equal(f["train_spikes_heldin"][()], before)
