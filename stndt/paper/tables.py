"""Tables 1-4 of the STNDT paper and the MC_Maze scaling table, from `baselines.csv` of each dataset.

Our rows report the test phase where its targets are known (synthetic data) and the local val phase
otherwise (the real test split is scored only by the benchmark's EvalAI server, from `submission.h5`).
Published numbers (NLB'21 hidden test split) stand beside ours for real NLB datasets; they live in one
file, `config/published_results.csv`, with their citation.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from stndt.datasets import METRICS, RATE_R2, SCALING_DATASETS
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


def load_published(path: str | Path) -> pd.DataFrame:
    table = pd.read_csv(path, comment="#")
    missing = {"method", "variant", "dataset"} - set(table.columns)
    if missing:
        raise ValueError(f"{path}: missing column(s) {sorted(missing)}")
    return table


def our_rows(baselines: pd.DataFrame, dataset: str, layout: str) -> pd.DataFrame:
    """Our methods for one dataset, in the phase that is reported (test if scored, else val)."""
    phase = "test" if (baselines["phase"] == "test").any() else "val"
    rows = baselines[baselines["phase"] == phase].copy()
    unknown = set(rows["method"]) - set(METHOD_NAMES)
    if unknown:
        raise ValueError(f"baselines.csv of {dataset}: unknown method(s) {sorted(unknown)}")
    rows[["method", "variant"]] = [METHOD_NAMES[m] for m in rows["method"]]
    rows.insert(0, "dataset", dataset)
    rows.insert(1, "layout", layout)
    rows.insert(2, "source", f"ours ({phase} split)")
    return rows


def main_table(results: Mapping[str, tuple[str, pd.DataFrame]], published: pd.DataFrame,
               synthetic: set[str]) -> pd.DataFrame:
    """Table 1/2 analog. `results`: dataset id -> (layout, its baselines.csv)."""
    parts = []
    for ds, (layout, baselines) in results.items():
        parts.append(our_rows(baselines, ds, layout))
        if ds not in synthetic:
            pub = published[(published["dataset"] == layout) & published["method"].isin(PUBLISHED_METHODS)].copy()
            pub.insert(1, "layout", layout)
            pub["dataset"] = ds
            pub.insert(2, "source", "published (NLB test split)")
            parts.append(pub)
    table = pd.concat(parts, ignore_index=True)
    return _columns(table)


def ablation_table(main: pd.DataFrame) -> pd.DataFrame:
    """Table 3/4 analog: STNDT with vs without the contrastive loss, single and ensemble."""
    rows = main[main["method"].isin(ABLATION_METHODS) & main["variant"].isin(["single", "ensemble"])]
    return rows.sort_values(["dataset", "source", "variant", "method"], kind="stable").reset_index(drop=True)


def scaling_table(main: pd.DataFrame) -> pd.DataFrame:
    """MC_Maze scaling: performance against training-set size (large / medium / small)."""
    rows = main[main["layout"].isin(SCALING_DATASETS)].copy()
    order = {name: i for i, name in enumerate(SCALING_DATASETS)}
    rows["_order"] = rows["layout"].map(order)
    return rows.sort_values(["_order", "source", "method", "variant"], kind="stable").drop(columns="_order")


def _columns(table: pd.DataFrame) -> pd.DataFrame:
    metrics = [m for m in (*METRICS, RATE_R2) if m in table.columns and table[m].notna().any()]
    return table[["dataset", "layout", "source", "method", "variant", *metrics]].reset_index(drop=True)


def to_markdown(table: pd.DataFrame, digits: int = 4) -> str:
    """A GitHub-flavoured Markdown table (empty cells for metrics a dataset does not define)."""
    def cell(v) -> str:
        if isinstance(v, (float, np.floating)):
            return "" if np.isnan(v) else f"{v:.{digits}f}"
        return str(v)

    lines = ["| " + " | ".join(table.columns) + " |", "|" + "|".join("---" for _ in table.columns) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def write_table(table: pd.DataFrame, csv: str | Path, title: str, note: str = "") -> None:
    """Write the CSV and, beside it, a Markdown version with a title and note."""
    csv = Path(csv)
    with atomic_path(csv) as tmp:
        table.to_csv(tmp, index=False)
    md = f"## {title}\n\n" + (f"{note}\n\n" if note else "") + to_markdown(table)
    with atomic_path(csv.with_suffix(".md")) as tmp:
        tmp.write_text(md)
