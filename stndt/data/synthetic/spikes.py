"""From latents to units: log-linear readout weights and exact inhomogeneous Poisson spike times."""
from __future__ import annotations

from typing import Callable

import numpy as np

from stndt.data.synthetic.config import SyntheticConfig

_MAX_RATE_HZ = 200.0
CHUNK_MS = 65536          # rates and spikes are drawn in fixed chunks (memory; deterministic draw order)


def unit_readout(latents: np.ndarray, rows: np.ndarray, n_units: int, cfg: SyntheticConfig,
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


def poisson_spikes(latents: np.ndarray, w: np.ndarray, bias: np.ndarray, rng: np.random.Generator,
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
    for c0 in range(0, n_ms, CHUNK_MS):
        lam = np.exp(np.minimum(latents[c0:c0 + CHUNK_MS].astype(np.float32) @ w32 + bias32, max_log))
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
