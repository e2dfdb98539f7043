"""mc_rtt: continuous random-target reaching chopped into back-to-back 600 ms trials."""

from __future__ import annotations

import numpy as np

from stndt.data.synthetic.config import SyntheticConfig
from stndt.data.synthetic.latents import add_event, latent_split, rotation_freqs, velocity
from stndt.data.synthetic.layouts import TRIAL_COLUMNS, behaviour_lag, nlb_params, window_extent
from stndt.data.synthetic.recording import Recording, block_start, split_plan


def build_rtt(layout: str, cfg: SyntheticConfig, rng: np.random.Generator) -> Recording:
    """mc_rtt: continuous reaches to random targets, chopped into back-to-back trials (600 ms segments)."""
    _, _, after = window_extent(layout)
    lo, hi = nlb_params(layout)["make_params"]["align_range"]
    seg = hi - lo
    n_prep, n_move = latent_split(cfg.latent_dim)
    freqs = rotation_freqs(n_move)
    vel_readout = rng.standard_normal((2, n_move)) * 60.0
    k_prep = rng.standard_normal((n_prep, 2))
    k_move = rng.standard_normal((n_move, 2)) * 1.5

    plan = split_plan(cfg, rng)
    n_first = cfg.n_train + cfg.n_val + cfg.n_none
    tail = after - seg + 100  # data after the last segment of a file: forward bins and lagged behaviour
    cut = block_start(n_first * seg + tail)
    starts = [i * seg for i in range(n_first)] + [cut + i * seg for i in range(len(plan) - n_first)]
    trials = [{"split": split, "start_time": st, "stop_time": st + seg} for (split, _), st in zip(plan, starts)]
    n_ms = starts[-1] + seg + tail

    lag = behaviour_lag(layout)
    pad = abs(lag)
    x_ext = np.zeros((n_ms + 2 * pad, cfg.latent_dim))
    onset = int(rng.integers(0, 400)) - pad
    s = cfg.trial_noise
    while onset < n_ms + pad:
        theta = rng.uniform(0, 2 * np.pi)
        direction = np.array([np.cos(theta), np.sin(theta)])
        p = k_prep @ direction + s * rng.standard_normal(n_prep)
        speed = float(np.exp(cfg.speed_sd * rng.standard_normal()))
        m = k_move @ direction * speed * (1 + 0.5 * s * rng.standard_normal()) + 0.5 * s * rng.standard_normal(n_move)
        add_event(x_ext, pad, onset, -int(rng.integers(150, 300)), p, m, freqs, speed)
        onset += int(rng.integers(400, 900))
    return Recording(
        n_ms=n_ms,
        cut_ms=cut,
        trials=trials,
        latents=x_ext[pad : pad + n_ms],
        behaviour=velocity(x_ext, pad, n_ms, lag, vel_readout, rng),
        columns=TRIAL_COLUMNS["mc_rtt"],
    )
