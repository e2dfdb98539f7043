"""The cost plan (python -m stndt.cli plan) and the GPU guard of training jobs."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import LOCAL_ENV, ROOT, TINY

from stndt.config import pipeline_config
from stndt.plan import epoch_range, job_counts, training_plan, window_bins
from stndt.train.device import NoGPUError, require_cuda


def test_epoch_range_runs_from_patience_to_the_epoch_cap():
    # patience 3000 checked every 20 epochs: the first validation at which 3000 epochs have passed
    # without improvement is epoch 3000 (best at 0) -> the member stops at 3020 at the earliest
    assert epoch_range({"patience": 3000, "val_every": 20, "max_epochs": 50000}) == (3020, 50000)
    assert epoch_range({"patience": 100, "val_every": 10, "max_epochs": 100}) == (100, 100)
    # a step floor of 200 steps is 40 epochs at 5 steps per epoch, 20 at 10: the larger patience counts
    train = {"patience": 20, "patience_steps": 200, "val_every": 5, "max_epochs": 400}
    assert epoch_range(train, steps_per_epoch=5) == (45, 400)
    assert epoch_range(train, steps_per_epoch=10) == (25, 400)
    assert epoch_range(train, steps_per_epoch=20) == (25, 400)  # 10 epochs < patience 20
    # the cap's floor of 4,000 steps: 800 epochs at 5 steps per epoch, the 400-epoch cap at 10
    assert epoch_range({**train, "max_steps": 4000}, steps_per_epoch=5) == (45, 800)
    assert epoch_range({**train, "max_steps": 4000}, steps_per_epoch=10) == (25, 400)
    # a cool-down of half the epochs trained when the rule fires (25 -> 12.5, i.e. 15: whole intervals)
    assert epoch_range({**train, "cooldown_fraction": 0.5}, steps_per_epoch=10) == (40, 400)
    assert epoch_range({"patience": 100, "val_every": 10, "max_epochs": 100, "cooldown_fraction": 0.5}) == (100, 100)


def test_nlb_windows_come_from_nlb_tools():
    assert window_bins("mc_maze", 5) == (140, 40)  # [-250, 450) ms and 200 ms forward
    assert window_bins("dmfc_rsg", 5) == (300, 40)  # [-1500, 0) ms
    assert window_bins("mc_maze", 20) == (35, 10)


def test_training_plan_multiplies_members_steps_epochs_and_step_time():
    cfg = pipeline_config(yaml.safe_load((ROOT / "config" / "paper.yaml").read_text()), root=ROOT)
    rows = {(r["dataset"], r["variant"]): r for r in training_plan(cfg, step_s=0.1)}
    assert len(rows) == 7 * 3
    r = rows[("mc_maze", "stndt")]
    # 120 members x ceil(1721 / 64) = 27 steps x 3020..50501 epochs (the reference's NUM_UPDATES) x 0.1 s
    assert (r["members"], r["steps/epoch"], r["epochs min"], r["epochs max"]) == (120, 27, 3020, 50501)
    assert r["hours min"] == pytest.approx(120 * 27 * 3020 * 0.1 / 3600)
    assert r["hours max"] == pytest.approx(120 * 27 * 50501 * 0.1 / 3600)
    assert rows[("dmfc_rsg", "ndt")]["members"] == 20 and rows[("dmfc_rsg", "ndt")]["epochs min"] == 4020


def test_job_counts_are_snakemakes_own(monkeypatch):
    monkeypatch.setenv("PATH", LOCAL_ENV["PATH"])  # no 10 s wait on an absent SLURM controller (conftest)
    counts = job_counts(TINY)
    # tiny: 2 members of each of 3 variants, one dataset; STNDT's set by `train`, the others' by its twin
    assert counts["train"] == 2 and counts["train_variant"] == 4 and counts["synthesize"] == 1
    assert counts["ensemble"] == 1 and counts["ensemble_variant"] == 2 and counts["all"] == 1
    # one member per job: the training job writes the member folder, no link job
    assert not {"member", "member_variant", "train_pack", "train_pack_variant"} & set(counts)


def test_measured_step_time_is_positive_and_small_for_the_tiny_model():
    cfg = pipeline_config(yaml.safe_load(TINY.read_text()), root=ROOT)
    rows = training_plan(cfg, measure_device="cpu")
    assert all(0 < r["s/step"] < 5 for r in rows)
    ndt = next(r for r in rows if r["variant"] == "ndt")
    assert ndt["hours max"] > 0


def test_require_cuda_refuses_a_cpu_only_machine():
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the guard lets it through")
    with pytest.raises(NoGPUError, match="CUDA is not available.*Refusing to train on the CPU"):
        require_cuda(1)


def test_train_command_with_a_gpu_fails_within_seconds(tmp_path: Path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    t0 = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "stndt.cli",
            "train",
            "--val",
            str(tmp_path / "missing.h5"),
            "--out",
            str(tmp_path / "m000"),
            "--params",
            "{}",
            "--gpus",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1 and "CUDA is not available" in proc.stderr
    assert time.monotonic() - t0 < 30
    assert not (tmp_path / "m000").exists()  # failed before touching the member folder
