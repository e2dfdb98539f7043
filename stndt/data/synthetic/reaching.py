"""mc_maze (and its scaling sizes) and area2_bump: one reach (or passive bump) per trial."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from stndt.data.synthetic.config import SyntheticConfig
from stndt.data.synthetic.latents import add_event, latent_split, rotation_freqs, velocity
from stndt.data.synthetic.layouts import TRIAL_COLUMNS, behaviour_lag, window_extent
from stndt.data.synthetic.recording import LEAD_IN_MS, Recording, block_start, split_plan


def build_reaching(layout: str, family: str, cfg: SyntheticConfig, rng: np.random.Generator) -> Recording:
    """mc_maze family and area2_bump: one reach (or bump) per trial, aligned on movement onset."""
    _, before, after = window_extent(layout)
    n_prep, n_move = latent_split(cfg.latent_dim)
    freqs = rotation_freqs(n_move)
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

    plan = split_plan(cfg, rng)
    n_first = cfg.n_train + cfg.n_val + cfg.n_none
    trials, events = [], []
    t, cut = LEAD_IN_MS, None
    for i, (split, c) in enumerate(plan):
        if i == n_first:
            cut = block_start(t)
            t = cut + LEAD_IN_MS
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
        # single-trial latent states: the condition's, with trial-specific deviations; a trial-specific
        # speed of the movement dynamics; the neural onset jitters around the recorded movement onset
        s = cfg.trial_noise
        p = prep[c] + s * rng.standard_normal(n_prep)
        speed = float(np.exp(cfg.speed_sd * rng.standard_normal()))
        m = move[c] * speed * (1 + 0.5 * s * rng.standard_normal()) + 0.5 * s * rng.standard_normal(n_move)
        neural_onset = onset + int(round(cfg.onset_jitter_ms * rng.standard_normal()))
        events.append((neural_onset, None if prep_start is None else prep_start + onset - neural_onset, p, m, speed))
    n_ms = t + LEAD_IN_MS
    lag = behaviour_lag(layout)
    pad = abs(lag)
    x_ext = np.zeros((n_ms + 2 * pad, cfg.latent_dim))
    for onset, prep_start, p, m, speed in events:
        add_event(x_ext, pad, onset, prep_start, p, m, freqs, speed)
    return Recording(
        n_ms=n_ms,
        cut_ms=cut,
        trials=trials,
        latents=x_ext[pad : pad + n_ms],
        behaviour=velocity(x_ext, pad, n_ms, lag, vel_readout, rng),
        columns=TRIAL_COLUMNS[family],
    )
