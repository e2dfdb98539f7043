"""Tables 1-4 of the STNDT paper and the MC_Maze scaling table, from `baselines.csv` of each dataset.

Our rows report the test phase where its targets are known (synthetic data) and the local val phase
otherwise (the real test split is scored only by the benchmark's EvalAI server, from `submission.h5`).
Where the user imported that EvalAI result (`datasets.<id>.evalai_result`), it is a row of its own,
source `ours (EvalAI test)`: the only number of ours scored on the same hidden test split as the
published ones. Published numbers (NLB'21 hidden test split) stand beside ours for real NLB datasets;
they live in one file, `config/published_results.csv`, with their citation.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from stndt.datasets import METRICS, RATE_R2, SCALING_DATASETS
from stndt.evaluate.baselines import SPLIT_HALVES, SPLIT_HOLDOUT, SPLIT_SELECTION, SPLIT_TEST, SPLIT_VAL
from stndt.io import atomic_path

# Our method ids (baselines.csv) -> (method, variant) as the paper names them.
METHOD_NAMES: dict[str, tuple[str, str]] = {
    "stndt_ensemble": ("STNDT", "ensemble"),
    "stndt_single": ("STNDT", "single"),
    "ndt_ensemble": ("NDT", "ensemble"),
    "ndt_single": ("NDT", "single"),
    "no_contrast_ensemble": ("STNDT without contrastive", "ensemble"),
    "no_contrast_single": ("STNDT without contrastive", "single"),
    "smoothing": ("Smoothing", "baseline"),
    "oracle": ("Oracle (true rates)", "ground truth"),
}
# Published rows shown beside ours (the paper's NDT rows are its own NDT baselines).
PUBLISHED_METHODS = ("STNDT", "NDT (AESMTE1)", "NDT (AESMTE3)", "STNDT without contrastive", "Smoothing")
ABLATION_METHODS = ("STNDT", "STNDT without contrastive")
# Splits in the order the tables show them: what compares with the published (hidden test) numbers first.
SPLIT_ORDER = (SPLIT_TEST, SPLIT_HOLDOUT, SPLIT_HALVES, SPLIT_SELECTION, SPLIT_VAL)
PUBLISHED_SPLIT = "NLB hidden test"
#: Rows of an imported EvalAI result: the submission (the chosen STNDT ensemble's test-phase rates) as
#: EvalAI scored it on the NLB test split.
EVALAI_SOURCE, EVALAI_SPLIT, EVALAI_METHOD = "ours (EvalAI test)", "test", "stndt_ensemble"
#: The note under every table: which of our numbers compare with which.
READING_NOTE = (
    "Published: Le & Shlizerman, STNDT, NeurIPS 2022, scored on the NLB'21 hidden test split. Compare them "
    "only with our rows whose split is `test` (synthetic data's known test targets, or EvalAI). `selected "
    "on` names the trials our choices were made on (best epochs, early stopping, the search, the ensemble's "
    "members and size): a row scored on the trials it was selected on (`val` or `val selection trials`) is "
    "optimistic. `val holdout` (evaluation.holdout) and `val split-half` are the local estimates free of "
    "that selection (the split-half one only partly: the members' best epochs used every val trial)."
)


def load_published(path: str | Path) -> pd.DataFrame:
    table = pd.read_csv(path, comment="#")
    missing = {"method", "variant", "dataset"} - set(table.columns)
    if missing:
        raise ValueError(f"{path}: missing column(s) {sorted(missing)}")
    return table


def our_rows(baselines: pd.DataFrame, dataset: str, layout: str) -> pd.DataFrame:
    """Our methods for one dataset: every row of its baselines.csv, test split first, each labelled with
    the trials it is scored on (`split`) and those its choices were made on (`selected on`)."""
    for col in ("split", "selected on"):
        if col not in baselines.columns:
            raise ValueError(
                f"baselines.csv of {dataset}: no '{col}' column (written by an older version; rerun the baselines rule)"
            )
    rows = baselines.copy()
    unknown = set(rows["method"]) - set(METHOD_NAMES)
    if unknown:
        raise ValueError(f"baselines.csv of {dataset}: unknown method(s) {sorted(unknown)}")
    rows["_order"] = rows["split"].map(lambda x: SPLIT_ORDER.index(x) if x in SPLIT_ORDER else len(SPLIT_ORDER))
    rows = rows.sort_values("_order", kind="stable").drop(columns="_order")
    rows[["method", "variant"]] = [METHOD_NAMES[m] for m in rows["method"]]
    rows.insert(0, "dataset", dataset)
    rows.insert(1, "layout", layout)
    rows.insert(2, "source", "ours")
    return rows


def evalai_rows(metrics: Mapping[str, float], baselines: pd.DataFrame, dataset: str, layout: str) -> pd.DataFrame:
    """The row of an imported EvalAI result (stndt.evaluate.evalai.load_result): the submitted STNDT
    ensemble scored on the NLB test split, selected on the trials the ensemble was chosen on: those of its
    baselines.csv row scored on its own selection trials (`val`, or `val selection trials` with a holdout)."""
    rows = baselines[baselines["method"] == EVALAI_METHOD]
    ours = rows.loc[rows["split"] == rows["selected on"], "selected on"].unique()
    method, variant = METHOD_NAMES[EVALAI_METHOD]
    row = {
        "dataset": dataset,
        "layout": layout,
        "source": EVALAI_SOURCE,
        "method": method,
        "variant": variant,
        "split": EVALAI_SPLIT,
        "selected on": ours[0] if len(ours) == 1 else "val",
        **metrics,
    }
    return pd.DataFrame([row])


def main_table(
    results: Mapping[str, tuple[str, pd.DataFrame]],
    published: pd.DataFrame,
    synthetic: set[str],
    evalai: Mapping[str, Mapping[str, float]] | None = None,
) -> pd.DataFrame:
    """Table 1/2 analog. `results`: dataset id -> (layout, its baselines.csv); `evalai`: dataset id -> the
    metrics of its imported EvalAI result, shown as a row between ours and the published ones."""
    evalai = evalai or {}
    unknown = sorted(set(evalai) - set(results))
    if unknown:
        raise ValueError(f"EvalAI result(s) given for {unknown}, which have no baselines.csv among the datasets")
    bad = sorted(set(evalai) & set(synthetic))
    if bad:
        raise ValueError(f"EvalAI result(s) given for synthetic dataset(s) {bad}: EvalAI holds none of their trials")
    parts = []
    for ds, (layout, baselines) in results.items():
        parts.append(our_rows(baselines, ds, layout))
        if ds in evalai:
            parts.append(evalai_rows(evalai[ds], baselines, ds, layout))
        if ds not in synthetic:
            pub = published[(published["dataset"] == layout) & published["method"].isin(PUBLISHED_METHODS)].copy()
            pub.insert(1, "layout", layout)
            pub["dataset"] = ds
            pub.insert(2, "source", "published")
            pub["split"], pub["selected on"] = PUBLISHED_SPLIT, "val (authors)"
            parts.append(pub)
    table = pd.concat(parts, ignore_index=True)
    return _columns(table)


PAIRED_NOTE = (
    "Our rows compare STNDT members 0..k-1 with the variant's members 0..k-1 (member i of a variant "
    "trained with STNDT member i's hyperparameters and seed), best member and ensemble chosen the same "
    "way from each pool; `paired difference` is the mean of (variant - STNDT) over the k pairs with a "
    "bootstrap 95% interval (none for one pair). Table 1 has the ensemble of every STNDT member."
)
SET_NAMES = {"stndt": "STNDT", "ndt": "NDT", "no_contrast": "STNDT without contrastive"}


def ablation_table(main: pd.DataFrame, paired: Mapping[str, pd.DataFrame] | None = None) -> pd.DataFrame:
    """Table 3/4 analog: STNDT against each variant on equal pools of the same draws (`paired`: dataset id
    -> its paired_ablation.csv), beside the published ablation rows of real datasets (from `main`).
    Without paired results for a dataset, its rows of `main` are shown (pools of unequal size)."""
    parts = []
    paired = paired or {}
    for ds, rows in main.groupby("dataset", sort=False):
        pub = rows[(rows["source"] == "published") & rows["method"].isin(ABLATION_METHODS)]
        if ds in paired:
            parts.append(_paired_rows(paired[ds], ds, str(rows["layout"].iloc[0])))
        else:
            ours = rows[
                (rows["source"] == "ours")
                & rows["method"].isin(ABLATION_METHODS)
                & rows["variant"].isin(["single", "ensemble"])
            ]
            parts.append(_format(ours.assign(comparison="no_contrast", k=np.nan)))
        if len(pub):
            parts.append(_format(pub.assign(comparison="no_contrast", k=np.nan)))
    if not parts:
        return pd.DataFrame()
    table = pd.concat(parts, ignore_index=True)
    metrics = [m for m in (*METRICS, RATE_R2) if m in table.columns and (table[m] != "").any()]
    cols = ["dataset", "layout", "source", "comparison", "k", "method", "variant", "split", "selected on", *metrics]
    return table[[c for c in cols if c in table.columns]].reset_index(drop=True)


def _paired_rows(tidy: pd.DataFrame, dataset: str, layout: str) -> pd.DataFrame:
    """The wide, formatted rows of one dataset's paired_ablation.csv (see stndt.evaluate.paired)."""
    order = {s: i for i, s in enumerate(SPLIT_ORDER)}
    tidy = tidy.assign(_split=tidy["split"].map(lambda x: order.get(x, len(order))))
    rows = []
    keys = ["comparison", "k", "set", "kind", "split"]
    for (comparison, k, set_, kind, split), g in tidy.sort_values(["comparison", "_split"], kind="stable").groupby(
        keys, sort=False
    ):
        row = {
            "dataset": dataset,
            "layout": layout,
            "source": "ours",
            "comparison": comparison,
            "k": int(k),
            "method": " - ".join(SET_NAMES.get(x.strip(), x.strip()) for x in str(set_).split(" - ")),
            "variant": kind,
            "split": split,
            "selected on": ""
            if kind == "paired difference"
            else ("val selection trials" if "val holdout" in set(tidy["split"]) else "val"),
        }
        for _, r in g.iterrows():
            if kind == "paired difference":
                ci = "" if pd.isna(r["ci_low"]) else f" [{r['ci_low']:+.4f}, {r['ci_high']:+.4f}]"
                row[r["metric"]] = f"{r['value']:+.4f}{ci}"
            else:
                row[r["metric"]] = f"{r['value']:.4f}"
        rows.append(row)
    return pd.DataFrame(rows).fillna("")


def _format(rows: pd.DataFrame) -> pd.DataFrame:
    out = rows.copy()
    for m in (*METRICS, RATE_R2):
        if m in out.columns:
            out[m] = [("" if pd.isna(v) else f"{v:.4f}") for v in out[m]]
    out["k"] = ["" if pd.isna(v) else int(v) for v in out["k"]]
    return out


def scaling_table(main: pd.DataFrame) -> pd.DataFrame:
    """MC_Maze scaling: performance against training-set size (large / medium / small)."""
    rows = main[main["layout"].isin(SCALING_DATASETS)].copy()
    order = {name: i for i, name in enumerate(SCALING_DATASETS)}
    rows["_order"] = rows["layout"].map(order)
    return rows.sort_values(["_order", "source", "method", "variant"], kind="stable").drop(columns="_order")


def _columns(table: pd.DataFrame) -> pd.DataFrame:
    metrics = [m for m in (*METRICS, RATE_R2) if m in table.columns and table[m].notna().any()]
    return table[["dataset", "layout", "source", "method", "variant", "split", "selected on", *metrics]].reset_index(
        drop=True
    )


def to_markdown(table: pd.DataFrame, digits: int = 4) -> str:
    """A GitHub-flavoured Markdown table (empty cells for metrics a dataset does not define)."""

    def cell(v) -> str:
        if isinstance(v, (float, np.floating)):
            return "" if np.isnan(v) else f"{v:.{digits}f}"
        return str(v)

    lines = ["| " + " | ".join(table.columns) + " |", "|" + "|".join("---" for _ in table.columns) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def write_table(table: pd.DataFrame, csv: str | Path, md: str | Path, title: str, note: str = "") -> None:
    """Write the CSV and a Markdown version with a title and note (the paths the rule names)."""
    with atomic_path(Path(csv)) as tmp:
        table.to_csv(tmp, index=False)
    text = f"## {title}\n\n" + (f"{note}\n\n" if note else "") + to_markdown(table)
    with atomic_path(Path(md)) as tmp:
        tmp.write_text(text)
