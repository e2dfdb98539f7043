"""The NLB spike-smoothing baseline (as in nlb_tools' examples/baselines/smoothing/run_smoothing.py).

* Held-in rates: held-in spikes convolved with a normalised Gaussian kernel (sd `kern_sd_ms`,
  converted to bins; kernel about 6 sd long, zero padding at the trial edges as np.convolve 'same';
  odd length so the kernel is centred - NLB's even 60-bin kernel shifts by half a bin).
* Held-out rates: per held-out neuron a Poisson GLM (scikit-learn PoissonRegressor, L2 `alpha`) from the
  log of the smoothed held-in spikes (+1e-4) to the held-out counts, fitted on the train trials of
  the phase, predicting train and eval trials.
* Forward prediction (not part of the NLB script): `forward='glm'` (default) scales each neuron's
  train forward-time profile by a Poisson GLM of the trial's recent (last-bin) smoothed held-in
  log-rates (see `_forward_glm`); `forward='psth'` uses the trial-averaged train forward rates alone.
  Both floored at `min_rate`.
* Fits run single-threaded (threadpoolctl): BLAS threads made these small fits ~10x slower here.

NLB tuned (kern_sd, alpha) per dataset; the defaults here are its mc_maze values (50 ms, 0.01).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping

import numpy as np
from scipy.ndimage import convolve1d
from scipy.signal.windows import gaussian
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import PoissonRegressor
from threadpoolctl import threadpool_limits

from stndt.datasets import nlb_key

log = logging.getLogger(__name__)

LOG_OFFSET = 1e-4  # added before the log of smoothed spikes, as in the NLB script
MIN_RATE = 1e-9  # rates are clipped here (evaluate() would replace exact zeros with 1e-9 anyway)

_INPUT_KEYS = (
    "train_spikes_heldin",
    "train_spikes_heldout",
    "train_spikes_heldin_forward",
    "train_spikes_heldout_forward",
    "eval_spikes_heldin",
)


def gaussian_window(kern_sd_ms: float, bin_width_ms: int) -> np.ndarray:
    """Normalised, centred Gaussian kernel in bins (odd length 2*floor(3 sd)+1)."""
    if kern_sd_ms <= 0 or bin_width_ms <= 0:
        raise ValueError(f"kern_sd_ms and bin_width_ms must be > 0, got {kern_sd_ms}, {bin_width_ms}")
    sd_bins = kern_sd_ms / bin_width_ms
    window = gaussian(2 * int(3 * sd_bins) + 1, sd_bins, sym=True)
    return window / window.sum()


def smooth_spikes(spikes: np.ndarray, kern_sd_ms: float, bin_width_ms: int) -> np.ndarray:
    """Gaussian-smooth (trials, time, neurons) spikes along time; NaN bins count as no spikes."""
    x = np.nan_to_num(np.asarray(spikes, dtype=np.float64))
    return convolve1d(x, gaussian_window(kern_sd_ms, bin_width_ms), axis=1, mode="constant", cval=0.0)


def fit_poisson_glm(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_pred: list[np.ndarray],
    alpha: float,
    max_iter: int = 100,
    solver: str = "newton-cholesky",
) -> list[np.ndarray]:
    """One PoissonRegressor per output column; returns predictions for each matrix in `x_pred`.

    Newton-Cholesky reaches the same (convex) optimum as NLB's default lbfgs in a handful of
    iterations - about six times faster here at 56,000 samples x 100 features.
    """
    with threadpool_limits(limits=1):  # small BLAS calls: extra threads only add overhead (measured 10x)
        return _fit_poisson_glm(x_train, y_train, x_pred, alpha, max_iter, solver)


def _fit_poisson_glm(x_train, y_train, x_pred, alpha, max_iter, solver):
    preds: list[list[np.ndarray]] = [[] for _ in x_pred]
    for j in range(y_train.shape[1]):
        y = y_train[:, j]
        iters = max_iter
        while True:
            glm = PoissonRegressor(alpha=alpha, max_iter=iters, solver=solver)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                glm.fit(x_train, y)
            if glm.n_iter_ < iters or iters >= 10 * max_iter:
                break
            iters *= 5  # the NLB script also retries with more iterations
        if glm.n_iter_ >= iters:
            log.warning("Poisson GLM for output column %d did not converge in %d iterations", j, iters)
        for p, x in zip(preds, x_pred):
            p.append(glm.predict(x))
    return [np.clip(np.stack(p, axis=1), MIN_RATE, None) for p in preds]


def _forward_glm(
    tr_smooth: np.ndarray,
    ev_smooth: np.ndarray,
    train_fwd: np.ndarray,
    kern_sd_ms: float,
    bin_width_ms: int,
    alpha: float,
    min_rate: float,
) -> np.ndarray:
    """Forward rates from each trial's recent held-in activity: rate[i, t, n] = g_n(x_i) * p_n(t).

    x_i: log of trial i's held-in rates at the last observed bin (the smoothed value divided by the
    kernel mass inside the window, i.e. a half-Gaussian average of the recent past).
    The Poisson likelihood of this model factorises exactly: the trial totals over the forward window
    are Poisson with mean g_n(x_i) (a Poisson GLM per neuron, fitted on n_train samples), and the
    split of a total over the forward bins is multinomial with p_n(t) = the neuron's share of its
    train forward spikes in bin t (rates floored at `min_rate`). Same maximum as one GLM per neuron
    with unpenalised per-bin offsets on every (trial, bin) sample, at a fraction of the cost.
    """
    window = gaussian_window(kern_sd_ms, bin_width_ms)
    mass = window[: len(window) // 2 + 1].sum()
    keep = ~np.isnan(train_fwd).any(axis=(1, 2))
    if not keep.any():
        raise ValueError("tensors: every train trial has NaN forward spikes")
    fwd = train_fwd[keep]
    x_tr = np.log(tr_smooth[keep, -1] / mass + LOG_OFFSET)
    x_ev = np.log(ev_smooth[:, -1] / mass + LOG_OFFSET)
    (totals,) = fit_poisson_glm(x_tr, fwd.sum(axis=1), [x_ev], alpha)  # (n_eval, neurons)
    counts = fwd.sum(axis=0)  # (t_fp, neurons)
    share = counts / np.maximum(counts.sum(axis=0, keepdims=True), 1.0)
    return np.maximum(totals[:, None, :] * share[None], min_rate)


def _check_inputs(tensors: Mapping) -> None:
    for k in _INPUT_KEYS:
        if k not in tensors:
            raise KeyError(f"tensors: missing '{k}' (needed by the smoothing baseline)")
        if np.asarray(tensors[k]).ndim != 3:
            raise ValueError(f"tensors['{k}'] must be (trials, time, neurons), got shape {np.shape(tensors[k])}")
    tr_in, tr_out = np.shape(tensors["train_spikes_heldin"]), np.shape(tensors["train_spikes_heldout"])
    if tr_in[:2] != tr_out[:2]:
        raise ValueError(
            f"tensors: train_spikes_heldin {tr_in} and train_spikes_heldout {tr_out} differ in trials/bins"
        )
    if np.shape(tensors["eval_spikes_heldin"])[2] != tr_in[2]:
        raise ValueError("tensors: eval_spikes_heldin and train_spikes_heldin differ in neuron count")


def smoothing_rates(
    tensors: Mapping,
    layout: str,
    bin_width_ms: int,
    kern_sd_ms: float = 50.0,
    alpha: float = 0.01,
    forward: str = "glm",
    min_rate: float = 1e-4,
) -> dict:
    """Spike-smoothing baseline rates for one phase, in the NLB submission layout {nlb_key: {...}}.

    `tensors` holds the phase's input tensors (nlb_tools key names). `forward`: 'glm' or 'psth' (see
    the module docstring). `min_rate` floors the forward rates (a neuron silent in a forward bin on
    every train trial would otherwise get ~0 rate there).
    """
    _check_inputs(tensors)
    tr_in = np.asarray(tensors["train_spikes_heldin"], dtype=np.float64)
    tr_out = np.asarray(tensors["train_spikes_heldout"], dtype=np.float64)
    ev_in = np.asarray(tensors["eval_spikes_heldin"], dtype=np.float64)
    n_tr, t_len, n_in = tr_in.shape
    n_ev, t_ev = ev_in.shape[:2]
    n_out = tr_out.shape[2]

    tr_smooth = smooth_spikes(tr_in, kern_sd_ms, bin_width_ms)
    ev_smooth = smooth_spikes(ev_in, kern_sd_ms, bin_width_ms)
    x_tr = np.log(tr_smooth.reshape(-1, n_in) + LOG_OFFSET)
    x_ev = np.log(ev_smooth.reshape(-1, n_in) + LOG_OFFSET)
    y_tr = tr_out.reshape(-1, n_out)
    keep = ~np.isnan(y_tr).any(axis=1)  # bins without held-out data cannot train the GLM
    if not keep.any():
        raise ValueError("tensors['train_spikes_heldout'] is NaN everywhere")
    tr_pred, ev_pred = fit_poisson_glm(x_tr[keep], y_tr[keep], [x_tr, x_ev], alpha)

    fwd = np.concatenate(
        [
            np.asarray(tensors["train_spikes_heldin_forward"], dtype=np.float64),
            np.asarray(tensors["train_spikes_heldout_forward"], dtype=np.float64),
        ],
        axis=-1,
    )
    if forward == "psth":
        psth = np.maximum(np.nanmean(fwd, axis=0), min_rate)
        ev_fwd = np.broadcast_to(psth, (n_ev, *psth.shape))
    elif forward == "glm":
        ev_fwd = _forward_glm(tr_smooth, ev_smooth, fwd, kern_sd_ms, bin_width_ms, alpha, min_rate)
    else:
        raise ValueError(f"forward must be 'glm' or 'psth', got {forward!r}")
    fwd_in, fwd_out = ev_fwd[..., :n_in], ev_fwd[..., n_in:]

    f32 = np.float32
    return {
        nlb_key(layout, bin_width_ms): {
            "train_rates_heldin": np.clip(tr_smooth, MIN_RATE, None).astype(f32),
            "train_rates_heldout": tr_pred.reshape(n_tr, t_len, n_out).astype(f32),
            "eval_rates_heldin": np.clip(ev_smooth, MIN_RATE, None).astype(f32),
            "eval_rates_heldout": ev_pred.reshape(n_ev, t_ev, n_out).astype(f32),
            "eval_rates_heldin_forward": fwd_in.astype(f32),
            "eval_rates_heldout_forward": fwd_out.astype(f32),
        }
    }
