"""From latents to units: rectified (softplus) readout with a soft rate ceiling, a slow gain fluctuation
shared by all units, and exact inhomogeneous Poisson spike times.

Each unit reads out one standardised direction of the latent state, z_n(t) = w_n . x(t) + c_n (mean 0,
sd 1 over trial time), through a smooth rectification

    rate_n(t) = ceiling( a_n * softplus(K * (z_n(t) - theta_n)) / K * g(t) ** l_n ),

like the threshold-linear tuning of motor-cortical neurons. The threshold theta_n sets the unit's tuning
depth (sd / mean of its rate within trials: high thresholds give sparse, strongly tuned units, low ones
weakly tuned units with a high baseline), drawn log-normal across units around `modulation`; the gain
a_n sets its mean rate, log-normal around `mean_rate_hz`. Rates grow linearly, not exponentially, with
the latents, so peaks stay a few times the mean; a unit whose peak over the calibration sample would pass
half of `max_rate_hz` gets a lower gain (so a high mean rate comes with a shallower tuning), and
`ceiling(r) = r / (1 + (r / max_rate)^4)^(1/4)` is a smooth, strictly increasing saturation (1.5% at half
the ceiling) for the rarer peaks beyond: no rate is ever clipped to, or sits flat at, a constant.
g(t) = exp(gain_sd * s(t) - gain_sd^2 / 2), s a unit-variance Gaussian process with a ~1 s time scale,
with loadings l_n ~ U(0.5, 1.5): slow shared excitability changes within and across trials (Goris et al.
2014), a source of single-trial variability.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d

from stndt.data.synthetic.config import SyntheticConfig

CHUNK_MS = 65536  # rates and spikes are drawn in fixed chunks (memory; deterministic draw order)
_KNEE = 2.0  # rectification sharpness K (per sd of z): the knee is ~1/K sd wide
_CEILING_POWER = 4.0  # order of the soft ceiling
_GAIN_TIMESCALE_MS = 1000.0  # sd of the Gaussian kernel smoothing the shared gain process
_DEPTH_RANGE = (0.1, 1.5)  # tuning depths (sd / mean) are kept in this range
_CALIBRATION_ROWS = 20000  # time points used to calibrate thresholds and gains
_PEAK_FRACTION = 0.5  # a unit's calibration peak stays below this fraction of max_rate_hz


@dataclass(frozen=True)
class Readout:
    """Per-unit readout parameters (rates in spikes per 1 ms bin)."""

    w: np.ndarray  # (units, latent_dim): z = latents @ w.T + offset
    offset: np.ndarray  # (units,)
    threshold: np.ndarray  # (units,)
    scale: np.ndarray  # (units,) spikes/ms per unit of the rectified drive
    loading: np.ndarray  # (units,) exponent of the shared gain
    max_rate: float  # soft ceiling, spikes/ms

    def rates(self, latents: np.ndarray, gain: np.ndarray | None = None) -> np.ndarray:
        """Expected spikes per 1 ms bin, (time, units), for latents (time, latent_dim) and gain (time,)."""
        r = self.scale * rectify(latents @ self.w.T + self.offset - self.threshold)
        if gain is not None:
            r = r * gain[:, None] ** self.loading
        return soft_ceiling(r, self.max_rate)


def soft_ceiling(r: np.ndarray, max_rate: float) -> np.ndarray:
    """Smooth, strictly increasing saturation below `max_rate` (never reached, never flat)."""
    return r / (1.0 + (r / max_rate) ** _CEILING_POWER) ** (1.0 / _CEILING_POWER)


def rectify(v: np.ndarray) -> np.ndarray:
    """softplus(K v) / K, numerically stable: ~max(v, 0) with a knee ~1/K wide."""
    u = _KNEE * v
    return (np.maximum(u, 0) + np.log1p(np.exp(-np.abs(u)))) / _KNEE


def unit_readout(
    latents: np.ndarray, rows: np.ndarray, n_units: int, cfg: SyntheticConfig, rng: np.random.Generator
) -> Readout:
    """Readout weights, thresholds and gains giving each unit its drawn tuning depth and mean rate.

    Both are calibrated over `rows` (time points inside trials, where the benchmark scores the rates),
    before the shared gain (whose mean is 1) and the soft ceiling.
    """
    if len(rows) > _CALIBRATION_ROWS:
        rows = np.sort(rng.choice(rows, _CALIBRATION_ROWS, replace=False))
    sample = latents[rows]
    w = rng.standard_normal((n_units, latents.shape[1]))
    proj = sample @ w.T
    sd = np.maximum(proj.std(axis=0), 1e-9)
    w /= sd[:, None]
    offset = -proj.mean(axis=0) / sd
    z = sample @ w.T + offset
    depth = np.clip(cfg.modulation * np.exp(cfg.modulation_spread * rng.standard_normal(n_units)), *_DEPTH_RANGE)
    mean_hz = cfg.mean_rate_hz * np.exp(cfg.rate_spread * rng.standard_normal(n_units))
    loading = rng.uniform(0.5, 1.5, n_units)

    # the depth grows monotonically with the threshold: bisection, all units at once
    lo, hi = np.full(n_units, -25.0), np.full(n_units, 6.0)
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        d = rectify(z - mid)
        too_deep = d.std(axis=0) / np.maximum(d.mean(axis=0), 1e-12) > depth
        hi, lo = np.where(too_deep, mid, hi), np.where(too_deep, lo, mid)
    theta = 0.5 * (lo + hi)
    drive = rectify(z - theta)
    # mean rate as drawn, unless the unit's peak would come near the ceiling: then lower (a high-rate
    # unit is less deeply tuned), so the ceiling only bends the rarest peaks and never flattens a rate
    scale = np.minimum(
        mean_hz / 1000.0 / drive.mean(axis=0), _PEAK_FRACTION * cfg.max_rate_hz / 1000.0 / drive.max(axis=0)
    )
    return Readout(w=w, offset=offset, threshold=theta, scale=scale, loading=loading, max_rate=cfg.max_rate_hz / 1000.0)


def shared_gain(n_ms: int, gain_sd: float, rng: np.random.Generator) -> np.ndarray:
    """exp(gain_sd * s(t) - gain_sd^2 / 2): s a unit-variance Gaussian process with a ~1 s time scale."""
    s = gaussian_filter1d(rng.standard_normal(n_ms), _GAIN_TIMESCALE_MS, mode="wrap")
    s /= max(float(s.std()), 1e-12)
    return np.exp(gain_sd * s - 0.5 * gain_sd**2)


def poisson_spikes(
    latents: np.ndarray,
    readout: Readout,
    gain: np.ndarray,
    rng: np.random.Generator,
    progress: Callable[[], None] = lambda: None,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """True rates (expected spikes per 1 ms bin, float32) and spike times (ms) of every unit.

    Exact inhomogeneous Poisson process with a rate constant within each 1 ms bin (time rescaling):
    the count in a chunk is Poisson(sum of rates), the spikes are placed by inverting the cumulative
    rate. Spikes stay 0.001-0.999 ms inside their bin, so nlb_tools bins each where it was drawn.
    """
    n_ms, n_units = len(latents), len(readout.w)
    rates = np.empty((n_ms, n_units), dtype=np.float32)
    spikes: list[list[np.ndarray]] = [[] for _ in range(n_units)]
    for c0 in range(0, n_ms, CHUNK_MS):
        lam = readout.rates(latents[c0 : c0 + CHUNK_MS], gain[c0 : c0 + CHUNK_MS]).astype(np.float32)
        lam = np.maximum(lam, np.float32(1e-9))  # spikes are placed by dividing by the rate
        rates[c0 : c0 + len(lam)] = lam  # (time, units)
        lam_t = np.ascontiguousarray(lam.T)  # (units, time): one contiguous row per unit
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
