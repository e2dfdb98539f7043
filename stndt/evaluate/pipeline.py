"""File-level steps of the evaluation stage, one function per Snakemake rule.

Each function reads the files a rule names, calls the scoring / ensembling code of this package
(metrics from nlb_tools' evaluate), and writes its outputs atomically.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from stndt.candidates import BEST_COBPS, CANDIDATE_MODES, CHECKPOINTS, member_of, read_candidates
from stndt.data.tensors import read_layout
from stndt.datasets import CO_BPS, METRICS, PHASES, RATE_R2, nlb_dataset, nlb_key
from stndt.evaluate.ensemble import (
    ensemble_curve,
    ensemble_rates,
    load_rates_like,
    rank_members,
    select_ensemble,
    subset_eval_trials,
)
from stndt.evaluate.holdout import read_holdout, selection_trials
from stndt.evaluate.metrics import bps_metrics, co_bps, group, has_targets, load_rates, load_targets, rate_r2, score
from stndt.evaluate.smoothing import smoothing_rates
from stndt.evaluate.submission import write_submission
from stndt.io import atomic_path, load_h5, read_h5_attrs, save_h5, write_json
from stndt.members import MASKED_NLL, STOP_CAP, VARIANTS, converged

log = logging.getLogger(__name__)


def write_csv(path: Path, table: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)


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


def members_table(member_dirs: Sequence[Path], out: Path, phases: Sequence[str]) -> pd.DataFrame:
    """One row per member: id, sampled hyperparameters, training summary, and the metrics of `phases`
    (val, and test where its targets are known: the phases the workflow scored)."""
    rows = []
    for d in map(Path, member_dirs):
        params = json.loads((d / "params.json").read_text())
        row = {"member": d.name}
        row.update({k: v for k, v in params["hyperparameters"].items() if k != "seed"})
        summary = params.get("training", {})
        row.update(
            {
                "best_epoch": summary.get("best_epoch"),
                "val nll": summary.get("val nll"),
                MASKED_NLL: _masked_nll_at(d / "train_log.csv", summary.get("best_epoch")),
                "epochs_run": summary.get("epochs_run"),
                "steps": summary.get("steps"),
                "stop_reason": summary.get("stop_reason"),
                "converged": member_converged(summary),
                "train_seconds": summary.get("train_seconds"),
            }
        )
        for phase in phases:
            m = json.loads((d / f"metrics_{phase}.json").read_text())
            prefix = "" if phase == "val" else "test "
            row.update({prefix + k: m[k] for k in (*METRICS, RATE_R2) if k in m})
        rows.append(row)
    table = pd.DataFrame(rows)
    write_csv(out, table)
    return table


def member_converged(summary: Mapping) -> bool | None:
    """Whether a member's training summary says it converged (stopped by the rule, not the cap);
    None when the summary has no stop reason."""
    if "converged" in summary:
        return bool(summary["converged"])
    return converged(summary["stop_reason"]) if summary.get("stop_reason") else None


def unconverged_members(table: pd.DataFrame, reason: str | None = None) -> list[str]:
    """Members of a members.csv table that did not converge (see member_converged); with `reason`
    (STOP_CAP or STOP_DIVERGED), only those that stopped for that reason."""
    if "converged" not in table.columns:
        return []
    bad = table[table["converged"].astype(str) == "False"]
    if reason is not None and "stop_reason" in bad.columns:
        bad = bad[bad["stop_reason"].astype(str) == reason]
    return [str(m) for m in bad["member"]]


def convergence_summary(tables: Sequence[Path]) -> str | None:
    """One warning for the end of a run naming every member (of the given members.csv files that exist)
    that did not converge, or None when all converged: an unconverged member's numbers are not a result,
    and nothing else at the end of a run would say so. Members stopped by the cap and members whose loss
    diverged are listed apart, because the remedies differ (a larger cap vs a smaller learning rate)."""
    capped, diverged = [], []
    for path in map(Path, tables):
        if path.exists():
            table = pd.read_csv(path)
            cap = unconverged_members(table, STOP_CAP)
            div = [m for m in unconverged_members(table) if m not in cap]
            if cap:
                capped.append(f"  {path}: {', '.join(cap)}")
            if div:
                diverged.append(f"  {path}: {', '.join(div)}")
    parts = []
    if capped:
        parts.append(
            "WARNING: these members stopped at their cap (training.max_epochs / max_steps) before the stopping "
            "rule fired, so they have NOT converged and their numbers are not results (members.csv "
            "column 'converged'); raise training.max_epochs or max_steps and rerun:\n" + "\n".join(capped)
        )
    if diverged:
        parts.append(
            "WARNING: these members stopped because their training loss became non-finite "
            "(members.csv stop_reason 'diverged'); they are not results: lower the learning rate "
            "(search_overrides.lr) or check the data:\n" + "\n".join(diverged)
        )
    return "\n".join(parts) if parts else None


def _masked_nll_at(train_log: Path, epoch) -> float | None:
    """The masked-modeling loss (training objective without the contrastive term) at the kept epoch:
    the x-axis of the paper's Fig. 2A, which shows it is a poor guide to the NLB metrics."""
    log_rows = pd.read_csv(train_log)
    rows = log_rows[log_rows["epoch"] == epoch] if epoch is not None else log_rows.tail(1)
    return float(rows[MASKED_NLL].iloc[-1]) if len(rows) else None


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
    member_dirs: Sequence[Path],
    tensors_val: Path,
    tensors_test: Path,
    out: EnsembleFiles,
    seed: int,
    candidates: str = BEST_COBPS,
    max_size: int | None = None,
) -> dict:
    """Rank the candidates by val co-bps on the selection trials, choose the ensemble size (at most
    `max_size`, evaluation.max_size), write its curve, json and rates to the files `out` names.

    `candidates` (evaluation.candidates, stndt.candidates): `best_cobps`, each member's best val co-bps
    checkpoint (ranked as members.csv ranks them); `checkpoints`, also every member's distinct extra
    checkpoints (`m003@masked_loss`, ...; read from `{member}/candidates/`), the reference's pool.
    ensemble.json's `checkpoints` are the chosen candidates, `members` the members they belong to,
    `ranking` the members by their best co-bps checkpoint (the best single member is its first) and, with
    `checkpoints`, `pool` every candidate's val co-bps (selection trials) and epoch, best first."""
    if candidates not in CANDIDATE_MODES:
        raise ValueError(f"evaluation.candidates: must be one of {', '.join(CANDIDATE_MODES)}, got {candidates!r}")
    if max_size is not None and (isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 1):
        raise ValueError(f"evaluation.max_size: must be a positive integer or null, got {max_size!r}")
    layout, bw = read_layout(tensors_val)
    table = pd.read_csv(table_path)
    by_id = {Path(d).name: Path(d) for d in member_dirs}
    ranking = rank_members(table)  # the members, each by its best val co-bps checkpoint
    full_val = {m: by_id[m] / "rates_val.h5" for m in ranking}
    rates_test = {m: by_id[m] / "rates_test.h5" for m in ranking}
    epochs = {}
    if candidates == CHECKPOINTS:
        for m in ranking:
            for c in read_candidates(by_id[m]):
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
    layout, bw = read_layout(tensors_test)
    write_submission(load_rates(ensemble_rates_test), out, tensors_test, layout, bw)


#: Labels of baselines.csv (and the tables): which trials a row is scored on ("split") and on which
#: trials that method's choices were made ("selected on": best epochs, early stopping, the search, the
#: ensemble's members and size). A row whose split equals its "selected on" is optimistic.
SPLIT_TEST, SPLIT_VAL, SPLIT_SELECTION = "test", "val", "val selection trials"
SPLIT_HOLDOUT, SPLIT_HALVES = "val holdout", "val split-half"
SELECTED_NONE = "none (fixed settings)"
SELECTED_HALVES = "other val half (best epochs: {})"
HONEST = "honest"  # pseudo-phase of a member set's methods: its ensemble.json, with the split-half estimate
FIXED_METHODS = ("smoothing", "oracle")


def baseline_methods(
    ensembles: Mapping[str, Mapping[str, Path]],
    rankings: Mapping[str, Path],
    members: Mapping[str, Mapping[str, Mapping[str, Path]]],
    baselines: Mapping[str, Mapping[str, Path]],
) -> dict[str, dict[str, Path]]:
    """{method: {phase: metrics file}} in the table's order, from the files the caller names.

    For each member set (VARIANTS keys, in VARIANTS order): `{set}_ensemble` from `ensembles[set]`
    ({phase: metrics json}) and `{set}_single`, its best member by val co-bps: the first of the set's
    ensemble.json ranking (`rankings[set]`), whose metrics files must be in `members[set]`
    ({member: {phase: metrics json}}; every member may be given, since which one is best is only known
    from the ranking). Both also get the set's ensemble.json under HONEST (its split-half estimate).
    Then the other `baselines` ({name: {phase: metrics json}}) in the given order.
    """
    sets = [*ensembles, *rankings]
    unknown = sorted({s for s in sets if s not in VARIANTS})
    if unknown:
        raise ValueError(f"baselines: unknown member set(s) {unknown}; expected names from {', '.join(VARIANTS)}")
    methods: dict[str, dict[str, Path]] = {}
    for name in VARIANTS:
        if name in ensembles:
            methods[f"{name}_ensemble"] = dict(ensembles[name])
            if name in rankings:
                methods[f"{name}_ensemble"][HONEST] = Path(rankings[name])
        if name in rankings:
            methods[f"{name}_single"] = _best_member(rankings[name], members.get(name, {})) | {
                HONEST: Path(rankings[name])
            }
    for name, files in baselines.items():
        if name in methods:
            raise ValueError(f"baselines: method {name!r} is given twice")
        methods[name] = dict(files)
    return methods


def baseline_rows(methods: Mapping[str, Mapping[str, Path]], phases: Sequence[str]) -> pd.DataFrame:
    """The comparison table: every method's metrics on the same trials, one row per method, phase and
    split, each row read from that method's own metrics file of that phase (`methods`: {method: {phase:
    file}}), labelled with the trials it is scored on (`split`) and those its choices read (`selected on`).

    Rows per method: the val phase (the selection trials when the val tensors set a holdout aside), the
    val holdout (when there is one), the split-half estimate (member sets, from ensemble.json), the test
    phase (when scored)."""
    metric_keys = (*METRICS, RATE_R2)
    rows = []
    for method, files in methods.items():
        missing = [p for p in phases if p not in files]
        extra = sorted(set(files) - set(phases) - {HONEST})
        if missing or extra:
            raise ValueError(
                f"baselines: method {method!r} has metrics for phases {sorted(set(files) - {HONEST})}, "
                f"expected exactly {list(phases)}"
            )
        loaded = {p: json.loads(Path(files[p]).read_text()) for p in phases}
        has_holdout = "holdout" in loaded.get("val", {})
        val_split = SPLIT_SELECTION if has_holdout else SPLIT_VAL
        selected = SELECTED_NONE if method in FIXED_METHODS else val_split

        def row(phase: str, split: str, sel: str, m: Mapping) -> dict:
            return {
                "method": method,  # noqa: B023 (called within this iteration)
                "phase": phase,
                "split": split,
                "selected on": sel,
                **{k: m.get(k) for k in metric_keys if k in m},
            }

        for phase in phases:
            m = loaded[phase]
            if phase == "val":
                rows.append(row(phase, val_split, selected, m))
                if has_holdout:
                    rows.append(row(phase, SPLIT_HOLDOUT, selected, m["holdout"]))
                if HONEST in files:
                    honest = json.loads(Path(files[HONEST]).read_text()).get("honest") or {}
                    part = honest.get("single" if method.endswith("_single") else "metrics")
                    if part:
                        rows.append(row(phase, SPLIT_HALVES, SELECTED_HALVES.format(val_split), part))
            else:
                rows.append(row(phase, SPLIT_TEST, selected, m))
    return pd.DataFrame(rows)


def _best_member(ensemble_json: Path, members: Mapping[str, Mapping[str, Path]]) -> dict[str, Path]:
    """{phase: metrics file} of the first member of `ensemble_json`'s ranking (the best by val co-bps)."""
    best = str(json.loads(Path(ensemble_json).read_text())["ranking"][0])
    if best not in members:
        raise ValueError(
            f"{ensemble_json}: the best member is {best}, but no metrics files were given for it "
            f"(given: {', '.join(sorted(members)) or 'none'})"
        )
    return dict(members[best])


def write_baselines(methods: Mapping[str, Mapping[str, Path]], phases: Sequence[str], out: Path) -> pd.DataFrame:
    """baseline_rows written to `out` (baselines.csv)."""
    table = baseline_rows(methods, phases)
    write_csv(out, table)
    return table
