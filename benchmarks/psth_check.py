"""Where a method's psth R2 comes from: held-in vs held-out units, and nlb_tools' target vs a noise-free one.

nlb_tools scores psth R2 against a target built from SPIKES: per condition, the average over every trial
of the file (test phase: train + val + test) of 1 ms spikes smoothed with a Gaussian (`kern_sd` of the
dataset in nlb_tools' PARAMS). The eval trials' own held-in spikes are part of that target and are the
smoothing baseline's input, and with few trials per condition the target is noisy. On synthetic data the
true rates are known, so the same predictions can also be scored against a noise-free target: the
condition average over the same trials of the TRUE rates, smoothed with the same kernel (in bins, edges
held at their end values, which is close to but not exactly nlb_tools' smoothing of the continuous
recording before trials are cut). A method whose psth R2 is low against both targets has poor condition
averages; one that is low only against nlb_tools' target pays for the target's noise.

Usage:
  python benchmarks/psth_check.py results/mc_maze_small_synth [--phase test] \
      smoothing=baselines/smoothing/rates_test.h5 member=members/m000/rates_test.h5 ensemble=ensemble/rates_test.h5
(rates files relative to the dataset folder; the oracle, its truth.h5, is always included). Prints one
markdown table of psth R2 (nlb_tools' eval_psth) per method, all / held-in / held-out units, against both
targets. Seconds.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def noise_free_psth(truth: dict, targets: dict, kern_bins: float) -> np.ndarray:
    """(condition, time, unit) condition averages of the true rates over the conditions' train + eval
    trials (the trials nlb_tools' target averages), smoothed in time like the target."""
    from scipy.ndimage import gaussian_filter1d

    rates = {
        part: np.concatenate([truth[f"{part}_rates_heldin"], truth[f"{part}_rates_heldout"]], axis=-1)
        for part in ("train", "eval")
    }
    smooth = {part: gaussian_filter1d(r, kern_bins, axis=1, mode="nearest") for part, r in rates.items()}
    out = []
    for tr_idx, ev_idx in zip(targets["train_cond_idx"], targets["eval_cond_idx"]):
        trials = [smooth["train"][np.asarray(tr_idx, int)], smooth["eval"][np.asarray(ev_idx, int)]]
        out.append(np.concatenate(trials).mean(axis=0))
    return np.stack(out)


def psth_r2(psth: np.ndarray, rates: np.ndarray, cond_idx, jitter: np.ndarray, units: slice) -> float:
    """nlb_tools' eval_psth on a subset of units, undoing the eval trials' jitter (dmfc_rsg) as its
    evaluate does."""
    from nlb_tools.evaluation import eval_psth

    return float(eval_psth(psth[..., units], rates[..., units], cond_idx, jitter=jitter))


def main(argv: list[str] | None = None) -> None:
    from nlb_tools.make_tensors import PARAMS

    from stndt.data.tensors import read_layout
    from stndt.evaluate.metrics import load_rates, load_targets

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset_dir", type=Path, help="results/<dataset>")
    ap.add_argument("rates", nargs="*", help="NAME=rates file relative to dataset_dir")
    ap.add_argument("--phase", default="test")
    a = ap.parse_intermixed_args(argv)
    tensors = a.dataset_dir / "tensors" / f"{a.phase}.h5"
    layout, bw = read_layout(tensors)
    ((key, targets),) = load_targets(tensors).items()
    truth = load_rates(a.dataset_dir / "truth.h5", phase=a.phase)[key]
    kern_sd = PARAMS[layout]["psth_params"]["kern_sd"]
    target = np.asarray(targets["psth"], float)
    cond_idx = [np.asarray(c, int) for c in targets["eval_cond_idx"]]
    jitter = np.asarray(targets.get("eval_jitter", np.zeros(len(truth["eval_rates_heldin"]))), int)
    # Jittered eval windows (dmfc_rsg) and NaN-padded trials would need un-shifting and NaN-aware smoothing
    # before averaging; not done here, so no noise-free column rather than a wrong one.
    exact = not jitter.any() and all(np.isfinite(truth[k]).all() for k in truth if "_rates_held" in k)
    clean = noise_free_psth(truth, targets, kern_sd / bw) if exact else None
    n_in = truth["eval_rates_heldin"].shape[-1]
    parts = {"all": slice(None), "held-in": slice(0, n_in), "held-out": slice(n_in, None)}
    methods = {"oracle (true rates)": truth}
    for item in a.rates:
        name, path = item.split("=", 1)
        methods[name] = load_rates(a.dataset_dir / path)[key]
    per_cond = [len(c) for c in cond_idx]
    print(
        f"{a.dataset_dir.name}, {a.phase} phase: {len(cond_idx)} conditions, {int(np.median(per_cond))} eval "
        f"trials per condition (median), target kernel {kern_sd} ms; psth R2 (all / held-in / held-out units)\n"
    )
    print("| method | nlb_tools target (spikes) | noise-free target (true rates) |")
    print("|---|---|---|")
    for name, r in methods.items():
        rates = np.concatenate([r["eval_rates_heldin"], r["eval_rates_heldout"]], axis=-1).astype(float)
        cells = [
            " / ".join(f"{psth_r2(psth, rates, cond_idx, jitter, s):.3f}" for s in parts.values())
            if psth is not None
            else "n/a (jittered or NaN-padded trials)"
            for psth in (target, clean)
        ]
        print(f"| {name} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
