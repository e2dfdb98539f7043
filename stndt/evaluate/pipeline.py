"""File-level steps of the evaluation stage, one function per Snakemake rule.

Each function reads the files a rule names, calls the scoring / ensembling code of this package
(metrics from nlb_tools' evaluate), and writes its outputs atomically.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from stndt.candidates import BEST_COBPS, CANDIDATE_MODES, CHECKPOINTS, member_of, read_candidates
from stndt.data.tensors import read_layout
from stndt.datasets import CO_BPS, PHASES, RATE_R2, nlb_dataset, nlb_key
from stndt.evaluate.ensemble import (
    ensemble_curve,
    ensemble_rates,
    load_rates_like,
    rank_members,
    select_ensemble,
)
from stndt.evaluate.holdout import read_holdout, selection_trials
from stndt.evaluate.members_table import unconverged_members
from stndt.evaluate.metrics import bps_metrics, co_bps, group, has_targets, load_rates, load_targets, rate_r2, score
from stndt.evaluate.smoothing import smoothing_rates
from stndt.evaluate.subsets import subset_eval_trials
from stndt.io import load_h5, read_h5_attrs, save_h5, write_csv, write_json
from stndt.members import MemberFiles, member_file

log = logging.getLogger(__name__)


def score_rates(
    rates_path: Path, tensors_path: Path, out: Path, truth_path: Path | None = None, rates_group: str | None = None
) -> dict:
    """Score one rates file on its phase's targets (see phase_metrics) and write the metrics json."""
    layout, _ = read_layout(tensors_path)
    phase = str(read_h5_attrs(tensors_path)["phase"])
    truth = load_rates(truth_path, phase) if truth_path is not None else None
    metrics, holdout = phase_metrics(load_rates(rates_path, rates_group), tensors_path, truth)
    extra = (
        {"trials": "selection", "holdout": holdout, "n_holdout": int(read_holdout(tensors_path).size)}
        if holdout is not None
        else {}
    )
    write_json(out, {"phase": phase, "layout": layout, "rates": str(rates_path), **metrics, **extra})
    return metrics


def phase_metrics(rates: Mapping, tensors_path: Path, truth: Mapping | None = None) -> tuple[dict, dict | None]:
    """(metrics, holdout metrics or None) of rates on a phase's targets; R2 against the true rates too
    when known.

    When the val tensors set trials aside (evaluation.holdout), the metrics are those of the selection
    trials, which every selection step reads, and the holdout metrics are the same scores on the
    held-out trials: the number no choice was made on."""
    layout, bw = read_layout(tensors_path)
    targets = load_targets(tensors_path)
    key = nlb_key(layout, bw)

    def metrics_on(idx) -> dict:
        t, r = (targets, rates) if idx is None else subset_eval_trials(targets, rates, idx, key)
        m = score(t, r, layout, bw)
        if truth is not None:
            true = truth if idx is None else subset_eval_trials(None, truth, idx, key)[1]
            m[RATE_R2] = rate_r2(r, true, key)
        return m

    holdout = read_holdout(tensors_path)
    if not holdout.size:
        return metrics_on(None), None
    n_eval = len(group(targets, key, "targets")["eval_spikes_heldout"])
    try:
        held = metrics_on(holdout)
    except ValueError as err:  # e.g. DMFC_RSG's tp corr needs 2+ trials of a condition
        t, r = subset_eval_trials(targets, rates, holdout, key)
        held = bps_metrics(t, r, layout, bw)
        held["not scored"] = (
            f"nlb_tools evaluate() cannot score the {holdout.size} holdout trials ({err}); "
            "only the bits-per-spike metrics are given"
        )
        log.warning("holdout of %s: %s", tensors_path, held["not scored"])
    return metrics_on(selection_trials(n_eval, holdout)), held


@dataclass(frozen=True)
class EnsembleFiles:
    """What build_ensemble writes, each file named by the caller (the workflow's rule): the chosen
    ensemble (json), its val co-bps against size (curve) and its rates per phase (every val trial, and
    test)."""

    json: Path
    curve: Path
    rates: Mapping[str, Path]

    def __post_init__(self):
        missing = [p for p in PHASES if p not in self.rates]
        if missing:
            raise ValueError(f"ensemble: no rates file given for phase {', '.join(missing)}")


def build_ensemble(
    table_path: Path,
    members: Mapping[str, MemberFiles],
    tensors_val: Path,
    tensors_test: Path,
    out: EnsembleFiles,
    seed: int,
    candidates: str = BEST_COBPS,
    max_size: int | None = None,
) -> dict:
    """Rank the candidates by val co-bps on the selection trials, choose the ensemble size (at most
    `max_size`, evaluation.max_size), write its curve, json and rates to the files `out` names.
    `members`: {member id: its files} as the rule passes them (rates_PHASE.h5, and with `checkpoints`
    its candidates/ files).

    `candidates` (evaluation.candidates, stndt.candidates): `best_cobps`, each member's best val co-bps
    checkpoint (ranked as members.csv ranks them); `checkpoints`, also every member's distinct extra
    checkpoints (`m003@masked_loss`, ...; its candidates/ files), the reference's pool.
    ensemble.json's `checkpoints` are the chosen candidates, `members` the members they belong to,
    `ranking` the members by their best co-bps checkpoint (the best single member is its first) and, with
    `checkpoints`, `pool` every candidate's val co-bps (selection trials) and epoch, best first."""
    if candidates not in CANDIDATE_MODES:
        raise ValueError(f"evaluation.candidates: must be one of {', '.join(CANDIDATE_MODES)}, got {candidates!r}")
    if max_size is not None and (isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 1):
        raise ValueError(f"evaluation.max_size: must be a positive integer or null, got {max_size!r}")
    layout, bw = read_layout(tensors_val)
    table = pd.read_csv(table_path)
    ranking = rank_members(table)  # the members, each by its best val co-bps checkpoint
    unknown = [m for m in ranking if m not in members]
    if unknown:
        raise ValueError(f"{table_path}: member(s) {', '.join(unknown)} have no files given (--member-file)")
    full_val = {m: member_file(members[m], "rates_val.h5", m) for m in ranking}
    rates_test = {m: member_file(members[m], "rates_test.h5", m) for m in ranking}
    epochs = {}
    if candidates == CHECKPOINTS:
        for m in ranking:
            for c in read_candidates(m, members[m]):
                full_val[c["id"]], rates_test[c["id"]], epochs[c["id"]] = (
                    c["rates"]["val"],
                    c["rates"]["test"],
                    c["epoch"],
                )
    targets_val, rates_val = selection_view(tensors_val, full_val)  # every choice below reads these only
    holdout = read_holdout(tensors_val)
    pool_bps = None
    order = ranking
    if candidates == CHECKPOINTS:
        pool_bps = {c: co_bps(targets_val, load_rates_like(rates_val[c]), layout, bw) for c in full_val}
        order = rank_members(pd.DataFrame({"member": list(pool_bps), CO_BPS: list(pool_bps.values())}))
    curve = ensemble_curve(rates_val, order, targets_val, layout, bw, max_n=max_size)
    targets_test = load_targets(tensors_test) if has_targets(tensors_test) else None
    chosen = select_ensemble(
        rates_val,
        order,
        targets_val,
        layout,
        bw,
        curve=curve,
        seed=seed,
        member_rates_test=rates_test if targets_test is not None else None,
        targets_test=targets_test,
        max_n=max_size,
        single_from=ranking,
    )
    checkpoints = chosen["members"]
    chosen.update(
        {
            "members": list(dict.fromkeys(member_of(c) for c in checkpoints)),
            "checkpoints": checkpoints,
            "ranking": ranking,
            "candidates": candidates,
            "max_size": max_size,
        }
    )
    if pool_bps is not None:
        best_epoch = dict(zip(table["member"].astype(str), table["best_epoch"])) if "best_epoch" in table else {}
        chosen["pool"] = [{"id": c, CO_BPS: pool_bps[c], "epoch": epochs.get(c, best_epoch.get(c))} for c in order]
    chosen["unconverged"] = unconverged_members(table)
    chosen["holdout_trials"] = int(holdout.size)  # val trials no choice here read (evaluation.holdout)
    if chosen["unconverged"]:
        log.warning(
            "%d of %d members stopped at their cap before converging (%s): see members.csv "
            "'converged' and raise training.max_epochs or max_steps",
            len(chosen["unconverged"]),
            len(table),
            ", ".join(chosen["unconverged"]),
        )
    for phase, rates in (("val", full_val), ("test", rates_test)):  # every val trial, for scoring
        save_h5(out.rates[phase], ensemble_rates(rates, checkpoints))
    write_csv(out.curve, curve)
    write_json(out.json, chosen)
    return chosen


def selection_view(tensors_val: Path, member_rates: Mapping[str, Path]) -> tuple[dict, Mapping]:
    """The val targets and members' val rates (files, loaded one at a time) restricted to the selection
    trials: all val trials, or all but the holdout (evaluation.holdout). What every choice reads."""
    layout, bw = read_layout(tensors_val)
    targets = load_targets(tensors_val)
    holdout = read_holdout(tensors_val)
    if not holdout.size:
        return targets, member_rates
    key = nlb_key(layout, bw)
    select = selection_trials(len(group(targets, key, "targets")["eval_spikes_heldout"]), holdout)
    return subset_eval_trials(targets, None, select, key)[0], _SubsetRates(member_rates, select, key)


class _SubsetRates(Mapping):
    """Members' (or candidates') rates files, loaded one at a time and cut to some eval trials (the selection
    trials)."""

    def __init__(self, paths: Mapping[str, Path], idx: np.ndarray, key: str) -> None:
        self.paths, self.idx, self.key = dict(paths), idx, key

    def __getitem__(self, member: str) -> dict:
        return subset_eval_trials(None, load_rates_like(self.paths[member]), self.idx, self.key)[1]

    def __iter__(self):
        return iter(self.paths)

    def __len__(self) -> int:
        return len(self.paths)


def smoothing_baseline(tensors: Path, out: Path) -> None:
    """NLB spike-smoothing baseline rates for one phase, with the NLB authors' per-dataset settings."""
    layout, bw = read_layout(tensors)
    info = nlb_dataset(layout)
    data = load_h5(tensors)
    save_h5(out, smoothing_rates(data, layout, bw, kern_sd_ms=info.smooth_kern_sd_ms, alpha=info.smooth_alpha))


def submission(ensemble_rates_test: Path, tensors_test: Path, out: Path) -> None:
    # imported here: it loads pynwb (through nlb_tools.make_tensors), which no scoring job needs
    from stndt.evaluate.submission import write_submission

    layout, bw = read_layout(tensors_test)
    write_submission(load_rates(ensemble_rates_test), out, tensors_test, layout, bw)
