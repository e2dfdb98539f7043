"""Check that NWB files follow the NLB layout nlb_tools needs, before nlb_tools trips over them.

nlb_tools fails on bad input with bare KeyErrors/AttributeErrors deep inside pandas (or, worse, drops a
behaviour series with only a log warning). These checks turn every such case into one error that names
the file and the missing field. The field lists are read from nlb_tools' own PARAMS table.
"""
from __future__ import annotations

from pathlib import Path

from stndt.datasets import nlb_dataset


class NWBLayoutError(ValueError):
    """An NWB file does not follow the NLB layout its dataset entry declares."""


# Fields that nlb_tools reads through lambdas in PARAMS (decode masks, jitter, skip masks), which cannot
# be introspected; everything else is derived from PARAMS below.
_LAMBDA_FIELDS = {"area2_bump": ("ctr_hold_bump",), "dmfc_rsg": ("is_outlier", "tp")}
_UNIT_FIELDS = ("spike_times", "obs_intervals", "heldout")


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


def _check_units(path: Path, nwbfile, is_train: bool) -> list[bool]:
    if nwbfile.units is None:
        raise NWBLayoutError(f"{path}: no units table (field 'units')")
    for field in _UNIT_FIELDS:
        if field not in nwbfile.units.colnames:
            raise NWBLayoutError(f"{path}: units table has no '{field}' column")
    heldout = [bool(h) for h in nwbfile.units["heldout"][:]]
    if is_train and not any(heldout):
        raise NWBLayoutError(f"{path}: no held-out units (units 'heldout' is False for every unit); "
                             "the train file of an NLB dataset must contain held-out units")
    return heldout


def check_nwb_file(path: Path, layout: str) -> dict:
    """Check one file; return a summary {splits, n_heldin, n_heldout}. Raises NWBLayoutError naming the field."""
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
        heldout = _check_units(path, nwbfile, is_train)
        needed = train_trial_fields(layout) if is_train else window_fields(layout)
        missing = sorted(needed - trial_cols)
        if missing:
            raise NWBLayoutError(f"{path}: trials table lacks field(s) {missing} required by the {layout} layout")
        if is_train:
            series = behaviour_series(layout)
            if series and series not in _timeseries_names(nwbfile):
                raise NWBLayoutError(f"{path}: no behaviour TimeSeries named '{series}' in acquisition or "
                                     f"a processing module (required by the {layout} layout)")
        return {"splits": splits, "n_heldin": heldout.count(False), "n_heldout": heldout.count(True)}
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
    heldin = {s["n_heldin"] for s in summaries.values()}
    if len(heldin) > 1:
        raise NWBLayoutError(f"{raw_dir}: files disagree on the number of held-in units: "
                             + ", ".join(f"{f.name}: {s['n_heldin']}" for f, s in summaries.items()))
    return files
