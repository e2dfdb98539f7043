"""baselines.csv: every method (member sets' ensembles and best members, smoothing, the oracle) on the
same trials, one row per method, phase and split, each labelled with the trials it was scored on and
those its choices were made on.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from stndt.datasets import METRICS, RATE_R2
from stndt.io import write_csv
from stndt.members import VARIANTS

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
