"""Ensembles of trained members: rank by val co-bps, average the top N rates, choose N.

As in the STNDT reference: members are ranked by validation co-bps, the predicted rates of the top N
are averaged, and N is chosen by the ensemble's validation co-bps. Choosing N (and the ranking) on the
same trials that report the score is optimistic, so `honest_estimate` also reports a split-half
estimate: the ranking and N are chosen on one half of the val eval trials and scored on the other.

Member rates may be given in memory (rates dicts) or as paths to rates files; paths are read one at a
time so the curve over 120 full-size members never holds more than one member plus a running sum.
The ranked ids need not be members: with evaluation.candidates 'checkpoints' (stndt.candidates) they are
every member's candidate checkpoints (`m003`, `m003@masked_loss`, ...; CandidateRates read one group of a
candidates file), as the reference's nlb_ensemble.py ranks every checkpoint file, and `max_n`
(evaluation.max_size; the reference: 2) caps N.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from stndt.candidates import CandidateRates
from stndt.datasets import CO_BPS, LOWER_IS_BETTER, METRICS, nlb_key
from stndt.evaluate.metrics import bps_metrics, co_bps, group, load_rates, score
from stndt.evaluate.subsets import n_eval_trials, split_halves, subset_eval_trials

log = logging.getLogger(__name__)

# rates in memory, a rates file, or one extra candidate checkpoint's group of a candidates file
RatesLike = Mapping | str | os.PathLike | CandidateRates


# ----------------------------------------------------------------------------------------------------
# ranking and averaging
# ----------------------------------------------------------------------------------------------------
def rank_members(table: pd.DataFrame, metric: str = CO_BPS, id_col: str = "member") -> list[str]:
    """Member ids best first by `metric` (ties broken by id, so the order is reproducible).

    Members whose metric is NaN (failed runs) are left out with a warning; none left is an error.
    """
    for col in (id_col, metric):
        if col not in table.columns:
            raise KeyError(f"member table has no column '{col}' (columns: {list(table.columns)})")
    ok = table[[id_col, metric]].copy()
    bad = ok[metric].isna()
    if bad.any():
        log.warning("ranking skips %d member(s) without %s: %s", int(bad.sum()), metric, list(ok.loc[bad, id_col]))
        ok = ok[~bad]
    if ok.empty:
        raise ValueError(f"no member has a value for '{metric}'")
    if ok[id_col].duplicated().any():
        raise ValueError(f"member table has duplicate ids: {sorted(ok.loc[ok[id_col].duplicated(), id_col])}")
    ok["_id"] = ok[id_col].astype(str)
    ascending = metric in LOWER_IS_BETTER
    ok = ok.sort_values([metric, "_id"], ascending=[ascending, True], kind="mergesort")
    return list(ok["_id"])


def average_rates(rates_list: Sequence[Mapping]) -> dict:
    """Mean of several rates dicts ({nlb_key: {array}}), key by key; float32 like the files."""
    if not rates_list:
        raise ValueError("average_rates: no rates to average")
    acc = _Accumulator()
    for i, rates in enumerate(rates_list):
        acc.add(rates, f"rates #{i}")
    return acc.mean()


class _Accumulator:
    """Running float64 sum of rates dicts with identical structure (memory: one dict)."""

    def __init__(self) -> None:
        self.total: dict | None = None
        self.n = 0

    def add(self, rates: Mapping, what: str) -> None:
        if self.total is None:
            self.total = _map(rates, lambda a, p: np.asarray(a, dtype=np.float64).copy(), what)
        else:
            _add_into(self.total, rates, what)
        self.n += 1

    def mean(self) -> dict:
        assert self.total is not None and self.n > 0
        return _map(self.total, lambda a, p: (a / self.n).astype(np.float32), "mean")


def _map(d: Mapping, fn: Callable, what: str, path: str = "") -> dict:
    out = {}
    for k, v in d.items():
        p = f"{path}/{k}"
        out[k] = _map(v, fn, what, p) if isinstance(v, Mapping) else fn(v, p)
    return out


def _add_into(total: dict, rates: Mapping, what: str, path: str = "") -> None:
    if set(total) != set(rates):
        raise KeyError(
            f"{what}: keys {sorted(rates)} at '{path or '/'}' differ from the first member's {sorted(total)}"
        )
    for k, v in rates.items():
        p = f"{path}/{k}"
        if isinstance(total[k], dict):
            if not isinstance(v, Mapping):
                raise TypeError(f"{what}: '{p}' is not a group")
            _add_into(total[k], v, what, p)
        else:
            a = np.asarray(v, dtype=np.float64)
            if a.shape != total[k].shape:
                raise ValueError(f"{what}: '{p}' has shape {a.shape}, the first member {total[k].shape}")
            total[k] += a


def _get(member_rates: Mapping[str, RatesLike], member: str) -> Mapping:
    if member not in member_rates:
        raise KeyError(f"no rates for member '{member}'")
    return load_rates_like(member_rates[member])


def load_rates_like(r: RatesLike) -> Mapping:
    """The rates dict of a RatesLike: loaded from its file (a candidate: only its group), or `r` itself."""
    if isinstance(r, CandidateRates):
        return r.load()
    return load_rates(r) if isinstance(r, (str, os.PathLike)) else r


def ensemble_rates(member_rates: Mapping[str, RatesLike], members: Sequence[str]) -> dict:
    """Averaged rates of `members` (loaded one at a time when given as paths)."""
    if not members:
        raise ValueError("ensemble_rates: empty member list")
    acc = _Accumulator()
    for m in members:
        acc.add(_get(member_rates, m), f"member '{m}'")
    return acc.mean()


# ----------------------------------------------------------------------------------------------------
# curve and size choice
# ----------------------------------------------------------------------------------------------------
def ensemble_curve(
    member_rates: Mapping[str, RatesLike],
    ranking: Sequence[str],
    targets: Mapping,
    layout: str,
    bin_width_ms: int,
    max_n: int | None = None,
) -> pd.DataFrame:
    """Metrics (nlb_tools evaluate) of the average of the top N ranked members, for N = 1..M.

    Returns a DataFrame with columns `n`, `member` (the N-th member added) and the layout's metrics.
    """
    if not ranking:
        raise ValueError("ensemble_curve: empty ranking")
    ranking = list(ranking)[: max_n or len(ranking)]
    acc = _Accumulator()
    rows = []
    for n, member in enumerate(ranking, start=1):
        acc.add(_get(member_rates, member), f"member '{member}'")
        metrics = score(targets, acc.mean(), layout, bin_width_ms)
        rows.append({"n": n, "member": member, **metrics})
        log.info("ensemble of top %d: %s", n, metrics)
    return pd.DataFrame(rows)


def choose_size(curve: pd.DataFrame, metric: str = CO_BPS) -> int:
    """Ensemble size with the best `metric` on the curve; ties go to the smaller N."""
    for col in ("n", metric):
        if col not in curve.columns:
            raise KeyError(f"ensemble curve has no column '{col}' (columns: {list(curve.columns)})")
    c = curve[["n", metric]].dropna()
    if c.empty:
        raise ValueError(f"ensemble curve has no finite '{metric}' values")
    values = c[metric].to_numpy(float)
    best = values.min() if metric in LOWER_IS_BETTER else values.max()
    return int(c["n"].to_numpy()[values == best].min())


# ----------------------------------------------------------------------------------------------------
# the split-half estimate
# ----------------------------------------------------------------------------------------------------
def honest_estimate(
    member_rates: Mapping[str, RatesLike],
    targets: Mapping,
    layout: str,
    bin_width_ms: int,
    seed: int = 0,
    members: Sequence[str] | None = None,
    metric: str = CO_BPS,
    max_n: int | None = None,
    single_from: Sequence[str] | None = None,
) -> dict:
    """Split-half estimate of the chosen ensemble's val metrics, free of selection on the scored trials.

    The val eval trials are split in two halves (seeded). On the `fit` half the members are ranked by
    their own co-bps there and N is chosen by the ensemble co-bps there; that ensemble is scored with
    nlb_tools evaluate() on the other half. Done both ways; `metrics` is the mean of the two scores.
    Choosing uses nlb_tools' bits_per_spike (co-bps), so only `metric=co-bps` is supported. `max_n` caps
    N (evaluation.max_size); `single` is the best of `single_from` (default: of all) on the fit half, so a
    pool of candidate checkpoints still reports its best member's (best co-bps checkpoint's) estimate.
    """
    if metric != CO_BPS:
        raise ValueError(f"honest_estimate chooses by {CO_BPS} only, got {metric!r}")
    key = nlb_key(layout, bin_width_ms)
    ids = list(members) if members is not None else list(member_rates)
    if not ids:
        raise ValueError("honest_estimate: no members")
    halves = split_halves(n_eval_trials(targets, key), seed)

    # One pass over the members: keep only their eval held-out rates (enough for co-bps on a half).
    heldout = {
        m: np.asarray(
            group(_get(member_rates, m), key, f"rates of member '{m}'")["eval_rates_heldout"], dtype=np.float64
        )
        for m in ids
    }
    half_targets = [subset_eval_trials(targets, None, h, key)[0] for h in halves]

    def bps(rates_heldout: np.ndarray, h: int) -> float:
        return co_bps(half_targets[h], {key: {"eval_rates_heldout": rates_heldout[halves[h]]}}, layout, bin_width_ms)

    results = []
    for fit, held in ((0, 1), (1, 0)):
        member_bps = pd.DataFrame({"member": ids, CO_BPS: [bps(heldout[m], fit) for m in ids]})
        ranking = rank_members(member_bps)
        running = np.zeros_like(heldout[ranking[0]])
        curve = []
        for n, m in enumerate(ranking[: max_n or len(ranking)], start=1):
            running += heldout[m]
            curve.append({"n": n, CO_BPS: bps(running / n, fit)})
        n_best = choose_size(pd.DataFrame(curve))
        chosen = ranking[:n_best]

        def held_score(members: Sequence[str]) -> dict:
            idx = halves[held]  # noqa: B023 (called within this iteration)
            t_held, r_held = subset_eval_trials(targets, ensemble_rates(member_rates, members), idx, key)
            try:
                return score(t_held, r_held, layout, bin_width_ms)
            except ValueError as err:  # e.g. DMFC_RSG's tp corr needs 2+ trials of a condition in the half
                log.warning("split-half estimate: evaluate() cannot score a half (%s); bits-per-spike only", err)
                return bps_metrics(t_held, r_held, layout, bin_width_ms)

        held_metrics = held_score(chosen)
        singles = ranking if single_from is None else [m for m in ranking if m in set(single_from)]
        single = held_metrics if chosen == singles[:1] else held_score(singles[:1])
        results.append(
            {
                "n": n_best,
                "members": chosen,
                "fit_trials": halves[fit].tolist(),
                "score_trials": halves[held].tolist(),
                "metrics": held_metrics,
                "single": single,
            }
        )

    def mean_of(part: str) -> dict:
        names = [m for m in METRICS if all(m in r[part] for r in results)]
        return {m: float(np.mean([r[part][m] for r in results])) for m in names}

    # "single": the best member chosen the same way (on the fit half, n fixed at 1): what the ensemble
    # adds over one member, measured without selection on the scored trials.
    return {"seed": seed, "metrics": mean_of("metrics"), "single": mean_of("single"), "halves": results}


# ----------------------------------------------------------------------------------------------------
# the whole selection, for ensemble.json
# ----------------------------------------------------------------------------------------------------
def select_ensemble(
    member_rates: Mapping[str, RatesLike],
    ranking: Sequence[str] | pd.DataFrame,
    targets: Mapping,
    layout: str,
    bin_width_ms: int,
    curve: pd.DataFrame | None = None,
    seed: int = 0,
    member_rates_test: Mapping[str, RatesLike] | None = None,
    targets_test: Mapping | None = None,
    max_n: int | None = None,
    single_from: Sequence[str] | None = None,
) -> dict:
    """Choose the ensemble and collect what `ensemble.json` records.

    `ranking`: member ids best first, or the member table (ranked here by val co-bps).
    `curve`: the val ensemble curve if already computed (else computed here).
    Test metrics are added only when both test targets and the members' test rates are given.
    `max_n` caps the size (evaluation.max_size); `single_from`: see honest_estimate.
    Returns {n, members (rank order), ranking, val, honest, test?}; the `honest` halves drop their trial
    lists (they are reproducible from the seed) to keep the JSON small.
    """
    if isinstance(ranking, pd.DataFrame):
        ranking = rank_members(ranking)
    ranking = [str(m) for m in ranking]
    if curve is None:
        curve = ensemble_curve(member_rates, ranking, targets, layout, bin_width_ms, max_n=max_n)
    if max_n is not None and len(curve) > max_n:
        raise ValueError(f"ensemble curve has {len(curve)} sizes, more than max_n={max_n}")
    if "member" in curve.columns and list(curve["member"].astype(str)) != ranking[: len(curve)]:
        raise ValueError("ensemble curve was computed for a different member ranking")
    n = choose_size(curve)
    row = curve.loc[curve["n"] == n].iloc[0]
    val = {m: float(row[m]) for m in METRICS if m in curve.columns and pd.notna(row[m])}
    honest = honest_estimate(
        member_rates, targets, layout, bin_width_ms, seed=seed, members=ranking, max_n=max_n, single_from=single_from
    )
    out = {
        "n": n,
        "members": ranking[:n],
        "ranking": ranking,
        "val": val,
        "honest": {
            "seed": honest["seed"],
            "metrics": honest["metrics"],
            "single": honest["single"],
            "halves": [
                {k: v for k, v in h.items() if not k.endswith("_trials")} | {"n_trials": len(h["score_trials"])}
                for h in honest["halves"]
            ],
        },
    }
    if (targets_test is None) != (member_rates_test is None):
        raise ValueError("test metrics need both targets_test and member_rates_test")
    if targets_test is not None:
        test_rates = ensemble_rates(member_rates_test, ranking[:n])
        out["test"] = score(targets_test, test_rates, layout, bin_width_ms)
    return out
