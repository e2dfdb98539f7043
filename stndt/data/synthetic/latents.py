"""Latent building blocks of the reaching layouts (mc_maze family, area2_bump, mc_rtt): preparatory
states, damped rotations after movement onset, and the hand velocity read out of them.

Every piece is smooth (no kinks): rates built from them vary on the time scale of a reach, as
condition-averaged motor-cortical rates do, not faster than nlb_tools' 70 ms PSTH smoothing can follow
(docs/synthetic-data.md: sharp true rates lose psth R2 against that smoothed target).
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.special import expit

_VEL_NOISE = 0.3  # motor noise in the velocity, relative to its sd
_TAU_RISE, _TAU_PREP_FALL, _TAU_MOVE = 40.0, 250.0, 200.0  # ms; preparatory rise/fall, movement envelope peak
_ROTATION_HZ = (0.6, 1.4)  # rotation frequencies of the movement planes (jPCA-like, Churchland et al. 2012)
_KERNEL_SPAN_MS = (-1200, 2000)  # where one movement event's latents are non-negligible (ms from onset)


def latent_split(latent_dim: int) -> tuple[int, int]:
    """(preparatory dims, rotational 'movement' dims); movement dims come in rotation planes."""
    n_move = 2 * max(1, latent_dim // 4)
    return latent_dim - n_move, n_move


def rotation_freqs(n_move: int) -> np.ndarray:
    return np.linspace(*_ROTATION_HZ, n_move // 2)


def add_event(
    x: np.ndarray,
    pad: int,
    onset: int,
    prep_start: int | None,
    p: np.ndarray,
    m: np.ndarray,
    freqs_hz: np.ndarray,
    speed: float = 1.0,
) -> None:
    """Add one movement event's latents to `x` (extended grid: row i is time i - pad ms), in place.

    Preparatory part: `p`, rising from `prep_start` (ms from onset; None: no preparation) and decaying
    after onset. Movement part: damped rotations of `m` (one frequency per plane) under a smooth
    envelope (zero, with zero slope, at onset; peak `_TAU_MOVE` ms later), run `speed` times as fast as
    the condition's (faster reaches: faster dynamics).
    """
    lo = max(0, onset + _KERNEL_SPAN_MS[0] + pad)
    hi = min(len(x), onset + _KERNEL_SPAN_MS[1] + pad)
    if hi <= lo:
        return
    s = np.arange(lo, hi, dtype=float) - pad - onset  # ms from onset
    n_prep = len(p)
    if prep_start is not None and n_prep:
        prep = expit((s - prep_start) / _TAU_RISE) * np.exp(
            -_TAU_RISE * np.logaddexp(0, s / _TAU_RISE) / _TAU_PREP_FALL
        )
        x[lo:hi, :n_prep] += prep[:, None] * p[None, :]
    sp = np.clip(s, 0, None) * speed
    env = (sp / _TAU_MOVE) ** 2 * np.exp(2 * (1 - sp / _TAU_MOVE))
    ang = 2 * np.pi * freqs_hz[None, :] * sp[:, None] / 1000.0  # (time, planes)
    m0, m1 = m[0::2], m[1::2]
    cos, sin = np.cos(ang), np.sin(ang)
    x[lo:hi, n_prep::2] += env[:, None] * (m0 * cos - m1 * sin)
    x[lo:hi, n_prep + 1 :: 2] += env[:, None] * (m0 * sin + m1 * cos)


def velocity(
    x_ext: np.ndarray, pad: int, n_ms: int, lag: int, readout: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
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
