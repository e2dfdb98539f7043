"""What the paper's figures share: metric and member-set labels and colours, the plotting entry point,
table readers, and the choice of example trials (one per condition) used by Figs. 3 and 4.

The figures themselves are one module each (fig2_member_metrics, fig3_ensemble, fig4_attention,
fig5_neuron_dropping, training_curves). Every figure function takes each file it reads as an explicit
path, writes a PNG and a PDF through stndt.figures.style.save (atomic) and returns its matplotlib Figure,
so tests can check the plotted data against the inputs. Metric names come from stndt.datasets; rates
are stored in spikes per bin and shown in spikes/s; time is ms from the layout's alignment event.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from stndt.data.tensors import read_layout
from stndt.datasets import CO_BPS, FP_BPS, METRICS, PSTH_R2, RATE_R2, TP_CORR, VEL_R2, nlb_key
from stndt.figures import style
from stndt.members import MASKED_NLL, VARIANTS

PathLike = str | os.PathLike

#: The reference member set; the others are the variants of stndt.members.VARIANTS.
STNDT = "stndt"
#: Axis labels with units, by metric name.
METRIC_LABELS: dict[str, str] = {
    CO_BPS: "co-bps (bits/spike)",
    FP_BPS: "fp-bps (bits/spike)",
    VEL_R2: "vel R$^2$",
    PSTH_R2: "psth R$^2$",
    TP_CORR: "tp corr (Pearson r)",
    RATE_R2: "rate R$^2$ (vs true rates)",
}
#: Display names of member sets; a set without one is shown by its name (any VARIANTS key works).
SET_LABELS: dict[str, str] = {STNDT: "STNDT", "ndt": "NDT", "no_contrast": "STNDT w/o contrastive"}
#: One colour per member set, in the order of VARIANTS (the STNDT set first), the same in every figure.
SET_COLORS: dict[str, str] = {name: f"C{i}" for i, name in enumerate(VARIANTS)}
#: x-axis labels of Fig. 2A by loss column of members.csv.
LOSS_LABELS: dict[str, str] = {
    "val nll": "val Poisson NLL, held-out neurons\n(nats per neuron-bin)",
    MASKED_NLL: "masked-modeling loss\n(train NLL, kept epoch)",
}


def metric_label(metric: str) -> str:
    return METRIC_LABELS.get(metric, metric)


def set_label(name: str) -> str:
    return SET_LABELS.get(name, name)


def check_sets(names: Iterable[str], what: str, need_stndt: bool = True) -> None:
    """Member-set names must be VARIANTS keys (the one list of sets); the STNDT set is the reference."""
    names = list(names)
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise ValueError(f"{what}: unknown member set(s) {unknown}; expected names from {', '.join(VARIANTS)}")
    if need_stndt and STNDT not in names:
        raise ValueError(f"{what}: the '{STNDT}' member set is required (given: {', '.join(names) or 'none'})")


def pyplot():
    """matplotlib.pyplot with the figures' style applied."""
    import matplotlib.pyplot as plt

    style.setup()
    return plt


def metrics_in(table: pd.DataFrame) -> list[str]:
    """The NLB metrics a table has values for, in the benchmark's order."""
    return [m for m in METRICS if m in table.columns and table[m].notna().any()]


def pearson(x: np.ndarray, y: np.ndarray) -> float | None:
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3 or np.std(x[ok]) == 0 or np.std(y[ok]) == 0:
        return None
    return float(np.corrcoef(x[ok], y[ok])[0, 1])


def annotate_r(ax, x, y) -> None:
    """Pearson r of all points shown, as the panel title (never on top of the data)."""
    r = pearson(np.asarray(x, float), np.asarray(y, float))
    ax.set_title("Pearson r = n/a (< 3 points)" if r is None else f"Pearson r = {r:.2f}", fontsize=9)


def read_csv(path: PathLike, what: str) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: {what} does not exist")
    return pd.read_csv(path)


def tensors_info(tensors: PathLike) -> tuple[Path, str, int, str]:
    """(path, layout, bin width in ms, nlb key) of a val tensors file, which must exist."""
    tensors = Path(tensors)
    if not tensors.exists():
        raise FileNotFoundError(f"{tensors}: val tensors file does not exist")
    layout, bw = read_layout(tensors)
    return tensors, layout, bw, nlb_key(layout, bw)


def condition_groups(targets: Mapping, n_trials: int) -> list[np.ndarray]:
    """Eval trial indices per condition (nlb_tools' eval_cond_idx), or every trial as one group."""
    from stndt.evaluate.metrics import normalize_cond_idx

    if "eval_cond_idx" not in targets:
        return [np.arange(n_trials)]
    groups = normalize_cond_idx(targets["eval_cond_idx"], "eval_cond_idx")
    return [np.asarray(g, dtype=int) for g in groups]


def example_trials(groups: list[np.ndarray], n: int, score: np.ndarray | None = None) -> list[int]:
    """`n` example trials from different conditions. With per-trial feature vectors `score`
    (trials, d), conditions are picked greedily to be far apart (farthest-point sampling)."""
    firsts = [int(g[0]) for g in groups if len(g)]
    if len(firsts) < n:  # too few conditions: fill with further trials
        extra = [int(t) for g in groups for t in g[1:]]
        return (firsts + extra)[:n]
    if score is None:
        return firsts[:n]
    feats = score[firsts]
    chosen = [int(np.argmax(np.linalg.norm(feats - feats.mean(0), axis=1)))]
    while len(chosen) < n:
        d = np.min(np.linalg.norm(feats[:, None] - feats[chosen][None], axis=-1), axis=1)
        d[chosen] = -1
        chosen.append(int(np.argmax(d)))
    return [firsts[c] for c in chosen]
