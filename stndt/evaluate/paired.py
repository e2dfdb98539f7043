"""Paired ablations: STNDT against a variant (NDT, no contrastive loss) on equal pools of the same draws.

The main table's STNDT rows come from every STNDT member (the paper's 120), a variant's from its own
smaller pool; pool size alone moves a best member and an ensemble. Here member i of a variant trained
with STNDT member i's hyperparameters and seed (stndt.train.members), so the comparison uses STNDT
members 0..k-1 against the variant's 0..k-1 (k = the variant's count), with the best member and the
ensemble chosen from each pool exactly as for the full pool (val co-bps on the selection trials), plus
the paired per-member difference of every metric with a bootstrap 95% interval over the k pairs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from stndt.datasets import CO_BPS, METRICS, PHASES, RATE_R2
from stndt.evaluate.ensemble import ensemble_rates, rank_members, select_ensemble
from stndt.evaluate.metrics import has_targets, load_rates
from stndt.members import MemberFiles, member_file

N_BOOT = 2000
SPLITS = ("test", "val holdout", "val selection trials", "val")  # as labelled in baselines.csv


def member_splits(member: str, files: MemberFiles) -> dict[str, dict]:
    """{split: metrics} of one member from its metrics_val.json and, where given (test targets known),
    metrics_test.json."""
    out = {}
    val = json.loads(member_file(files, "metrics_val.json", member).read_text())
    if "holdout" in val:
        out["val selection trials"], out["val holdout"] = _metrics(val), _metrics(val["holdout"])
    else:
        out["val"] = _metrics(val)
    if "metrics_test.json" in files:
        out["test"] = _metrics(json.loads(member_file(files, "metrics_test.json", member).read_text()))
    return out


def _metrics(m: Mapping) -> dict:
    return {k: float(m[k]) for k in (*METRICS, RATE_R2) if k in m and m[k] is not None}


def paired_difference(a: Sequence[float], b: Sequence[float], seed: int, n_boot: int = N_BOOT) -> dict:
    """Mean of b_i - a_i and its bootstrap 95% interval (resampling the pairs; NaN for one pair)."""
    d = np.asarray(b, float) - np.asarray(a, float)
    if d.size == 0:
        raise ValueError("paired_difference: no pairs")
    if d.size < 2:
        return {"value": float(d.mean()), "ci_low": np.nan, "ci_high": np.nan, "n_pairs": int(d.size)}
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, d.size, (n_boot, d.size))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return {"value": float(d.mean()), "ci_low": float(lo), "ci_high": float(hi), "n_pairs": int(d.size)}


def pool_choice(
    members: Mapping[str, MemberFiles],
    splits: Sequence[Mapping[str, dict]],
    tensors_val: Path,
    tensors_test: Path,
    seed: int,
    truth: Mapping | None = None,
) -> tuple[str, list[str], dict[str, dict]]:
    """(best member, ensemble members, {split: ensemble metrics}) of one pool, chosen on the val
    selection trials as the ensemble rule chooses from the full pool. `splits`: member_splits of each
    member, in the order of `members` ({member id: its files})."""
    from stndt.data.tensors import read_layout
    from stndt.evaluate.pipeline import phase_metrics, selection_view

    table = pd.DataFrame(
        {"member": list(members), CO_BPS: [s.get("val selection trials", s.get("val"))[CO_BPS] for s in splits]}
    )
    ranking = rank_members(table)
    layout, bw = read_layout(tensors_val)

    def rates(phase: str, ids: Sequence[str]) -> dict[str, Path]:
        return {m: member_file(members[m], f"rates_{phase}.h5", m) for m in ids}

    sel_targets, sel_rates = selection_view(tensors_val, rates("val", ranking))
    chosen = select_ensemble(sel_rates, ranking, sel_targets, layout, bw, seed=seed)["members"]
    metrics, held = phase_metrics(
        ensemble_rates(rates("val", chosen), chosen),
        tensors_val,
        truth.get("val") if truth else None,
    )
    splits = {"val selection trials": metrics, "val holdout": held} if held is not None else {"val": metrics}
    if has_targets(tensors_test):
        test_rates = ensemble_rates(rates("test", chosen), chosen)
        splits["test"] = phase_metrics(test_rates, tensors_test, truth.get("test") if truth else None)[0]
    return ranking[0], chosen, splits


def paired_ablation(
    stndt: Mapping[str, MemberFiles],
    variants: Mapping[str, Mapping[str, MemberFiles]],
    tensors_val: Path,
    tensors_test: Path,
    seed: int,
    truth_path: Path | None = None,
) -> pd.DataFrame:
    """Tidy table: per variant, STNDT's and the variant's best member and ensemble on pools of k members,
    and the paired difference (variant - STNDT) of every metric on every split. `stndt` and each of
    `variants`: {member id: its files} (rates_PHASE.h5, metrics_PHASE.json)."""
    truth = None
    if truth_path is not None:
        truth = {p: load_rates(truth_path, p) for p in PHASES}
    rows = []
    for variant, own in variants.items():
        ids = list(own)
        missing = [m for m in ids if m not in stndt]
        if missing:
            raise ValueError(f"paired ablation {variant}: no STNDT member(s) {missing} to pair with")
        pools = {"stndt": {m: stndt[m] for m in ids}, variant: dict(own)}
        splits_of = {name: [member_splits(m, f) for m, f in pool.items()] for name, pool in pools.items()}
        for name, pool in pools.items():
            best, chosen, ens = pool_choice(pool, splits_of[name], tensors_val, tensors_test, seed, truth)
            best_splits = splits_of[name][ids.index(best)]
            for kind, splits, members in (("single", best_splits, [best]), ("ensemble", ens, chosen)):
                for split, metrics in splits.items():
                    for metric, value in metrics.items():
                        rows.append(
                            {
                                "comparison": variant,
                                "k": len(ids),
                                "set": name,
                                "kind": kind,
                                "members": " ".join(members),
                                "split": split,
                                "metric": metric,
                                "value": value,
                                "ci_low": np.nan,
                                "ci_high": np.nan,
                            }
                        )
        for split in SPLITS:
            if split not in splits_of["stndt"][0]:
                continue
            for metric in splits_of["stndt"][0][split]:
                a = [s[split][metric] for s in splits_of["stndt"]]
                b = [s[split][metric] for s in splits_of[variant]]
                diff = paired_difference(a, b, seed)
                rows.append(
                    {
                        "comparison": variant,
                        "k": len(ids),
                        "set": f"{variant} - stndt",
                        "kind": "paired difference",
                        "members": " ".join(ids),
                        "split": split,
                        "metric": metric,
                        **{k: diff[k] for k in ("value", "ci_low", "ci_high")},
                    }
                )
    return pd.DataFrame(rows)
