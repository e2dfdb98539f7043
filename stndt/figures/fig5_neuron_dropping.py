"""Fig. 5 of the STNDT paper: metrics as the most-attended vs random held-in input neurons are dropped,
STNDT and NDT, from the neuron-dropping analysis' table (stndt.analysis.neuron_dropping)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from stndt.figures import style
from stndt.figures.common import PathLike, metric_label, metrics_in, pyplot, read_csv

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def fig5_neuron_dropping(csv: PathLike, out: PathLike) -> Figure:
    """Fig. 5: each metric against the number of dropped input neurons, for STNDT and NDT with the
    attention order and random orders; mean over members (and seeds), shaded band = 2 s.e.m. A model
    without rows (e.g. no NDT members) has no curves."""
    from matplotlib.ticker import MaxNLocator

    from stndt.analysis.neuron_dropping import MODEL_NDT, MODEL_STNDT, ORDER_ATTENTION, ORDER_RANDOM

    plt = pyplot()
    table = read_csv(csv, "neuron-dropping table")
    for col in ("model", "order", "k"):
        if col not in table.columns:
            raise KeyError(f"{csv}: no '{col}' column")
    metrics = metrics_in(table)
    if not metrics:
        raise ValueError(f"{csv}: no metric columns with values")
    curves = [
        (MODEL_STNDT, ORDER_ATTENTION, "C0", "-", "o"),
        (MODEL_STNDT, ORDER_RANDOM, "C0", "--", "s"),
        (MODEL_NDT, ORDER_ATTENTION, "C1", "-", "o"),
        (MODEL_NDT, ORDER_RANDOM, "C1", "--", "s"),
    ]
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.9 * len(metrics), 4.3), squeeze=False, layout="constrained")
    for ax, metric in zip(axes[0], metrics):
        for model, order, color, ls, marker in curves:
            sel = table[(table["model"] == model) & (table["order"] == order)]
            if sel.empty:
                continue
            g = sel.groupby("k")[metric]
            mean, sem, count = g.mean(), g.sem(ddof=1).fillna(0.0), g.count()
            label = f"{model}, {'attention order' if order == ORDER_ATTENTION else 'random order'}"
            ax.plot(
                mean.index,
                mean.values,
                ls=ls,
                marker=marker,
                ms=3.5,
                color=color,
                lw=1.6,
                label=f"{label} (n={int(count.max())})",
            )
            ax.fill_between(
                mean.index,
                mean - 2 * sem,
                mean + 2 * sem,
                color=color,
                alpha=0.18 if order == ORDER_ATTENTION else 0.10,
                lw=0,
            )
        ax.set_xlabel("dropped held-in input neurons")
        ax.set_ylabel(metric_label(metric))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=len(handles), frameon=False, fontsize=9)
    fig.suptitle(
        "Neuron dropping: inputs zeroed in descending layer-1 attention vs random order "
        "(mean, band = 2 s.e.m. over members and random seeds)",
        fontsize=11,
    )
    style.save(fig, out)
    return fig
