"""Check that NWB files follow the NLB layout nlb_tools needs, before nlb_tools trips over them.

nlb_tools fails on bad input with bare KeyErrors/AttributeErrors deep inside pandas (or, worse, drops a
behaviour series with only a log warning). These checks turn every such case into one error that names
the file and the missing field. The field lists are read from nlb_tools' own PARAMS table.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stndt.datasets import nlb_dataset


class NWBLayoutError(ValueError):
    """An NWB file does not follow the NLB layout its dataset entry declares."""


# Fields that nlb_tools reads through lambdas in PARAMS (decode masks, jitter, skip masks), which cannot
# be introspected; everything else is derived from PARAMS below.
_LAMBDA_FIELDS = {"area2_bump": ("ctr_hold_bump",), "dmfc_rsg": ("is_outlier", "tp")}
_UNIT_FIELDS = ("spike_times", "obs_intervals", "heldout")
_SHOWN_IDS = 5  # mismatching unit ids quoted in an error message


def _params(layout: str) -> dict:
    from nlb_tools.make_tensors import PARAMS

    nlb_dataset(layout)  # raises a clear error for unknown names
    return PARAMS[layout]


def window_fields(layout: str) -> set[str]:
    """Trial fields that define the tensor windows (needed in train and test files alike)."""
    p = _params(layout)
    fields = set()
    for mp in (p["make_params"], p["eval_make_params"]):
        fields |= {mp[k] for k in ("align_field", "start_field", "end_field") if k in mp}
    return fields


def train_trial_fields(layout: str) -> set[str]:
    """Trial fields the train file must have: windows, PSTH conditions, trial-level behaviour."""
    p = _params(layout)
    fields = window_fields(layout) | set(_LAMBDA_FIELDS.get(layout, ()))
    if "psth_params" in p:
        fields |= set(p["psth_params"]["cond_fields"])
        mp = p["psth_params"]["make_params"]
        fields |= {mp[k] for k in ("align_field", "start_field", "end_field") if k in mp}
    if p["behavior_source"] == "trial_info":
        fields |= set(p["behavior_field"])
    return fields


def behaviour_series(layout: str) -> str | None:
    """Name of the continuous behaviour TimeSeries nlb_tools loads, or None for trial-level behaviour."""
    p = _params(layout)
    return p["behavior_field"] if p["behavior_source"] == "data" else None


def _timeseries_names(nwbfile) -> set[str]:
    """TimeSeries names as nlb_tools' loader sees them (top level of acquisition / processing modules)."""
    from pynwb import ProcessingModule, TimeSeries

    names = set()
    for child in nwbfile.children:
        if isinstance(child, TimeSeries):
            names.add(child.name)
        elif isinstance(child, ProcessingModule):
            names |= {c.name for c in child.children if isinstance(c, TimeSeries)}
    return names


def _ragged(units, name: str) -> tuple[np.ndarray, np.ndarray]:
    """A units column read whole: (values of all rows, each row's start offset into them, n_rows + 1 long).

    Reading the flat dataset once keeps the checks fast on files with millions of spikes; going through
    `units[name][i]` row by row would build one array per unit and read HDF5 once per row.
    """
    from hdmf.common import VectorIndex

    col = units[name]
    if isinstance(col, VectorIndex):
        values, ends = np.asarray(col.target.data[:]), np.asarray(col.data[:], dtype=np.int64)
    else:  # one value (or one [start, end] pair) per row
        values = np.asarray(col.data[:])
        ends = np.arange(1, len(values) + 1, dtype=np.int64)
    return values, np.concatenate([[0], ends])


def _unit_label(path: Path, ids: np.ndarray, row: int, field: str) -> str:
    return f"{path}: unit id {ids[row]} (units row {row}), field '{field}'"


def _row_of(offsets: np.ndarray, position: int) -> int:
    """Row of a ragged column that holds flat value number `position`."""
    return int(np.searchsorted(offsets, position, side="right") - 1)


def _check_obs_intervals(path: Path, ids: np.ndarray, intervals: np.ndarray, offsets: np.ndarray) -> None:
    """Every unit needs finite [start, end] pairs: nlb_tools takes the data end from each unit's last
    pair (`x[-1][-1]`, an IndexError for a unit without one) and masks bins outside them."""
    if intervals.ndim != 2 or intervals.shape[1] != 2:
        raise NWBLayoutError(
            f"{path}: units 'obs_intervals' has shape {intervals.shape[1:]} per interval; "
            "it must hold [start, end] pairs in seconds"
        )
    empty = np.flatnonzero(np.diff(offsets) == 0)
    if len(empty):
        raise NWBLayoutError(
            f"{_unit_label(path, ids, int(empty[0]), 'obs_intervals')} is empty; every unit "
            "needs at least one [start, end] interval"
        )
    bad = np.flatnonzero(~np.isfinite(intervals).all(axis=1) | (intervals[:, 0] > intervals[:, 1]))
    if len(bad):
        row = _row_of(offsets, int(bad[0]))
        raise NWBLayoutError(
            f"{_unit_label(path, ids, row, 'obs_intervals')} has the interval "
            f"{intervals[bad[0]].tolist()}; intervals must be finite with start <= end"
        )


def _recording_end_ms(intervals: np.ndarray, offsets: np.ndarray) -> int:
    """Number of 1 ms bins nlb_tools allocates: the latest end among the units' last obs_intervals rows."""
    return max(int(round(float(intervals[offsets[1:] - 1, 1].max()) * 1000.0)), 0)


def _outside(times: np.ndarray, intervals: np.ndarray) -> np.ndarray:
    """Mask of `times` inside none of the closed [start, end] `intervals` (any order, may overlap)."""
    order = np.argsort(intervals[:, 0], kind="stable")
    starts, ends = intervals[order, 0], np.maximum.accumulate(intervals[order, 1])
    last = np.searchsorted(starts, times, side="right") - 1  # last interval starting at or before t
    return (last < 0) | (times > ends[np.maximum(last, 0)])


def _spike_error(
    path: Path, ids: np.ndarray, offsets: np.ndarray, bad: np.ndarray, times: np.ndarray, what: str
) -> NWBLayoutError:
    """Error for the first offending spike (flat position bad[0]), with how many there are in all."""
    first = int(bad[0])
    row = _row_of(offsets, first)
    more = f" ({len(bad)} such spike times in this file)" if len(bad) > 1 else ""
    return NWBLayoutError(
        f"{_unit_label(path, ids, row, 'spike_times')}: spike {first - offsets[row]} of the "
        f"unit is {times[first]} s, {what}{more}"
    )


def _check_spike_times(path: Path, units, ids: np.ndarray) -> None:
    """Spike times nlb_tools can bin: it indexes a 1 ms grid with int(t * 1000) without any check, so a
    negative time wraps to the end of the recording (a spurious spike), NaN or a time past the end gives
    a bare IndexError, and a spike outside its unit's obs_intervals is silently dropped (or counted: nlb_tools
    masks every unit with the first unit's intervals)."""
    if len(ids) == 0:
        return
    intervals, iv_offsets = _ragged(units, "obs_intervals")
    intervals = intervals.astype(float, copy=False)
    _check_obs_intervals(path, ids, intervals, iv_offsets)
    times, offsets = _ragged(units, "spike_times")
    times = times.astype(float, copy=False)
    bad = np.flatnonzero(~np.isfinite(times))
    if len(bad):
        raise _spike_error(path, ids, offsets, bad, times, "not a finite number")
    bad = np.flatnonzero(times < 0)
    if len(bad):
        raise _spike_error(
            path,
            ids,
            offsets,
            bad,
            times,
            "negative; spike times are seconds from the "
            "start of the recording (nlb_tools would wrap it to the end of the recording)",
        )
    n_bins = _recording_end_ms(intervals, iv_offsets)
    bad = np.flatnonzero(np.round(times * 1000.0, 6).astype(np.int64) >= n_bins)  # nlb_tools' own binning
    if len(bad):
        raise _spike_error(
            path,
            ids,
            offsets,
            bad,
            times,
            f"past the end of the recording at {n_bins / 1000} s "
            "(the latest end in 'obs_intervals'); nlb_tools cannot bin it",
        )
    for row in range(len(ids)):  # one vectorised pass per unit (hundreds), never one per spike
        lo, hi = offsets[row], offsets[row + 1]
        out = np.flatnonzero(_outside(times[lo:hi], intervals[iv_offsets[row] : iv_offsets[row + 1]]))
        if len(out):
            raise _spike_error(
                path,
                ids,
                offsets,
                lo + out,
                times,
                "outside the unit's 'obs_intervals' "
                f"{intervals[iv_offsets[row] : iv_offsets[row + 1]].tolist()}, when the unit was not "
                "observed",
            )


def _check_units(path: Path, nwbfile, is_train: bool) -> tuple[np.ndarray, np.ndarray]:
    """Check the units table; return (unit ids, held-out mask)."""
    if nwbfile.units is None:
        raise NWBLayoutError(f"{path}: no units table (field 'units')")
    for field in _UNIT_FIELDS:
        if field not in nwbfile.units.colnames:
            raise NWBLayoutError(f"{path}: units table has no '{field}' column")
    ids = np.asarray(nwbfile.units.id[:])
    heldout = np.asarray(nwbfile.units["heldout"][:], dtype=bool)
    if is_train and not heldout.any():
        raise NWBLayoutError(
            f"{path}: no held-out units (units 'heldout' is False for every unit); "
            "the train file of an NLB dataset must contain held-out units"
        )
    for group, mask in (("held-in", ~heldout), ("held-out", heldout)):
        uniq, counts = np.unique(ids[mask], return_counts=True)
        if (counts > 1).any():  # nlb_tools labels spike columns by id; pandas cannot align duplicates
            raise NWBLayoutError(
                f"{path}: {group} units share the id(s) {uniq[counts > 1][:_SHOWN_IDS].tolist()} "
                "(units table 'id'); unit ids must be unique"
            )
    _check_spike_times(path, nwbfile.units, ids)
    return ids, heldout


def check_nwb_file(path: Path, layout: str) -> dict:
    """Check one file; return a summary {splits, heldin_ids, n_heldin, n_heldout}. Raises NWBLayoutError
    naming the field."""
    from pynwb import NWBHDF5IO

    path = Path(path)
    if not path.exists():
        raise NWBLayoutError(f"{path}: file does not exist")
    try:
        io = NWBHDF5IO(str(path), "r")
        nwbfile = io.read()
    except Exception as e:  # truncated or non-NWB files fail in h5py or hdmf with many exception types
        raise NWBLayoutError(f"{path}: cannot be read as an NWB file (truncated or not NWB?): {e}") from e
    try:
        if nwbfile.trials is None:
            raise NWBLayoutError(f"{path}: no trials table (field 'trials')")
        trial_cols = set(nwbfile.trials.colnames) | {"start_time", "stop_time"}
        if "split" not in trial_cols:
            raise NWBLayoutError(f"{path}: trials table has no 'split' column")
        splits = set(nwbfile.trials["split"][:])
        bad = splits - {"train", "val", "test", "none"}
        if bad:
            raise NWBLayoutError(f"{path}: trials 'split' has values {sorted(bad)}; allowed: train, val, test, none")
        is_train = bool(splits & {"train", "val"})
        ids, heldout = _check_units(path, nwbfile, is_train)
        needed = train_trial_fields(layout) if is_train else window_fields(layout)
        missing = sorted(needed - trial_cols)
        if missing:
            raise NWBLayoutError(f"{path}: trials table lacks field(s) {missing} required by the {layout} layout")
        if is_train:
            series = behaviour_series(layout)
            if series and series not in _timeseries_names(nwbfile):
                raise NWBLayoutError(
                    f"{path}: no behaviour TimeSeries named '{series}' in acquisition or "
                    f"a processing module (required by the {layout} layout)"
                )
        return {
            "splits": splits,
            "heldin_ids": np.sort(ids[~heldout]),
            "n_heldin": int((~heldout).sum()),
            "n_heldout": int(heldout.sum()),
        }
    finally:
        io.close()


def check_raw_dir(raw_dir: Path, layout: str, need_test: bool = True) -> list[Path]:
    """Check every NWB file of a dataset folder: train+val trials present, test trials if `need_test`."""
    raw_dir = Path(raw_dir)
    files = sorted(raw_dir.glob("*.nwb"))
    if not files:
        raise NWBLayoutError(f"{raw_dir}: no .nwb files")
    summaries = {f: check_nwb_file(f, layout) for f in files}
    splits = set().union(*(s["splits"] for s in summaries.values()))
    for split in ("train", "val") + (("test",) if need_test else ()):
        if split not in splits:
            raise NWBLayoutError(f"{raw_dir}: no trials with split '{split}' in {[f.name for f in files]}")
    _check_same_heldin_ids(raw_dir, summaries)
    return files


def _check_same_heldin_ids(raw_dir: Path, summaries: dict[Path, dict]) -> None:
    """Every file must hold the train file's held-in unit ids (as a set; the order may differ).

    nlb_tools loads each file on its own, labels the spike columns by unit id and joins the files on
    those labels (pd.concat, join="outer"), sorted by id. Ids present in one file only become columns
    that are NaN for the whole of the other file, every trial is then dropped for its NaNs, and tensor
    building ends in "need at least one array to stack". Equal counts are not enough.
    """
    ref = next((f for f, s in summaries.items() if s["splits"] & {"train", "val"}), next(iter(summaries)))
    want = summaries[ref]["heldin_ids"]
    for f, s in summaries.items():
        have = s["heldin_ids"]
        if np.array_equal(have, want):
            continue
        only_ref = np.setdiff1d(want, have)[:_SHOWN_IDS].tolist()
        only_f = np.setdiff1d(have, want)[:_SHOWN_IDS].tolist()
        raise NWBLayoutError(
            f"{raw_dir}: held-in unit ids differ between {ref.name} ({len(want)} held-in units) and {f.name} "
            f"({len(have)} held-in units); nlb_tools matches units across the files by id (units table 'id'). "
            f"Only in {ref.name}: {only_ref}; only in {f.name}: {only_f} (at most {_SHOWN_IDS} shown each)"
        )
