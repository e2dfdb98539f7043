"""The val holdout: eval trials of the val phase that no selection step may read.

Every choice the pipeline makes on val trials (a member's best epoch and early stop, the Bayesian
search's objective, the ensemble's ranking and size, the split-half estimate) makes the val numbers of
what it chose optimistic. With `evaluation: {holdout: f}` a seeded, condition-stratified share f of the
val eval trials is set aside when the val tensors are built: their indices are stored in the val
tensors file (`holdout_idx`), training validates on the other trials only, every val score is computed
on the other trials (the "selection" trials), and the same score on the held-out trials is reported
beside it as the unbiased local estimate ("val holdout (not used for selection)").

The PSTH targets of psth R2 are condition averages that nlb_tools builds from every trial; they are
not a selection input (no step selects on psth R2), so scoring holdout trials against them is fair.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

HOLDOUT_KEY = "holdout_idx"  # dataset in the val tensors file: sorted eval-trial indices set aside


def holdout_trials(n_eval: int, fraction: float, seed: int, cond_idx=None) -> np.ndarray:
    """Sorted indices of the eval trials to set aside: round(fraction x n) of them, drawn per condition
    (round(fraction x its trials), at least one from every condition with two or more trials) so that the
    holdout covers the conditions as the selection trials do; uniformly when there are no conditions."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"evaluation.holdout: must be in [0, 1), got {fraction!r}")
    if fraction == 0.0 or n_eval == 0:
        return np.zeros(0, dtype=np.int64)
    rng = np.random.default_rng(seed)
    groups = [np.asarray(c, dtype=np.int64) for c in cond_idx] if cond_idx is not None else []
    covered = np.unique(np.concatenate(groups)) if groups else np.zeros(0, dtype=np.int64)
    rest = np.setdiff1d(np.arange(n_eval), covered)  # trials of no condition (or all, without conditions)
    chosen = []
    for g in [*groups, rest]:
        if g.size:
            k = int(round(fraction * g.size))
            if g.size >= 2:
                k = min(max(k, 1), g.size - 1)
            chosen.append(rng.choice(np.sort(g), size=k, replace=False))
    idx = np.unique(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)
    if idx.size >= n_eval:
        raise ValueError(
            f"evaluation.holdout {fraction}: would leave no val trial for selection ({n_eval} eval trials)"
        )
    return idx.astype(np.int64)


def selection_trials(n_eval: int, holdout: np.ndarray) -> np.ndarray:
    """The eval trials every selection step uses: all but the holdout."""
    return np.setdiff1d(np.arange(n_eval), holdout).astype(np.int64)


def read_holdout(tensors_path: str | Path) -> np.ndarray:
    """The holdout indices stored in a tensors file (empty when it has none: no holdout, or the test phase)."""
    import h5py

    with h5py.File(tensors_path, "r") as f:
        if HOLDOUT_KEY not in f:
            return np.zeros(0, dtype=np.int64)
        return np.asarray(f[HOLDOUT_KEY][()], dtype=np.int64).reshape(-1)
