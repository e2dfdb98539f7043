"""What each NLB layout asks of a recording, read from nlb_tools' PARAMS: alignment windows, behaviour
lag and field, the public test file's fields, file names and the trial columns of each layout family."""

from __future__ import annotations

from stndt.data.synthetic.config import SUBJECT

# nlb_tools' dmfc_rsg jitter lambda (not introspectable) shifts train/val windows by up to 300 ms.
_MAX_JITTER_MS = 300


def nlb_params(layout: str) -> dict:
    from nlb_tools.make_tensors import PARAMS

    return PARAMS[layout]


def behaviour_lag(layout: str) -> int:
    return int(nlb_params(layout).get("lag") or 0)


def window_extent(layout: str) -> tuple[str, int, int]:
    """(alignment field, ms before, ms after it) that one trial's data must cover without NaN.

    Covers nlb_tools' spike window, the forward-prediction bins, the behaviour window shifted by the lag
    and, for dmfc_rsg, the random jitter of train/val windows. Read from nlb_tools' PARAMS.
    """
    p = nlb_params(layout)
    lo, hi = p["make_params"]["align_range"]
    lag = behaviour_lag(layout)
    jitter = _MAX_JITTER_MS if "jitter" in p else 0
    return p["make_params"]["align_field"], -min(lo, lo + lag), max(hi + jitter + p["fp_len"], hi + lag)


def behaviour_name(layout: str) -> str | None:
    p = nlb_params(layout)
    return p["behavior_field"] if p["behavior_source"] == "data" else None


def test_file_fields(layout: str) -> set[str]:
    """Trial fields the public test file carries: only those that place nlb_tools' windows."""
    from stndt.data.nwb_checks import window_fields

    return window_fields(layout) - {"start_time", "end_time", "stop_time"}


def raw_file_names(layout: str) -> tuple[str, str]:
    """(train file, test file) names in the DANDI style nlb_tools' loaders expect."""
    ses = f"{SUBJECT}_ses-{layout}"
    return f"{ses}_desc-train_behavior+ecephys.nwb", f"{ses}_desc-test_ecephys.nwb"


# Trial columns per layout family (besides start_time, stop_time, split). '*_time' columns are times.
TRIAL_COLUMNS: dict[str, dict[str, str]] = {
    "mc_maze": {
        "target_on_time": "target onset",
        "go_cue_time": "go cue",
        "move_onset_time": "movement onset",
        "trial_type": "maze (reach condition) id",
        "trial_version": "maze version",
        "delay": "delay period (ms)",
        "rt": "reaction time (ms)",
    },
    "area2_bump": {
        "target_on_time": "target onset (NaN for bump trials)",
        "go_cue_time": "go cue (NaN for bump trials)",
        "bump_time": "bump onset (NaN for active trials)",
        "move_onset_time": "movement onset",
        "cond_dir": "reach or bump direction (deg)",
        "ctr_hold_bump": "passive bump during center hold",
    },
    "mc_rtt": {},
    "dmfc_rsg": {
        "ready_time": "Ready flash",
        "set_time": "Set flash",
        "go_time": "produced Go (response)",
        "is_eye": "eye (True) or hand (False) response",
        "theta": "target direction (deg)",
        "is_short": "short (True) or long (False) ts prior",
        "ts": "sample interval (ms)",
        "tp": "produced interval (ms)",
        "is_outlier": "tp is an outlier (behaviour excluded)",
    },
}
