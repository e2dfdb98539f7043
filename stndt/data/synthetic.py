"""Offline synthetic NLB datasets: NWB files in the exact layouts nlb_tools reads, with known true rates.

Why: the pipeline must run (and be tested) without DANDI, and a dataset whose true firing rates are
known lets every stage be checked against the best possible prediction. The true rates score the highest
co-bps any model can reach on average, so a model that is far below them, or one that beats them by a
wide margin, points to a bug (misaligned trials, a wrong behaviour lag, leaked targets).

Generative model
----------------
A low-dimensional latent state x(t) (1 ms grid) drives every unit through a log-linear readout,
rate_n(t) = exp(b_n + w_n . x(t)), rescaled so each unit has a realistic mean rate (a few to a few tens
of Hz) and a fixed log-rate modulation depth. Spikes are an inhomogeneous Poisson process of that rate
(constant within each 1 ms bin), so binned counts are exactly Poisson(true rate x bin width). The latent
dynamics follow the task of each layout family (`stndt.datasets.NLBDataset.family`):

- mc_maze (and the MC_Maze scaling sizes), area2_bump: a condition-specific preparatory state builds up
  after target onset and is released at movement onset into damped rotations whose initial state depends
  on the condition (as in motor cortex, Churchland et al. 2012). Passive bump trials of area2_bump have no
  preparatory phase. Hand velocity is a linear readout of the rotational latents, shifted by the layout's
  behaviour lag, so "vel R2" is meaningful: neural activity leads velocity by `lag` ms (follows it for
  area2_bump, whose lag is negative).
- mc_rtt: the same building block for a continuous sequence of reaches in random directions; the
  recording is chopped into back-to-back 600 ms trials, as in the real dataset.
- dmfc_rsg: Ready-Set-Go. The state at Set stores the measured interval ts; between Set and Go it travels
  a fixed path whose traversal time is the produced interval tp, so neural speed is inversely related to
  tp and "tp corr" is meaningful (negative, as in the benchmark).
Every trial adds its own deviation to the condition's latent states, so single-trial rates differ from
the condition average (PSTH). Conditions are dealt out evenly within each split. A few train-file trials
have split 'none' (ignored by nlb_tools, as in the real files); dmfc_rsg flags a fraction of its train
trials as outliers (too-early responses, `is_outlier`), which nlb_tools masks out of the behaviour.

Files
-----
One continuous recording on a 1 ms grid from t = 0 holds the train/val (and a few 'none') trials, then
the test trials. It is written three times (all through pynwb):
- `raw_dir/sub-Synth_ses-<layout>_desc-train_behavior+ecephys.nwb`: the first block: train/val/none trials
  with their condition and behaviour fields, held-in and held-out units, continuous behaviour.
- `raw_dir/sub-Synth_ses-<layout>_desc-test_ecephys.nwb`: the second block, shifted to start at t = 0, as
  the public test file: held-in units only (`heldout` all False), only the window fields, split 'test'.
- `hidden_path`: the whole recording with everything, plus the true rates as TimeSeries
  `true_spikes_heldin` / `true_spikes_heldout` (expected spikes per 1 ms bin). Their names contain
  "spikes", so nlb_tools' `resample()` sums them into expected spikes per bin and its own windowing code
  cuts them exactly like the spikes (`make_truth`). Its NWB `notes` hold the SyntheticConfig (JSON).
Every file's `session_id` is the layout. The test block starts on a whole 100 ms of the recording, so its
trials fall into the same 5 / 20 ms bins in the test file and in the hidden recording.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import warnings
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.special import expit
from tqdm import tqdm

from stndt.datasets import PHASE_SPLITS, nlb_dataset, nlb_key
from stndt.io import atomic_path

log = logging.getLogger(__name__)

TRUE_HELDIN = "true_spikes_heldin"    # hidden file: expected spikes per 1 ms bin of the held-in units
TRUE_HELDOUT = "true_spikes_heldout"  # ... and of the held-out units
SUBJECT = "sub-Synth"

# Phase -> (train trials, eval trials), as the tensors stage builds them (see common brief).
# nlb_tools' dmfc_rsg jitter lambda (not introspectable) shifts train/val windows by up to 300 ms.
_MAX_JITTER_MS = 300
_MAX_RATE_HZ = 200.0
_VEL_NOISE = 0.3           # motor noise in the velocity, relative to its sd
_PROGRESS_MIN_WORK = 5e7  # unit-ms above which generate() shows a progress bar (~10 s)
_CHUNK_MS = 65536          # rates and spikes are drawn in fixed chunks (memory; deterministic draw order)
_BLOCK_GRID_MS = 100      # the test block starts on this grid (a multiple of every NLB bin width)
_LEAD_IN_MS = 200          # quiet time before the first trial of each file
_TAU_RISE, _TAU_PREP_FALL, _TAU_MOVE = 40.0, 250.0, 200.0  # ms; preparatory rise/fall, movement envelope
_KERNEL_SPAN_MS = (-1200, 2000)  # where one movement event's latents are non-negligible (ms from onset)
_SESSION_START = datetime(2021, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class SyntheticConfig:
    """Size and statistics of a synthetic dataset. Defaults: a small dataset for a laptop CPU run.

    Trial counts are per split; for mc_rtt a "trial" is a 600 ms segment of continuous reaching.
    `n_conditions` is the number of task conditions (PSTH conditions): maze (trial_type, trial_version)
    pairs, area2_bump (direction, bump) pairs (even numbers: half active, half bump), dmfc_rsg
    (is_eye, theta, is_short, ts) tuples (min(8, n) prior/modality/direction groups, the rest ts values).
    """

    n_heldin: int = 40
    n_heldout: int = 12
    n_train: int = 120
    n_val: int = 40
    n_test: int = 40
    n_none: int = 2                 # trials of split 'none' in the train file (ignored by nlb_tools)
    n_conditions: int = 8
    latent_dim: int = 8             # even, >= 4
    mean_rate_hz: float = 10.0      # median of the units' mean rates (log-normal across units)
    modulation: float = 0.6         # std of each unit's log-rate within trials
    trial_noise: float = 0.3        # single-trial deviation of latent states, relative to the condition's
    outlier_fraction: float = 0.05  # dmfc_rsg: train trials flagged is_outlier (behaviour masked by nlb_tools)
    seed: int = 0

    def __post_init__(self) -> None:
        def need(name: str, ok: bool, what: str) -> None:
            if not ok:
                raise ValueError(f"SyntheticConfig.{name}={getattr(self, name)!r}: must be {what}")

        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.type == "int":
                need(f.name, isinstance(value, (int, np.integer)) and not isinstance(value, bool), "an integer")
            else:
                need(f.name, isinstance(value, (int, float, np.number)) and not isinstance(value, bool)
                     and math.isfinite(value), "a finite number")
        for name in ("n_heldin", "n_heldout", "n_conditions"):
            need(name, getattr(self, name) >= 1, ">= 1")
        for name in ("n_train", "n_val", "n_test"):
            need(name, getattr(self, name) >= 2, ">= 2 (nlb_tools needs several trials per split)")
        need("n_none", self.n_none >= 0, ">= 0")
        need("latent_dim", self.latent_dim >= 4 and self.latent_dim % 2 == 0, "an even number >= 4")
        need("mean_rate_hz", 0.5 <= self.mean_rate_hz <= 100, "between 0.5 and 100 Hz")
        need("modulation", 0 < self.modulation <= 2, "in (0, 2]")
        need("trial_noise", 0 <= self.trial_noise <= 2, "in [0, 2]")
        need("outlier_fraction", 0 <= self.outlier_fraction < 0.5, "in [0, 0.5)")
        need("seed", self.seed >= 0, ">= 0")


# --------------------------------------------------------------------------- layout facts (from nlb_tools)
def _params(layout: str) -> dict:
    from nlb_tools.make_tensors import PARAMS

    return PARAMS[layout]


def _lag(layout: str) -> int:
    return int(_params(layout).get("lag") or 0)


def _window_extent(layout: str) -> tuple[str, int, int]:
    """(alignment field, ms before, ms after it) that one trial's data must cover without NaN.

    Covers nlb_tools' spike window, the forward-prediction bins, the behaviour window shifted by the lag
    and, for dmfc_rsg, the random jitter of train/val windows. Read from nlb_tools' PARAMS.
    """
    p = _params(layout)
    lo, hi = p["make_params"]["align_range"]
    lag = _lag(layout)
    jitter = _MAX_JITTER_MS if "jitter" in p else 0
    return p["make_params"]["align_field"], -min(lo, lo + lag), max(hi + jitter + p["fp_len"], hi + lag)


def _behaviour_name(layout: str) -> str | None:
    p = _params(layout)
    return p["behavior_field"] if p["behavior_source"] == "data" else None


def _test_file_fields(layout: str) -> set[str]:
    """Trial fields the public test file carries: only those that place nlb_tools' windows."""
    from stndt.data.nwb_checks import window_fields

    return window_fields(layout) - {"start_time", "end_time", "stop_time"}


def raw_file_names(layout: str) -> tuple[str, str]:
    """(train file, test file) names in the DANDI style nlb_tools' loaders expect."""
    ses = f"{SUBJECT}_ses-{layout}"
    return f"{ses}_desc-train_behavior+ecephys.nwb", f"{ses}_desc-test_ecephys.nwb"


# Trial columns per layout family (besides start_time, stop_time, split). '*_time' columns are times.
_COLUMNS: dict[str, dict[str, str]] = {
    "mc_maze": {
        "target_on_time": "target onset", "go_cue_time": "go cue", "move_onset_time": "movement onset",
        "trial_type": "maze (reach condition) id", "trial_version": "maze version",
        "delay": "delay period (ms)", "rt": "reaction time (ms)",
    },
    "area2_bump": {
        "target_on_time": "target onset (NaN for bump trials)", "go_cue_time": "go cue (NaN for bump trials)",
        "bump_time": "bump onset (NaN for active trials)", "move_onset_time": "movement onset",
        "cond_dir": "reach or bump direction (deg)", "ctr_hold_bump": "passive bump during center hold",
    },
    "mc_rtt": {},
    "dmfc_rsg": {
        "ready_time": "Ready flash", "set_time": "Set flash", "go_time": "produced Go (response)",
        "is_eye": "eye (True) or hand (False) response", "theta": "target direction (deg)",
        "is_short": "short (True) or long (False) ts prior", "ts": "sample interval (ms)",
        "tp": "produced interval (ms)", "is_outlier": "tp is an outlier (behaviour excluded)",
    },
}


# --------------------------------------------------------------------------- the recording
@dataclass
class _Recording:
    """One continuous recording: trials in time order (ms), latents and behaviour on the 1 ms grid."""

    n_ms: int
    cut_ms: int                       # first ms of the test block (= the test file's t = 0)
    trials: list[dict]                # 'split', 'start_time', 'stop_time', events (ms) and info fields
    latents: np.ndarray               # (n_ms, latent_dim)
    behaviour: np.ndarray | None = None  # (n_ms, 2) or None (dmfc_rsg: trial-level behaviour)
    columns: dict[str, str] = field(default_factory=dict)


def _split_plan(cfg: SyntheticConfig, rng: np.random.Generator) -> list[tuple[str, int]]:
    """(split, condition) per trial in recording order: train-file trials (shuffled), then test trials.

    Conditions are dealt out evenly within each split, so every split sees every condition as often as
    its size allows (the first trials of a split cover conditions 0, 1, ... in turn).
    """
    def dealt(split: str, n: int) -> list[tuple[str, int]]:
        return [(split, int(c)) for c in np.resize(np.arange(cfg.n_conditions), n)]

    first = dealt("train", cfg.n_train) + dealt("val", cfg.n_val)
    first += [("none", int(c)) for c in rng.integers(0, cfg.n_conditions, cfg.n_none)]
    test = dealt("test", cfg.n_test)
    return [first[i] for i in rng.permutation(len(first))] + [test[i] for i in rng.permutation(len(test))]


def _block_start(t_ms: int) -> int:
    """Where the test block (the test file's t = 0) starts: `t_ms` rounded up to whole 100 ms.

    nlb_tools bins every file on a grid from its own t = 0 (and shifts appended files by whole 100 ms),
    so the test trials fall into the same 5 / 20 ms bins in the test file and in the hidden recording.
    """
    return int(math.ceil(t_ms / _BLOCK_GRID_MS) * _BLOCK_GRID_MS)


def _latent_split(latent_dim: int) -> tuple[int, int]:
    """(preparatory dims, rotational 'movement' dims); movement dims come in rotation planes."""
    n_move = 2 * max(1, latent_dim // 4)
    return latent_dim - n_move, n_move


def _add_event(x: np.ndarray, pad: int, onset: int, prep_start: int | None, p: np.ndarray, m: np.ndarray,
               freqs_hz: np.ndarray) -> None:
    """Add one movement event's latents to `x` (extended grid: row i is time i - pad ms), in place.

    Preparatory part: `p`, rising from `prep_start` (ms from onset; None: no preparation) and decaying
    after onset. Movement part: damped rotations of `m` (one frequency per plane), zero before onset.
    """
    lo = max(0, onset + _KERNEL_SPAN_MS[0] + pad)
    hi = min(len(x), onset + _KERNEL_SPAN_MS[1] + pad)
    if hi <= lo:
        return
    s = np.arange(lo, hi, dtype=float) - pad - onset  # ms from onset
    n_prep = len(p)
    if prep_start is not None and n_prep:
        prep = expit((s - prep_start) / _TAU_RISE) * np.exp(-np.clip(s, 0, None) / _TAU_PREP_FALL)
        x[lo:hi, :n_prep] += prep[:, None] * p[None, :]
    sp = np.clip(s, 0, None)
    env = np.where(s >= 0, sp / _TAU_MOVE * np.exp(1 - sp / _TAU_MOVE), 0.0)
    ang = 2 * np.pi * freqs_hz[None, :] * sp[:, None] / 1000.0  # (time, planes)
    m0, m1 = m[0::2], m[1::2]
    cos, sin = np.cos(ang), np.sin(ang)
    x[lo:hi, n_prep::2] += env[:, None] * (m0 * cos - m1 * sin)
    x[lo:hi, n_prep + 1::2] += env[:, None] * (m0 * sin + m1 * cos)


def _velocity(x_ext: np.ndarray, pad: int, n_ms: int, lag: int, readout: np.ndarray,
              rng: np.random.Generator) -> np.ndarray:
    """Hand velocity v(t) = readout . movement latents(t - lag) + smooth motor noise, on the 1 ms grid.

    The noise (Gaussian-smoothed, sd 50 ms, a fraction `_VEL_NOISE` of the velocity's sd) is independent
    of the neurons, so even the true rates do not decode velocity perfectly (vel R2 stays informative).
    """
    n_move = readout.shape[1]
    rows = np.arange(n_ms) - lag + pad
    vel = x_ext[rows, -n_move:] @ readout.T
    noise = gaussian_filter1d(rng.standard_normal(vel.shape), 50.0, axis=0)
    noise *= _VEL_NOISE * vel.std(axis=0) / np.maximum(noise.std(axis=0), 1e-12)
    return (vel + noise).astype(np.float32)


def _build_reaching(layout: str, family: str, cfg: SyntheticConfig, rng: np.random.Generator) -> _Recording:
    """mc_maze family and area2_bump: one reach (or bump) per trial, aligned on movement onset."""
    _, before, after = _window_extent(layout)
    n_prep, n_move = _latent_split(cfg.latent_dim)
    freqs = np.linspace(1.0, 2.5, n_move // 2)
    vel_readout = rng.standard_normal((2, n_move)) * 60.0
    area2 = family == "area2_bump"
    n_dirs = math.ceil(cfg.n_conditions / 2)
    if area2:  # movement states follow the direction, shared by active and bump trials of that direction
        k_move = rng.standard_normal((n_move, 2)) * 1.5
        angles = 2 * np.pi * (np.arange(cfg.n_conditions) // 2) / n_dirs
        move = (k_move @ np.stack([np.cos(angles), np.sin(angles)])).T
        move = move + 0.3 * rng.standard_normal(move.shape)
    else:
        move = rng.standard_normal((cfg.n_conditions, n_move)) * 1.5
    prep = rng.standard_normal((cfg.n_conditions, n_prep))

    plan = _split_plan(cfg, rng)
    n_first = cfg.n_train + cfg.n_val + cfg.n_none
    trials, events = [], []
    t, cut = _LEAD_IN_MS, None
    for i, (split, c) in enumerate(plan):
        if i == n_first:
            cut = _block_start(t)
            t = cut + _LEAD_IN_MS
        start = t
        row: dict[str, Any] = {"split": split, "start_time": start}
        bump = area2 and c % 2 == 1
        if bump:
            onset = start + int(rng.integers(300, 600))
            prep_start = None
            row.update(target_on_time=np.nan, go_cue_time=np.nan, bump_time=onset)
        else:
            target_on = start + int(rng.integers(100, 250))
            delay = int(rng.integers(100, 300) if area2 else rng.integers(100, 600))
            rt = int(rng.integers(150, 300) if area2 else rng.integers(200, 400))
            onset = target_on + delay + rt
            prep_start = target_on - onset
            row.update(target_on_time=target_on, go_cue_time=target_on + delay)
            if area2:
                row["bump_time"] = np.nan
            else:
                row.update(delay=float(delay), rt=float(rt))
        onset = max(onset, start + before + 50)
        row["move_onset_time"] = onset
        if area2:
            row.update(cond_dir=float(360.0 * (c // 2) / n_dirs), ctr_hold_bump=bool(bump))
        else:
            row.update(trial_type=c // 2 + 1, trial_version=c % 2)
        row["stop_time"] = onset + after + int(rng.integers(50, 150))
        trials.append(row)
        t = row["stop_time"] + int(rng.integers(0, 100))
        # single-trial latent states: the condition's, with trial-specific deviations
        s = cfg.trial_noise
        p = prep[c] + s * rng.standard_normal(n_prep)
        m = move[c] * (1 + 0.5 * s * rng.standard_normal()) + 0.5 * s * rng.standard_normal(n_move)
        events.append((onset, prep_start, p, m))
    n_ms = t + _LEAD_IN_MS
    lag = _lag(layout)
    pad = abs(lag)
    x_ext = np.zeros((n_ms + 2 * pad, cfg.latent_dim))
    for onset, prep_start, p, m in events:
        _add_event(x_ext, pad, onset, prep_start, p, m, freqs)
    return _Recording(n_ms=n_ms, cut_ms=cut, trials=trials, latents=x_ext[pad:pad + n_ms],
                      behaviour=_velocity(x_ext, pad, n_ms, lag, vel_readout, rng), columns=_COLUMNS[family])


def _build_rtt(layout: str, cfg: SyntheticConfig, rng: np.random.Generator) -> _Recording:
    """mc_rtt: continuous reaches to random targets, chopped into back-to-back trials (600 ms segments)."""
    _, _, after = _window_extent(layout)
    lo, hi = _params(layout)["make_params"]["align_range"]
    seg = hi - lo
    n_prep, n_move = _latent_split(cfg.latent_dim)
    freqs = np.linspace(1.0, 2.5, n_move // 2)
    vel_readout = rng.standard_normal((2, n_move)) * 60.0
    k_prep = rng.standard_normal((n_prep, 2))
    k_move = rng.standard_normal((n_move, 2)) * 1.5

    plan = _split_plan(cfg, rng)
    n_first = cfg.n_train + cfg.n_val + cfg.n_none
    tail = after - seg + 100  # data after the last segment of a file: forward bins and lagged behaviour
    cut = _block_start(n_first * seg + tail)
    starts = [i * seg for i in range(n_first)] + [cut + i * seg for i in range(len(plan) - n_first)]
    trials = [{"split": split, "start_time": st, "stop_time": st + seg} for (split, _), st in zip(plan, starts)]
    n_ms = starts[-1] + seg + tail

    lag = _lag(layout)
    pad = abs(lag)
    x_ext = np.zeros((n_ms + 2 * pad, cfg.latent_dim))
    onset = int(rng.integers(0, 400)) - pad
    s = cfg.trial_noise
    while onset < n_ms + pad:
        theta = rng.uniform(0, 2 * np.pi)
        direction = np.array([np.cos(theta), np.sin(theta)])
        p = k_prep @ direction + s * rng.standard_normal(n_prep)
        m = k_move @ direction * (1 + 0.5 * s * rng.standard_normal()) + 0.5 * s * rng.standard_normal(n_move)
        _add_event(x_ext, pad, onset, -int(rng.integers(150, 300)), p, m, freqs)
        onset += int(rng.integers(400, 900))
    return _Recording(n_ms=n_ms, cut_ms=cut, trials=trials, latents=x_ext[pad:pad + n_ms],
                      behaviour=_velocity(x_ext, pad, n_ms, lag, vel_readout, rng), columns=_COLUMNS["mc_rtt"])


def _dmfc_conditions(n_conditions: int) -> tuple[int, int]:
    """(prior/modality/direction groups, ts values per prior) for dmfc_rsg."""
    n_groups = min(8, n_conditions)
    return n_groups, math.ceil(n_conditions / n_groups)


def _ts_values(is_short: bool, n_ts: int) -> np.ndarray:
    lo, hi = (480, 800) if is_short else (800, 1200)
    return np.round(np.linspace(lo, hi, n_ts)) if n_ts > 1 else np.array([(lo + hi) / 2])


def _build_dmfc(layout: str, cfg: SyntheticConfig, rng: np.random.Generator) -> _Recording:
    """dmfc_rsg: Ready-Set-Go trials; neural speed between Set and Go is inversely related to tp."""
    _, before, after = _window_extent(layout)
    d = cfg.latent_dim
    n_groups, n_ts = _dmfc_conditions(cfg.n_conditions)
    basis = np.linalg.qr(rng.standard_normal((d, d)))[0][:, :4]  # measurement (0, 1), production (2, 3)
    offsets = rng.standard_normal((n_groups, d)) * 0.8
    a_meas, a_prod = 1.5, 2.0

    plan = _split_plan(cfg, rng)
    train_idx = [i for i, (split, _) in enumerate(plan) if split == "train"]
    n_out = int(round(cfg.outlier_fraction * len(train_idx)))
    outliers = set(rng.choice(train_idx, n_out, replace=False).tolist()) if n_out else set()
    n_first = cfg.n_train + cfg.n_val + cfg.n_none
    trials, states = [], []
    t, cut = _LEAD_IN_MS, None
    for i, (split, c) in enumerate(plan):
        if i == n_first:
            cut = _block_start(t)
            t = cut + _LEAD_IN_MS
        g, ts_idx = c % n_groups, (c // n_groups) % n_ts
        is_short, is_eye, theta = bool(g & 1), bool((g >> 1) & 1), 180.0 * ((g >> 2) & 1)
        ts = int(_ts_values(is_short, n_ts)[ts_idx])
        prior_mean = 640 if is_short else 1000
        if i in outliers:  # a response far too early: kept in the data, flagged, behaviour masked
            tp = int(round(ts * rng.uniform(0.3, 0.5)))
        else:  # regression towards the prior mean, scalar (Weber) noise
            tp = int(round((ts + 0.4 * (prior_mean - ts)) * (1 + 0.08 * rng.standard_normal())))
        tp = int(np.clip(tp, 150, 1450))
        start = t
        ready = start + max(int(rng.integers(400, 700)), before + 50 - ts - tp)
        set_, go = ready + ts, ready + ts + tp
        stop = go + after + int(rng.integers(50, 150))
        trials.append({"split": split, "start_time": start, "stop_time": stop, "ready_time": ready,
                       "set_time": set_, "go_time": go, "is_eye": is_eye, "theta": theta,
                       "is_short": is_short, "ts": float(ts), "tp": float(tp), "is_outlier": i in outliers})
        states.append((offsets[g] + 0.5 * cfg.trial_noise * rng.standard_normal(d),
                       1 + 0.5 * cfg.trial_noise * rng.standard_normal()))
        t = stop + int(rng.integers(0, 100))
    n_ms = t + _LEAD_IN_MS
    x = np.zeros((n_ms, d))
    for tr, (offset, gain) in zip(trials, states):
        # condition offset from fixation, ts stored by the Ready -> Set rotation, Set -> Go path taking tp
        start, ready, set_, go = tr["start_time"], tr["ready_time"], tr["set_time"], tr["go_time"]
        ts, tp = tr["ts"], tr["tp"]
        tt = np.arange(start, min(n_ms, tr["stop_time"] + 500), dtype=float)
        hold = np.exp(-np.clip(tt - go, 0, None) / 200.0)
        env = expit((tt - start - 100) / 50.0) * np.exp(-np.clip(tt - go - 200, 0, None) / 150.0)
        alpha = 0.5 * np.pi * np.clip(tt - ready, 0, ts) / 1000.0
        phi = np.pi * np.clip((tt - set_) / tp, 0, 1)
        lat = env[:, None] * offset[None, :]
        lat += (gain * a_meas * hold * (1 - np.cos(alpha)))[:, None] * basis[:, 0]
        lat += (gain * a_meas * hold * np.sin(alpha))[:, None] * basis[:, 1]
        lat += (a_prod * hold * (1 - np.cos(phi)))[:, None] * basis[:, 2]
        lat += (a_prod * hold * np.sin(phi))[:, None] * basis[:, 3]
        x[start:start + len(tt)] += lat
    return _Recording(n_ms=n_ms, cut_ms=cut, trials=trials, latents=x, columns=_COLUMNS["dmfc_rsg"])


_BUILDERS: dict[str, Callable[[str, SyntheticConfig, np.random.Generator], _Recording]] = {
    "mc_maze": lambda layout, cfg, rng: _build_reaching(layout, "mc_maze", cfg, rng),
    "area2_bump": lambda layout, cfg, rng: _build_reaching(layout, "area2_bump", cfg, rng),
    "mc_rtt": _build_rtt,
    "dmfc_rsg": _build_dmfc,
}


def _check_cfg_for_layout(cfg: SyntheticConfig, layout: str, family: str) -> None:
    """Sizes a layout's metrics need; fail before generating rather than inside nlb_tools' evaluation."""
    if family == "area2_bump" and cfg.n_conditions < 2:
        raise ValueError(f"{layout}: SyntheticConfig.n_conditions={cfg.n_conditions}: area2_bump needs >= 2 "
                         "(active and bump trials; nlb_tools decodes velocity separately for each)")
    if family == "dmfc_rsg":
        n_groups, _ = _dmfc_conditions(cfg.n_conditions)
        for name in ("n_val", "n_test"):
            if getattr(cfg, name) < 2 * n_groups:
                raise ValueError(
                    f"{layout}: SyntheticConfig.{name}={getattr(cfg, name)}: 'tp corr' correlates within each of "
                    f"the {n_groups} (is_eye, theta, is_short) groups, so it needs >= {2 * n_groups} trials "
                    "(or fewer n_conditions)")


# --------------------------------------------------------------------------- rates and spikes
def _readout(latents: np.ndarray, rows: np.ndarray, n_units: int, cfg: SyntheticConfig,
             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per-unit weights and bias (log spikes/ms) giving the configured modulation and mean rates.

    Both are measured over `rows` (time points inside trials), where the benchmark scores the rates.
    """
    sample = latents[rows]
    w = rng.standard_normal((n_units, latents.shape[1]))
    proj = sample @ w.T
    w *= (cfg.modulation / np.maximum(proj.std(axis=0), 1e-9))[:, None]
    proj = sample @ w.T
    mean_rate = cfg.mean_rate_hz * np.exp(0.5 * rng.standard_normal(n_units)) / 1000.0
    bias = np.log(mean_rate) - np.log(np.exp(proj).mean(axis=0))
    return w, bias


def _poisson_spikes(latents: np.ndarray, w: np.ndarray, bias: np.ndarray, rng: np.random.Generator,
                    progress: Callable[[], None] = lambda: None) -> tuple[np.ndarray, list[np.ndarray]]:
    """True rates (expected spikes per 1 ms bin, float32) and spike times (ms) of every unit.

    Exact inhomogeneous Poisson process with a rate constant within each 1 ms bin (time rescaling):
    the count in a chunk is Poisson(sum of rates), the spikes are placed by inverting the cumulative
    rate. Spikes stay 0.001-0.999 ms inside their bin, so nlb_tools bins each where it was drawn.
    """
    n_ms, n_units = len(latents), len(w)
    rates = np.empty((n_ms, n_units), dtype=np.float32)
    spikes: list[list[np.ndarray]] = [[] for _ in range(n_units)]
    max_log = np.float32(np.log(_MAX_RATE_HZ / 1000.0))
    w32, bias32 = w.T.astype(np.float32), bias.astype(np.float32)
    for c0 in range(0, n_ms, _CHUNK_MS):
        lam = np.exp(np.minimum(latents[c0:c0 + _CHUNK_MS].astype(np.float32) @ w32 + bias32, max_log))
        rates[c0:c0 + len(lam)] = lam                    # (time, units)
        lam_t = np.ascontiguousarray(lam.T)              # (units, time): one contiguous row per unit
        cum = np.cumsum(lam_t, axis=1, dtype=np.float64)
        counts = rng.poisson(cum[:, -1])
        for j in range(n_units):
            u = np.sort(rng.uniform(0.0, cum[j, -1], counts[j]))
            k = np.minimum(np.searchsorted(cum[j], u, side="right"), len(lam) - 1)
            prev = np.where(k > 0, cum[j, np.maximum(k - 1, 0)], 0.0)
            frac = np.clip((u - prev) / lam_t[j, k], 0.001, 0.999)
            spikes[j].append(c0 + k + frac)
        progress()
    return rates, [np.concatenate(s) if s else np.zeros(0) for s in spikes]


def _check_recording(rec: _Recording, layout: str) -> None:
    """Internal consistency against nlb_tools' needs; a failure here is a generator bug, named by trial."""
    align, before, after = _window_extent(layout)
    overlap_ok = bool(_params(layout)["make_params"].get("allow_overlap")) and align == "start_time"
    test_start = next(i for i, tr in enumerate(rec.trials) if tr["split"] == "test")
    for i, tr in enumerate(rec.trials):
        lo, hi = (0, rec.cut_ms) if i < test_start else (rec.cut_ms, rec.n_ms)
        for key, value in tr.items():
            if key.endswith("_time") and not np.isnan(value) and value != int(value):
                raise RuntimeError(f"{layout} trial {i}: {key}={value} is off the 1 ms grid")
        a = tr[align]
        if not (lo <= tr["start_time"] < tr["stop_time"] <= hi and lo <= a - before and a + after <= hi):
            raise RuntimeError(f"{layout} trial {i}: window [{a - before}, {a + after}) ms or trial "
                               f"[{tr['start_time']}, {tr['stop_time']}) leaves its file's data [{lo}, {hi})")
        if not overlap_ok and i + 1 < len(rec.trials) and i + 1 != test_start:
            nxt = rec.trials[i + 1]
            if max(a + after, tr["stop_time"]) > min(nxt["start_time"], nxt[align] - before):
                raise RuntimeError(f"{layout} trial {i}: its window ends after trial {i + 1}'s window starts")
    for name, arr in (("latents", rec.latents), ("behaviour", rec.behaviour)):
        if arr is not None and (len(arr) != rec.n_ms or not np.isfinite(arr).all()):
            raise RuntimeError(f"{layout}: {name} do not cover the recording with finite values")


# --------------------------------------------------------------------------- NWB writing
def _write_nwb(path: Path, *, layout: str, identifier: str, description: str, trials: list[dict],
               columns: dict[str, str],
               spikes_ms: list[np.ndarray], heldout: list[bool], t0: int, t1: int,
               series: list[tuple[str, str, np.ndarray, str, str]], compress: bool = False,
               notes: str | None = None) -> None:
    """Write one file of the recording's span [t0, t1) ms, shifted so that t0 becomes 0 s.

    series: (processing module, name, data over the whole recording, unit, description). The layout is
    recorded as the session id, so `make_truth` can refuse a recording made for another layout.
    """
    from pynwb import H5DataIO, NWBHDF5IO, NWBFile, TimeSeries

    nwb = NWBFile(session_description=description, identifier=identifier, session_start_time=_SESSION_START,
                  session_id=layout, notes=notes,
                  experiment_description="synthetic data with known firing rates (stndt.data.synthetic)")
    nwb.add_trial_column("split", "NLB split: train, val, test or none")
    for name, desc in columns.items():
        nwb.add_trial_column(name, desc)
    for tr in trials:
        row = {k: ((v - t0) / 1000.0 if k.endswith("_time") else v) for k, v in tr.items() if k in columns}
        nwb.add_trial(start_time=(tr["start_time"] - t0) / 1000.0, stop_time=(tr["stop_time"] - t0) / 1000.0,
                      split=tr["split"], **row)
    nwb.units = _units_table(spike_times=[(t[(t >= t0) & (t < t1)] - t0) / 1000.0 for t in spikes_ms],
                             heldout=heldout, end_s=(t1 - t0) / 1000.0)
    modules: dict[str, Any] = {}
    for module, name, data, unit, desc in series:
        if module not in modules:
            modules[module] = nwb.create_processing_module(name=module, description=f"{module} time series")
        values = data[t0:t1]
        if compress:  # smooth float32 rates: gzip level 1 + shuffle saves ~40% for ~1 s per 50 MB
            values = H5DataIO(values, compression="gzip", compression_opts=1, shuffle=True,
                              chunks=(min(8192, len(values)), values.shape[1]))
        modules[module].add(TimeSeries(name=name, data=values, unit=unit, rate=1000.0, starting_time=0.0,
                                       description=desc))
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*does not end in '\.nwb'")  # the temporary name
        with NWBHDF5IO(str(tmp), "w") as io:
            io.write(nwb)


def _units_table(spike_times: list[np.ndarray], heldout: list[bool], end_s: float):
    """The units table built from whole columns: `add_unit` per unit makes hdmf convert every spike
    time separately when writing (minutes for large datasets)."""
    from hdmf.common import VectorData, VectorIndex
    from pynwb.misc import Units

    n = len(spike_times)
    times = VectorData(name="spike_times", description="spike times (s)",
                       data=np.concatenate(spike_times) if n else np.zeros(0))
    times_index = VectorIndex(name="spike_times_index", target=times,
                              data=np.cumsum([len(t) for t in spike_times]).astype(np.uint64))
    obs = VectorData(name="obs_intervals", description="observation intervals (s): the whole file",
                     data=np.tile([[0.0, end_s]], (n, 1)))
    obs_index = VectorIndex(name="obs_intervals_index", target=obs, data=np.arange(1, n + 1, dtype=np.uint64))
    held = VectorData(name="heldout", description="held-out unit (its spikes are withheld from test inputs)",
                      data=np.asarray(heldout, dtype=bool))
    return Units(name="units", id=np.arange(n), columns=[times, times_index, obs, obs_index, held],
                 description="sorted units (synthetic)")


def generate(layout: str, raw_dir: Path, hidden_path: Path, cfg: SyntheticConfig = SyntheticConfig()
             ) -> list[Path]:
    """Write a synthetic dataset in `layout`'s NLB format; return [train file, test file, hidden file].

    `raw_dir` gets the public train and test files (it must not hold other .nwb files, since nlb_tools
    loads every .nwb of a folder); `hidden_path` (outside `raw_dir`) gets the whole recording with all
    splits, held-out units of the test trials, behaviour and the true rates.
    """
    ds = nlb_dataset(layout)
    _check_cfg_for_layout(cfg, layout, ds.family)
    raw_dir, hidden_path = Path(raw_dir), Path(hidden_path)
    train_name, test_name = raw_file_names(layout)
    if hidden_path.parent.resolve() == raw_dir.resolve():
        raise ValueError(f"{hidden_path}: the hidden file must not be inside raw_dir {raw_dir} "
                         "(nlb_tools would load it together with the public files)")
    if raw_dir.exists():
        others = sorted(p.name for p in raw_dir.glob("*.nwb") if p.name not in (train_name, test_name))
        if others:
            raise ValueError(f"{raw_dir}: already holds other NWB files {others}; nlb_tools would load them "
                             "together with the generated ones")
    rng_sched, rng_units, rng_spikes = (np.random.default_rng(s) for s in np.random.SeedSequence(cfg.seed).spawn(3))

    rec = _BUILDERS[ds.family](layout, cfg, rng_sched)
    _check_recording(rec, layout)
    n_units = cfg.n_heldin + cfg.n_heldout
    rows = np.concatenate([np.arange(tr["start_time"], tr["stop_time"], 7) for tr in rec.trials])
    w, bias = _readout(rec.latents, rows, n_units, cfg, rng_units)
    n_chunks = math.ceil(rec.n_ms / _CHUNK_MS)
    bar = tqdm(total=n_chunks + 3, desc=f"synthetic {layout}", unit="step",
               disable=rec.n_ms * n_units < _PROGRESS_MIN_WORK)  # default sizes take a few seconds: no bar
    rates, spikes = _poisson_spikes(rec.latents, w, bias, rng_spikes, progress=bar.update)
    heldout = [False] * cfg.n_heldin + [True] * cfg.n_heldout

    behaviour = []
    if (name := _behaviour_name(layout)) is not None:
        behaviour = [("behavior", name, rec.behaviour, "a.u./s", "velocity: linear readout of the latents "
                      f"{_lag(layout)} ms earlier (the layout's behaviour lag) plus motor noise")]
    truth = [("truth", TRUE_HELDIN, rates[:, :cfg.n_heldin], "spikes per 1 ms bin",
              "true firing rate of the held-in units (expected count per 1 ms bin)"),
             ("truth", TRUE_HELDOUT, rates[:, cfg.n_heldin:], "spikes per 1 ms bin",
              "true firing rate of the held-out units (expected count per 1 ms bin)")]
    n_first = cfg.n_train + cfg.n_val + cfg.n_none
    first, test = rec.trials[:n_first], rec.trials[n_first:]
    test_cols = {k: v for k, v in rec.columns.items() if k in _test_file_fields(layout)}
    ident = f"synthetic-{layout}-seed{cfg.seed}"
    raw_dir.mkdir(parents=True, exist_ok=True)
    train_path, test_path = raw_dir / train_name, raw_dir / test_name
    _write_nwb(train_path, layout=layout, identifier=f"{ident}-train", description=f"synthetic {layout}: train and val trials",
               trials=first, columns=rec.columns, spikes_ms=spikes, heldout=heldout, t0=0, t1=rec.cut_ms,
               series=behaviour)
    bar.update()
    _write_nwb(test_path, layout=layout, identifier=f"{ident}-test", description=f"synthetic {layout}: test trials",
               trials=test, columns=test_cols, spikes_ms=spikes[:cfg.n_heldin], heldout=[False] * cfg.n_heldin,
               t0=rec.cut_ms, t1=rec.n_ms, series=[])
    bar.update()
    _write_nwb(hidden_path, layout=layout, identifier=f"{ident}-hidden",
               description=f"synthetic {layout}: complete recording with true rates", trials=rec.trials,
               columns=rec.columns, spikes_ms=spikes, heldout=heldout, t0=0, t1=rec.n_ms,
               series=behaviour + truth, compress=True, notes=json.dumps({"SyntheticConfig": asdict(cfg)}))
    bar.update()
    bar.close()
    log.info("synthetic %s: %d trials, %d units, %.1f s of data", layout, len(rec.trials), n_units,
             rec.n_ms / 1000)
    return [train_path, test_path, hidden_path]


# --------------------------------------------------------------------------- truth tensors
def _session_layout(path: Path) -> str | None:
    """The layout a synthetic file was generated for (its NWB session id)."""
    from pynwb import NWBHDF5IO

    try:
        with NWBHDF5IO(str(path), "r") as io:
            return io.read().session_id
    except Exception as e:  # h5py / hdmf raise many types for truncated or non-NWB files
        raise ValueError(f"{path}: cannot be read as an NWB file: {e}") from e


def make_truth(hidden_path: Path, layout: str, bin_width_ms: int) -> dict:
    """True rates in the NLB submission format, per phase: {'val': {nlb_key: {...}}, 'test': {...}}.

    Built by nlb_tools' own tensor functions with the true-rate fields in place of the spikes, so trial
    order, windows, dmfc_rsg jitter and forward bins match the tensors built from the public files:
    train_rates_* from make_train_input_tensors(train split), eval_rates_* from make_eval_input_tensors
    (eval split), eval_rates_*_forward from make_eval_target_tensors' forward windows. Rates are expected
    spikes per bin (float32).
    """
    from nlb_tools.make_tensors import make_eval_input_tensors, make_eval_target_tensors, make_train_input_tensors
    from nlb_tools.nwb_interface import NWBDataset

    nlb_dataset(layout)
    hidden_path = Path(hidden_path)
    if not hidden_path.exists():
        raise FileNotFoundError(f"{hidden_path}: hidden synthetic recording does not exist")
    made_for = _session_layout(hidden_path)
    if made_for != layout:
        raise ValueError(f"{hidden_path}: generated for layout {made_for!r}, not {layout!r}")
    dataset = NWBDataset(str(hidden_path))
    present = set(dataset.data.columns.get_level_values(0))
    missing = {TRUE_HELDIN, TRUE_HELDOUT, "spikes", "heldout_spikes"} - present
    if missing:
        raise ValueError(f"{hidden_path}: lacks field(s) {sorted(missing)}; not a hidden synthetic recording")
    dataset.resample(bin_width_ms)
    if dataset.bin_width != bin_width_ms:
        raise RuntimeError(f"{hidden_path}: nlb_tools resample({bin_width_ms}) left bin width {dataset.bin_width}")
    key = nlb_key(layout, bin_width_ms)
    both = {"spk_field": TRUE_HELDIN, "hospk_field": TRUE_HELDOUT}

    def eval_windows(split: str, fld: str) -> np.ndarray:
        upd = {"spk_field": fld, "hospk_field": fld}
        return make_eval_input_tensors(dataset, layout, trial_split=split, update_params=upd,
                                       save_file=False)["eval_spikes_heldin"]

    out: dict = {}
    for phase, (train_split, eval_split) in PHASE_SPLITS.items():
        train = make_train_input_tensors(dataset, layout, trial_split=train_split, update_params=both,
                                         save_file=False)
        forward = make_eval_target_tensors(dataset, layout, train_trial_split=train_split,
                                           eval_trial_split=eval_split, update_params=both, save_file=False)[key]
        rates = {
            "train_rates_heldin": train["train_spikes_heldin"],
            "train_rates_heldout": train["train_spikes_heldout"],
            "eval_rates_heldin": eval_windows(eval_split, TRUE_HELDIN),
            "eval_rates_heldout": eval_windows(eval_split, TRUE_HELDOUT),
            "eval_rates_heldin_forward": forward["eval_spikes_heldin_forward"],
            "eval_rates_heldout_forward": forward["eval_spikes_heldout_forward"],
        }
        for name, arr in rates.items():
            if arr.ndim != 3 or not np.isfinite(arr).all():
                raise RuntimeError(f"{hidden_path}: {phase} {name} has shape {arr.shape} or non-finite values")
        out[phase] = {key: {k: v.astype(np.float32) for k, v in rates.items()}}
    return out
