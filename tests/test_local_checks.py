"""Checks of a user's NLB-format files that nlb_tools itself skips: unit ids shared by the train and
test files, and spike times it can bin. Each case is a copy of a tiny synthetic recording with one
field edited in place (h5py), so everything else about the files is known to be valid."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from stndt.data import tensors
from stndt.data.nwb_checks import NWBLayoutError, check_raw_dir
from stndt.data.synthetic import SyntheticConfig, generate
from stndt.data.tensors import build_phase

TINY = SyntheticConfig(n_heldin=12, n_heldout=4, n_train=24, n_val=8, n_test=8, seed=1)
UNIT = 3  # the unit whose spikes the tests corrupt (held-in in both files)


@pytest.fixture(scope="module")
def maze(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("maze")
    generate("mc_maze", root / "raw", root / "truth" / "full.nwb", TINY)
    return root / "raw"


@pytest.fixture
def raw(maze: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny recording's raw folder, to edit."""
    return Path(shutil.copytree(maze, tmp_path / "raw"))


def _file(raw: Path, desc: str) -> Path:
    return next(raw.glob(f"*desc-{desc}*.nwb"))


def _edit_units(path: Path, field: str, edit) -> None:
    """Replace a units dataset (`id`, `spike_times`, `obs_intervals`) with edit(old values, units group)."""
    with h5py.File(path, "r+") as f:
        units = f["units"]
        units[field][...] = edit(units[field][...], units)


def _first_spike(units: h5py.Group, unit: int) -> int:
    """Flat position of `unit`'s first spike in the spike_times column."""
    return 0 if unit == 0 else int(units["spike_times_index"][unit - 1])


def _set_spike(value: float):
    def edit(times: np.ndarray, units: h5py.Group) -> np.ndarray:
        times[_first_spike(units, UNIT)] = value
        return times

    return edit


# ---------------------------------------------------------------- unit ids (issue 17, point 5)
def test_heldin_unit_ids_must_match_between_train_and_test_files(raw):
    train, test = _file(raw, "train"), _file(raw, "test")
    _edit_units(test, "id", lambda ids, _: np.where(ids == UNIT, 99, ids))  # same count, one id differs
    pattern = (
        f"held-in unit ids differ between {re.escape(train.name)} .* and {re.escape(test.name)} .*"
        rf"Only in {re.escape(train.name)}: \[{UNIT}\]; only in {re.escape(test.name)}: \[99\]"
    )
    with pytest.raises(NWBLayoutError, match=pattern):
        check_raw_dir(raw, "mc_maze")
    # tensor building stops at the check, before nlb_tools fills every row with NaN
    with pytest.raises(NWBLayoutError, match="held-in unit ids differ"):
        build_phase(raw, "mc_maze", "val", 5)


def test_heldin_unit_ids_may_come_in_another_order(raw):
    """nlb_tools joins the files on unit ids (sorted), so only the set of ids has to match."""
    _edit_units(_file(raw, "test"), "id", lambda ids, _: ids[::-1])
    check_raw_dir(raw, "mc_maze")


def test_duplicate_unit_ids_are_named(raw):
    test = _file(raw, "test")
    _edit_units(test, "id", lambda ids, _: np.where(ids == UNIT, 0, ids))
    with pytest.raises(NWBLayoutError, match=re.escape(test.name) + r": held-in units share the id\(s\) \[0\]"):
        check_raw_dir(raw, "mc_maze")


# ---------------------------------------------------------------- spike times (issue 20, point 1)
@pytest.mark.parametrize(
    "value, problem",
    [
        (-0.5, "is -0.5 s, negative"),
        (np.nan, "is nan s, not a finite number"),
        (1e4, r"is 10000.0 s, past the end of the recording at \d+\.\d+ s \(the latest end in .obs_intervals.\)"),
    ],
)
def test_bad_spike_time_names_file_unit_and_field(raw, value, problem):
    train = _file(raw, "train")
    _edit_units(train, "spike_times", _set_spike(value))
    with pytest.raises(
        NWBLayoutError,
        match=re.escape(f"{train}: unit id {UNIT} (units row {UNIT}), field 'spike_times': spike 0 of the unit ")
        + problem,
    ):
        check_raw_dir(raw, "mc_maze")


def test_spike_outside_the_units_obs_intervals_is_named(raw):
    train = _file(raw, "train")

    def shorten(intervals: np.ndarray, units: h5py.Group) -> np.ndarray:
        intervals[int(units["obs_intervals_index"][UNIT]) - 1] = [0.0, 1.0]  # observed for 1 s only
        return intervals

    _edit_units(train, "obs_intervals", shorten)
    pattern = (
        re.escape(f"{train}: unit id {UNIT} (units row {UNIT}), field 'spike_times'")
        + r".*outside the unit's 'obs_intervals' \[\[0\.0, 1\.0\]\]"
    )
    with pytest.raises(NWBLayoutError, match=pattern):
        check_raw_dir(raw, "mc_maze")


@pytest.mark.filterwarnings("ignore:invalid value encountered in cast:RuntimeWarning")  # nlb_tools on NaN
def test_any_nlb_tools_error_names_the_folder_and_step(raw, monkeypatch):
    """Whatever escapes nlb_tools (here its IndexError on a NaN spike time, with the checks bypassed)
    comes back as one error naming the dataset folder and the step, the original kept as the cause."""
    _edit_units(_file(raw, "train"), "spike_times", _set_spike(np.nan))
    monkeypatch.setattr(tensors, "check_raw_dir", lambda *a, **k: None)
    with pytest.raises(
        NWBLayoutError,
        match=re.escape(f"{raw}: nlb_tools could not load the NWB data and rebin it to 5 ms: IndexError"),
    ) as err:
        build_phase(raw, "mc_maze", "val", 5)
    assert isinstance(err.value.__cause__, IndexError)
