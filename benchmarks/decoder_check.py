"""Why does a model's vel R2 trail smoothing's on a synthetic dataset? Two checks on a finished run.

nlb_tools fits its velocity decoder (ridge) on the TRAIN trials' rates and scores it on the eval trials'.
A model that fits its training trials better than unseen ones would hand the decoder differently
distributed rates at fit and at test time, and lose vel R2 for that reason alone. This prints, for each
named rates folder of a synthetic dataset (and the true rates):

1. rate R2 against the true rates on the train trials (which the model trained on) and on the val trials
   (the val phase's rates_val.h5): a large gap means the model overfits its training trials;
2. vel R2 on the test trials with the decoder fit as nlb_tools fits it (train-trial rates), and fit by
   5-fold cross-validation on the test trials' own rates (no train/eval mismatch; fewer trials to fit
   on, so every number is lower; one decoder for all trials, where nlb_tools fits one per decode mask).
   If the mismatch were the cause, the second would restore the model's lead;
3. where velocity goes missing: the test trials' per-neuron correlation with the true rates (mean over
   neurons), the rates' roughness in time (mean absolute bin-to-bin change / s.d.; the true rates are
   smooth), and vel R2 after smoothing the rates with a Gaussian of SIGMA_BINS bins;
4. fit or overfit of the held-out neurons: co-bps (nlb_tools' bits_per_spike of the held-out rates) on
   the train trials, which the model was fit on, and on the val trials. A model below another on both
   underfits the held-out neurons; one above on train and below on val overfits them.

Usage (a results folder of a synthetic dataset; rates folders relative to it):
  python benchmarks/decoder_check.py results/mc_maze_synth baselines/smoothing members/m000 ensemble
Layouts with velocity (mc_maze, mc_rtt, area2_bump, mc_maze_small) only.
"""

from __future__ import annotations

import sys
from pathlib import Path

import h5py
import numpy as np
from sklearn.metrics import r2_score
from sklearn.model_selection import KFold

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TRUTH = "truth"
SIGMA_BINS = 3


def _inner(data: dict) -> dict:
    (key,) = data.keys()
    return data[key]


def _truth(ds: Path, phase: str) -> dict:
    with h5py.File(ds / "truth.h5") as f:
        return {k: np.asarray(v) for k, v in _inner(f[phase]).items()}


def _flat(rates: dict, prefix: str) -> np.ndarray:
    """(trials*bins, neurons): held-in and held-out rates of the `prefix` ('train' or 'eval') trials."""
    x = np.concatenate([rates[f"{prefix}_rates_heldin"], rates[f"{prefix}_rates_heldout"]], -1)
    return x.reshape(-1, x.shape[-1])


def rate_r2(pred: dict, true: dict, prefix: str) -> float:
    p, t = _flat(pred, prefix), _flat(true, prefix)
    keep = ~np.isnan(t).any(axis=1)
    return float(r2_score(t[keep], p[keep], multioutput="variance_weighted"))


def cv_vel_r2(rates: np.ndarray, behavior: np.ndarray, folds: int = 5) -> float:
    """vel R2 of nlb_tools' decoder fit and scored by k-fold cross-validation over trials."""
    from nlb_tools.evaluation import fit_and_eval_decoder

    n, t = behavior.shape[:2]
    x, y = rates.reshape(n, t, -1), behavior
    total = 0.0
    for fit, held in KFold(folds, shuffle=True, random_state=0).split(np.arange(n)):
        r2 = fit_and_eval_decoder(
            x[fit].reshape(-1, x.shape[-1]),
            y[fit].reshape(-1, y.shape[-1]),
            x[held].reshape(-1, x.shape[-1]),
            y[held].reshape(-1, y.shape[-1]),
        )
        total += len(held) * r2
    return total / n


def _trials(rates: dict, prefix: str) -> np.ndarray:
    return np.concatenate([rates[f"{prefix}_rates_heldin"], rates[f"{prefix}_rates_heldout"]], -1)


def neuron_corr(pred: dict, true: dict) -> float:
    """Mean over neurons of the correlation of predicted and true eval rates (all bins pooled)."""
    p, t = (_trials(r, "eval").reshape(-1, _trials(r, "eval").shape[-1]) for r in (pred, true))
    p, t = p - p.mean(0), t - t.mean(0)
    return float(np.mean((p * t).sum(0) / np.sqrt((p * p).sum(0) * (t * t).sum(0))))


def nlb_vel_r2(rates: dict, targets: dict) -> float:
    """vel R2 exactly as nlb_tools' evaluate computes it (decoder fit on the train trials' rates, each
    decode mask apart, e.g. area2_bump's active and passive trials)."""
    from nlb_tools.evaluation import velocity_decoding

    train, ev = _trials(rates, "train"), _trials(rates, "eval")
    train_mask = targets.get("train_decode_mask", np.full(train.shape[0], True)[:, None])
    eval_mask = targets.get("eval_decode_mask", np.full(ev.shape[0], True)[:, None])
    behavior = [np.asarray(targets[k], float) for k in ("train_behavior", "eval_behavior")]
    return float(velocity_decoding(train, behavior[0], np.asarray(train_mask), ev, behavior[1], np.asarray(eval_mask)))


def roughness(rates: dict) -> float:
    x = _trials(rates, "eval")
    return float(np.abs(np.diff(x, axis=1)).mean() / x.std())


def heldout_cobps(rates: dict, val_tensors: dict, val_targets: dict) -> tuple[float, float]:
    """co-bps of the held-out neurons on the train trials and on the val eval trials (val phase)."""
    from nlb_tools.evaluation import bits_per_spike

    train = bits_per_spike(np.asarray(rates["train_rates_heldout"], float), val_tensors["train_spikes_heldout"])
    held = bits_per_spike(np.asarray(rates["eval_rates_heldout"], float), val_targets["eval_spikes_heldout"])
    return float(train), float(held)


def main(argv: list[str]) -> None:
    import warnings

    from scipy.linalg import LinAlgWarning

    # nlb_tools' ridge grid includes tiny alphas: scikit-learn warns on every fit, for no wrong number
    warnings.filterwarnings("ignore", category=LinAlgWarning)

    from stndt.evaluate.metrics import load_rates, load_targets

    if len(argv) < 2:
        sys.exit(__doc__)
    ds, names = Path(argv[0]), [TRUTH, *argv[1:]]
    targets = _inner(load_targets(ds / "tensors" / "test.h5"))
    if "eval_behavior" not in targets:
        sys.exit(f"{ds}/tensors/test.h5: no behavior in its targets (a layout without velocity)")
    truth = {p: _truth(ds, p) for p in ("val", "test")}
    with h5py.File(ds / "tensors" / "val.h5", "r") as f:
        val_tensors = {"train_spikes_heldout": np.asarray(f["train_spikes_heldout"], float)}
    val_targets = _inner(load_targets(ds / "tensors" / "val.h5"))
    train_b, eval_b = (np.asarray(targets[k], float) for k in ("train_behavior", "eval_behavior"))
    from scipy.ndimage import gaussian_filter1d

    print(
        "| rates | rate R2, train trials | rate R2, val trials | vel R2 (nlb_tools: decoder fit on train-trial"
        " rates) | vel R2 (decoder fit on test-trial rates, 5-fold CV) | per-neuron corr with truth | roughness |"
        f" vel R2 after a {SIGMA_BINS}-bin Gaussian | held-out co-bps, train trials | held-out co-bps, val trials |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in names:
        val = truth["val"] if name == TRUTH else _inner(load_rates(ds / name / "rates_val.h5"))
        test = truth["test"] if name == TRUTH else _inner(load_rates(ds / name / "rates_test.h5"))
        nlb = nlb_vel_r2(test, targets)
        cv = cv_vel_r2(_flat(test, "eval"), eval_b)
        smooth = {k: gaussian_filter1d(np.asarray(v, float), SIGMA_BINS, axis=1) for k, v in test.items()}
        smoothed = nlb_vel_r2(smooth, targets)
        fit, held = heldout_cobps(val, val_tensors, val_targets)
        print(
            f"| {name} | {rate_r2(val, truth['val'], 'train'):.3f} | {rate_r2(val, truth['val'], 'eval'):.3f} "
            f"| {nlb:.3f} | {cv:.3f} | {neuron_corr(test, truth['test']):.3f} | {roughness(test):.4f} "
            f"| {smoothed:.3f} | {fit:.3f} | {held:.3f} |"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
