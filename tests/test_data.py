"""Data layer: nlb_tools tensors from NLB-layout NWB files, and named errors for bad input."""

from __future__ import annotations

import re
import shutil
from datetime import datetime, timezone
from pathlib import Path

import h5py
import numpy as np
import pytest

from stndt.cli import main as cli
from stndt.data.nwb_checks import NWBLayoutError, check_nwb_file, check_raw_dir
from stndt.data.synthetic import SyntheticConfig, generate
from stndt.data.tensors import build_phase
from stndt.datasets import nlb_key

TINY = SyntheticConfig(n_heldin=12, n_heldout=4, n_train=24, n_val=8, n_test=8, seed=1)


@pytest.fixture(scope="module")
def maze(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("maze")
    generate("mc_maze", root / "raw", root / "truth" / "full.nwb", TINY)
    return root / "raw", root / "truth" / "full.nwb"


def test_val_phase_tensors_use_nlb_tools_key_names(maze):
    raw, _ = maze
    data = build_phase(raw, "mc_maze", "val", 5)
    n_in, n_out = TINY.n_heldin, TINY.n_heldout
    assert data["train_spikes_heldin"].shape == (TINY.n_train, 140, n_in)
    assert data["train_spikes_heldout"].shape == (TINY.n_train, 140, n_out)
    assert data["train_spikes_heldin_forward"].shape == (TINY.n_train, 40, n_in)
    assert data["eval_spikes_heldin"].shape == (TINY.n_val, 140, n_in)
    targets = data["targets"][nlb_key("mc_maze", 5)]
    assert targets["eval_spikes_heldout"].shape == (TINY.n_val, 140, n_out)
    assert {"train_behavior", "eval_behavior", "psth", "eval_cond_idx"} <= set(targets)
    # the same spikes reach nlb_tools' eval inputs and targets
    np.testing.assert_array_equal(data["eval_spikes_heldout"], targets["eval_spikes_heldout"])


def test_test_phase_trains_on_train_and_val_and_scores_from_hidden_file(maze):
    raw, hidden = maze
    public = build_phase(raw, "mc_maze", "test", 5)
    assert "targets" not in public  # real NLB test files withhold the targets
    data = build_phase(raw, "mc_maze", "test", 5, hidden_path=hidden)
    assert len(data["train_spikes_heldin"]) == TINY.n_train + TINY.n_val
    assert len(data["eval_spikes_heldin"]) == TINY.n_test
    target = data["targets"]["mc_maze"]
    assert target["eval_spikes_heldout"].shape == (TINY.n_test, 140, TINY.n_heldout)


def test_20ms_bins_use_suffixed_target_key(maze):
    data = build_phase(maze[0], "mc_maze", "val", 20)
    assert list(data["targets"]) == ["mc_maze_20"] and data["eval_spikes_heldin"].shape[1] == 35


def _copy_raw(raw: Path, dest: Path) -> Path:
    shutil.copytree(raw, dest)
    return dest


def _train_file(raw: Path) -> Path:
    return next(raw.glob("*desc-train*.nwb"))


def _write_nwb(path: Path, *, trials: bool = True, heldout: bool = True) -> Path:
    """A small NWB file written through pynwb with chosen parts missing."""
    from pynwb import NWBHDF5IO, NWBFile

    nwb = NWBFile(session_description="bad input", identifier="bad", session_start_time=datetime.now(timezone.utc))
    nwb.add_unit_column("heldout", "held-out unit")
    for i in range(3):
        nwb.add_unit(spike_times=[0.1 * (i + 1)], heldout=heldout and i == 2, obs_intervals=[[0.0, 2.0]])
    if trials:
        nwb.add_trial_column("split", "split")
        nwb.add_trial_column("move_onset_time", "alignment")
        nwb.add_trial(start_time=0.0, stop_time=1.0, split="train", move_onset_time=0.5)
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return path


def test_truncated_file_names_the_file(maze, tmp_path):
    raw = _copy_raw(maze[0], tmp_path / "raw")
    f = _train_file(raw)
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 3])
    with pytest.raises(NWBLayoutError, match=re.escape(f.name) + ".*cannot be read as an NWB file"):
        check_raw_dir(raw, "mc_maze")


def test_missing_trials_table_is_named(tmp_path):
    f = _write_nwb(tmp_path / "x.nwb", trials=False)
    with pytest.raises(NWBLayoutError, match=r"x\.nwb: no trials table"):
        check_nwb_file(f, "mc_maze")


def test_no_heldout_units_is_named(tmp_path):
    f = _write_nwb(tmp_path / "x.nwb", heldout=False)
    with pytest.raises(NWBLayoutError, match=r"x\.nwb: no held-out units"):
        check_nwb_file(f, "mc_maze")


def test_missing_file_and_empty_folder(tmp_path):
    with pytest.raises(NWBLayoutError, match="does not exist"):
        check_nwb_file(tmp_path / "nope.nwb", "mc_maze")
    with pytest.raises(NWBLayoutError, match="no .nwb files"):
        check_raw_dir(tmp_path, "mc_maze")


@pytest.mark.parametrize(
    "layout, missing", [("dmfc_rsg", "go_time"), ("area2_bump", "ctr_hold_bump"), ("mc_rtt", "finger_vel")]
)
def test_layout_mismatch_names_the_missing_field(maze, layout, missing):
    with pytest.raises(NWBLayoutError, match=missing):
        check_raw_dir(maze[0], layout)


def test_missing_test_split_is_named(maze, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    shutil.copy(_train_file(maze[0]), raw)
    check_raw_dir(raw, "mc_maze", need_test=False)
    with pytest.raises(NWBLayoutError, match="no trials with split 'test'"):
        check_raw_dir(raw, "mc_maze", need_test=True)


def test_failed_cli_leaves_no_output(maze, tmp_path):
    raw = _copy_raw(maze[0], tmp_path / "raw")
    f = _train_file(raw)
    f.write_bytes(f.read_bytes()[:1000])
    out = tmp_path / "tensors" / "val.h5"
    assert cli(["tensors", "--raw", str(raw), "--layout", "mc_maze", "--phase", "val", "--out", str(out)]) == 1
    assert not out.exists()
    leftovers = list(out.parent.glob("*")) if out.parent.exists() else []
    assert leftovers == []  # no temporary file that could be mistaken for a result


def test_cli_writes_attrs(maze, tmp_path):
    out = tmp_path / "val.h5"
    assert cli(["tensors", "--raw", str(maze[0]), "--layout", "mc_maze", "--phase", "val", "--out", str(out)]) == 0
    with h5py.File(out) as f:
        assert dict(f.attrs) == {"layout": "mc_maze", "phase": "val", "bin_width_ms": 5}
        assert "targets/mc_maze/eval_spikes_heldout" in f


def test_link_local_refuses_bad_files_and_links_good_ones(maze, tmp_path):
    out = tmp_path / "linked"
    assert cli(["link-local", "--src", str(maze[0]), "--layout", "mc_maze", "--out", str(out)]) == 0
    assert all(p.is_symlink() for p in out.iterdir()) and len(list(out.iterdir())) == 2
    bad = tmp_path / "bad_out"
    assert cli(["link-local", "--src", str(maze[0]), "--layout", "dmfc_rsg", "--out", str(bad)]) == 1
    assert not bad.exists()
