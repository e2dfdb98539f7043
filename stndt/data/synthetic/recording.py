"""One continuous synthetic recording (trials, latents, behaviour on a 1 ms grid), the split schedule
shared by every layout builder, and the consistency check every built recording must pass."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from stndt.data.synthetic.config import SyntheticConfig
from stndt.data.synthetic.layouts import nlb_params, window_extent

_BLOCK_GRID_MS = 100  # the test block starts on this grid (a multiple of every NLB bin width)
LEAD_IN_MS = 200  # quiet time before the first trial of each file


@dataclass
class Recording:
    """One continuous recording: trials in time order (ms), latents and behaviour on the 1 ms grid."""

    n_ms: int
    cut_ms: int  # first ms of the test block (= the test file's t = 0)
    trials: list[dict]  # 'split', 'start_time', 'stop_time', events (ms) and info fields
    latents: np.ndarray  # (n_ms, latent_dim)
    behaviour: np.ndarray | None = None  # (n_ms, 2) or None (dmfc_rsg: trial-level behaviour)
    columns: dict[str, str] = field(default_factory=dict)


def split_plan(cfg: SyntheticConfig, rng: np.random.Generator) -> list[tuple[str, int]]:
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


def block_start(t_ms: int) -> int:
    """Where the test block (the test file's t = 0) starts: `t_ms` rounded up to whole 100 ms.

    nlb_tools bins every file on a grid from its own t = 0 (and shifts appended files by whole 100 ms),
    so the test trials fall into the same 5 / 20 ms bins in the test file and in the hidden recording.
    """
    return int(math.ceil(t_ms / _BLOCK_GRID_MS) * _BLOCK_GRID_MS)


def check_recording(rec: Recording, layout: str) -> None:
    """Internal consistency against nlb_tools' needs; a failure here is a generator bug, named by trial."""
    align, before, after = window_extent(layout)
    overlap_ok = bool(nlb_params(layout)["make_params"].get("allow_overlap")) and align == "start_time"
    test_start = next(i for i, tr in enumerate(rec.trials) if tr["split"] == "test")
    for i, tr in enumerate(rec.trials):
        lo, hi = (0, rec.cut_ms) if i < test_start else (rec.cut_ms, rec.n_ms)
        for key, value in tr.items():
            if key.endswith("_time") and not np.isnan(value) and value != int(value):
                raise RuntimeError(f"{layout} trial {i}: {key}={value} is off the 1 ms grid")
        a = tr[align]
        if not (lo <= tr["start_time"] < tr["stop_time"] <= hi and lo <= a - before and a + after <= hi):
            raise RuntimeError(
                f"{layout} trial {i}: window [{a - before}, {a + after}) ms or trial "
                f"[{tr['start_time']}, {tr['stop_time']}) leaves its file's data [{lo}, {hi})"
            )
        if not overlap_ok and i + 1 < len(rec.trials) and i + 1 != test_start:
            nxt = rec.trials[i + 1]
            if max(a + after, tr["stop_time"]) > min(nxt["start_time"], nxt[align] - before):
                raise RuntimeError(f"{layout} trial {i}: its window ends after trial {i + 1}'s window starts")
    for name, arr in (("latents", rec.latents), ("behaviour", rec.behaviour)):
        if arr is not None and (len(arr) != rec.n_ms or not np.isfinite(arr).all()):
            raise RuntimeError(f"{layout}: {name} do not cover the recording with finite values")
