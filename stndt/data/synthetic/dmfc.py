"""dmfc_rsg: Ready-Set-Go trials whose neural speed between Set and Go sets the produced interval."""

from __future__ import annotations

import math

import numpy as np

from stndt.data.synthetic.config import SyntheticConfig
from stndt.data.synthetic.layouts import TRIAL_COLUMNS, window_extent
from stndt.data.synthetic.recording import LEAD_IN_MS, Recording, block_start, split_plan


def dmfc_conditions(n_conditions: int) -> tuple[int, int]:
    """(prior/modality/direction groups, ts values per prior) for dmfc_rsg."""
    n_groups = min(8, n_conditions)
    return n_groups, math.ceil(n_conditions / n_groups)


def _ts_values(is_short: bool, n_ts: int) -> np.ndarray:
    lo, hi = (480, 800) if is_short else (800, 1200)
    return np.round(np.linspace(lo, hi, n_ts)) if n_ts > 1 else np.array([(lo + hi) / 2])


def build_dmfc(layout: str, cfg: SyntheticConfig, rng: np.random.Generator) -> Recording:
    """dmfc_rsg: Ready-Set-Go trials; neural speed between Set and Go is inversely related to tp."""
    from scipy.special import expit  # here: scipy costs the workflow's planning 0.2 s per call

    _, before, after = window_extent(layout)
    d = cfg.latent_dim
    n_groups, n_ts = dmfc_conditions(cfg.n_conditions)
    basis = np.linalg.qr(rng.standard_normal((d, d)))[0][:, :4]  # measurement (0, 1), production (2, 3)
    offsets = rng.standard_normal((n_groups, d)) * 0.8
    a_meas, a_prod = 1.5, 2.0

    plan = split_plan(cfg, rng)
    train_idx = [i for i, (split, _) in enumerate(plan) if split == "train"]
    n_out = int(round(cfg.outlier_fraction * len(train_idx)))
    outliers = set(rng.choice(train_idx, n_out, replace=False).tolist()) if n_out else set()
    n_first = cfg.n_train + cfg.n_val + cfg.n_none
    trials, states = [], []
    t, cut = LEAD_IN_MS, None
    for i, (split, c) in enumerate(plan):
        if i == n_first:
            cut = block_start(t)
            t = cut + LEAD_IN_MS
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
        trials.append(
            {
                "split": split,
                "start_time": start,
                "stop_time": stop,
                "ready_time": ready,
                "set_time": set_,
                "go_time": go,
                "is_eye": is_eye,
                "theta": theta,
                "is_short": is_short,
                "ts": float(ts),
                "tp": float(tp),
                "is_outlier": i in outliers,
            }
        )
        states.append(
            (
                offsets[g] + 0.5 * cfg.trial_noise * rng.standard_normal(d),
                1 + 0.5 * cfg.trial_noise * rng.standard_normal(),
            )
        )
        t = stop + int(rng.integers(0, 100))
    n_ms = t + LEAD_IN_MS
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
        x[start : start + len(tt)] += lat
    return Recording(n_ms=n_ms, cut_ms=cut, trials=trials, latents=x, columns=TRIAL_COLUMNS["dmfc_rsg"])
