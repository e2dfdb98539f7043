"""Subsets of the eval trials: the same trials cut out of nlb_tools' target dict and of a rates dict.

The val holdout (stndt.evaluate.holdout) and the split-half estimate (stndt.evaluate.ensemble) score
rates on part of the eval trials; nlb_tools' evaluate() takes whole dicts, so both the targets and the
rates are sliced along the trial axis here, with the PSTH targets restricted to the conditions left.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from stndt.evaluate.metrics import RATE_KEYS, group, normalize_cond_idx

#: Target arrays indexed by eval trial along axis 0 (sliced by `subset_eval_trials`).
EVAL_TRIAL_TARGET_KEYS: tuple[str, ...] = (
    "eval_spikes_heldout",
    "eval_behavior",
    "eval_spikes_heldin_forward",
    "eval_spikes_heldout_forward",
    "eval_decode_mask",
    "eval_jitter",
)
EVAL_TRIAL_RATE_KEYS: tuple[str, ...] = tuple(k for k in RATE_KEYS if k.startswith("eval_"))


def split_halves(n_eval: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint halves of the eval trials (a seeded permutation), each sorted."""
    if n_eval < 2:
        raise ValueError(f"need at least 2 eval trials to split, got {n_eval}")
    perm = np.random.default_rng(seed).permutation(n_eval)
    half = n_eval // 2
    return np.sort(perm[:half]), np.sort(perm[half:])


def subset_eval_trials(
    targets: Mapping | None, rates: Mapping | None, idx, key: str | None = None
) -> tuple[dict | None, dict | None]:
    """Restrict targets and/or rates ({nlb_key: {...}}) to the eval trials `idx` (in that order).

    Eval-trial arrays are sliced along axis 0; `eval_cond_idx` is remapped to positions in `idx`
    (conditions left without trials keep an empty index array; evaluate() skips them); `psth` and every
    train_* array stay as they are. An unknown `eval_*` key is an error rather than silently left whole.
    """
    idx = np.asarray(idx)
    if idx.ndim != 1 or idx.size == 0 or not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(
            f"subset_eval_trials: idx must be a non-empty 1-d integer array, got {idx.dtype} shape {idx.shape}"
        )
    if len(np.unique(idx)) != idx.size:
        raise ValueError("subset_eval_trials: idx has repeated trials")
    out_t = (
        None
        if targets is None
        else {k: _subset_targets(g, idx, f"targets['{k}']") for k, g in _groups(targets, key, "targets").items()}
    )
    out_r = (
        None
        if rates is None
        else {k: _subset_rates(g, idx, f"rates['{k}']") for k, g in _groups(rates, key, "rates").items()}
    )
    return out_t, out_r


def _groups(d: Mapping, key: str | None, what: str) -> dict:
    if key is not None:
        return {key: group(d, key, what)}
    groups = {k: v for k, v in d.items() if isinstance(v, Mapping)}
    if not groups:
        raise KeyError(f"{what}: no dataset group")
    return groups


def _take(arr, idx: np.ndarray, where: str, n_eval: int | None) -> tuple[np.ndarray, int]:
    arr = np.asarray(arr)
    n = arr.shape[0] if arr.ndim else 0
    if n_eval is not None and n != n_eval:
        raise ValueError(f"{where}: {n} eval trials, other eval arrays have {n_eval}")
    if idx.min() < 0 or idx.max() >= n:
        raise IndexError(f"{where}: trial index out of range for {n} eval trials")
    return arr[idx], n


def _subset_by_trial(
    data: Mapping, keys: Iterable[str], idx: np.ndarray, where: str, skip: tuple[str, ...] = ()
) -> tuple[dict, int | None]:
    """The eval trials `idx` of the arrays named in `keys`; other eval_* keys (except `skip`) are refused,
    the rest (psth, train_*: indexed by condition / train trial) kept whole. Also the eval trial count."""
    out: dict = {}
    n_eval = None
    for k, v in data.items():
        if k in keys:
            out[k], n_eval = _take(v, idx, f"{where}['{k}']", n_eval)
        elif k in skip:
            continue
        elif k.startswith("eval_"):
            raise KeyError(f"{where}: don't know how to subset '{k}' by eval trial")
        else:
            out[k] = v
    return out, n_eval


def _subset_targets(tgt: Mapping, idx: np.ndarray, where: str) -> dict:
    out, n_eval = _subset_by_trial(tgt, EVAL_TRIAL_TARGET_KEYS, idx, where, skip=("eval_cond_idx",))
    if "eval_cond_idx" in tgt:
        conds = normalize_cond_idx(tgt["eval_cond_idx"], f"{where}['eval_cond_idx']")
        new_pos = {int(t): p for p, t in enumerate(idx)}
        remapped = np.empty(len(conds), dtype=object)
        for c, members in enumerate(conds):
            if n_eval is not None and members.size and (members.max() >= n_eval or members.min() < 0):
                raise IndexError(f"{where}['eval_cond_idx'][{c}]: index outside {n_eval} eval trials")
            remapped[c] = np.sort(np.array([new_pos[int(t)] for t in members if int(t) in new_pos], dtype=np.int64))
        out["eval_cond_idx"] = remapped
    return out


def _subset_rates(rts: Mapping, idx: np.ndarray, where: str) -> dict:
    return _subset_by_trial(rts, EVAL_TRIAL_RATE_KEYS, idx, where)[0]


def n_eval_trials(targets: Mapping, key: str) -> int:
    return int(np.asarray(group(targets, key, "targets")["eval_spikes_heldout"]).shape[0])
