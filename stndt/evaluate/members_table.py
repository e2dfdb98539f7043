"""members.csv: one row per member (hyperparameters, training summary, metrics) and the convergence
check that reads it: a member stopped by its cap, not by the stopping rule, is not a result, and the
end of a run names every such member.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from stndt.datasets import METRICS, RATE_R2
from stndt.io import write_csv
from stndt.members import MASKED_NLL, STOP_CAP, MemberFiles, converged, member_file


def members_table(members: Mapping[str, MemberFiles], out: Path, phases: Sequence[str]) -> pd.DataFrame:
    """One row per member, in the given order: id, sampled hyperparameters, training summary, and the
    metrics of `phases` (val, and test where its targets are known: the phases the workflow scored).
    `members`: {member id: its files} (params.json, train_log.csv, metrics_PHASE.json), as the rule
    passes them."""
    rows = []
    for member, files in members.items():
        params = json.loads(member_file(files, "params.json", member).read_text())
        row = {"member": member}
        row.update({k: v for k, v in params["hyperparameters"].items() if k != "seed"})
        summary = params.get("training", {})
        row.update(
            {
                "best_epoch": summary.get("best_epoch"),
                "val nll": summary.get("val nll"),
                MASKED_NLL: _masked_nll_at(member_file(files, "train_log.csv", member), summary.get("best_epoch")),
                "rule_fired_at": summary.get("rule_fired_at"),  # then the cool-down ran to epochs_run
                "epochs_run": summary.get("epochs_run"),
                "steps": summary.get("steps"),
                "stop_reason": summary.get("stop_reason"),
                "converged": member_converged(summary),
                "train_seconds": summary.get("train_seconds"),
            }
        )
        for phase in phases:
            m = json.loads(member_file(files, f"metrics_{phase}.json", member).read_text())
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
