"""Fig. 2 of the STNDT paper: every member's metrics against its loss and against each other (the paper's
point: the training loss is a poor guide to the NLB metrics, hence ensembles chosen by val co-bps)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import pandas as pd

from stndt.datasets import METRICS
from stndt.figures import style
from stndt.figures.common import (
    LOSS_LABELS,
    SET_COLORS,
    STNDT,
    PathLike,
    annotate_r,
    check_sets,
    metric_label,
    metrics_in,
    pyplot,
    read_csv,
    set_label,
)
from stndt.members import MASKED_NLL, VARIANTS

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def fig2_member_metrics(members: Mapping[str, PathLike], out: PathLike, loss_column: str = "val nll") -> Figure:
    """Fig. 2: (A) each metric of the layout against the validation loss and (B) the metrics against
    each other, one point per member (Pearson r of all points in each panel title).

    `members`: {member set: its members.csv}; set names are VARIANTS keys and the 'stndt' set is
    required (its columns choose the metrics); the other sets are drawn in their own colours, in
    VARIANTS order. `loss_column`: the members.csv column on the x-axis of A. The paper plots the
    masked-modeling loss (`masked_nll`); `val nll` (Poisson NLL of the held-out neurons on the val
    trials) is an affine function of val co-bps (same trials, same null model), so r = -1 there.
    """
    from matplotlib.ticker import MaxNLocator

    check_sets(members, "fig2_member_metrics members tables")
    plt = pyplot()
    sets = {name: read_csv(members[name], f"members table of set {name}") for name in VARIANTS if name in members}
    members_csv = members[STNDT]
    first = sets[STNDT]
    metrics = metrics_in(first)
    if not metrics:
        raise ValueError(f"{members_csv}: no metric columns ({', '.join(METRICS)}) with values")
    if loss_column not in first.columns:
        raise KeyError(f"{members_csv}: no '{loss_column}' column (the validation loss of each member)")
    allrows = pd.concat([t.assign(_set=n) for n, t in sets.items()], ignore_index=True)
    m = len(metrics)
    n_b = max(m - 1, 1)
    fig = plt.figure(figsize=(max(3.0 * m, 7.5), 3.0 + 2.9 * n_b + 0.6), layout="constrained")
    sub_a, sub_b = fig.subfigures(2, 1, height_ratios=[3.0, 2.9 * n_b], hspace=0.04)

    def scatter(ax, xcol, ycol):
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4))  # long tick labels must not run together
        for name, t in sets.items():
            ax.scatter(
                t[xcol],
                t[ycol],
                s=34,
                alpha=0.85,
                color=SET_COLORS.get(name, None),
                label=f"{set_label(name)} ({len(t)})",
                edgecolor="white",
                linewidth=0.5,
            )
        annotate_r(ax, allrows[xcol], allrows[ycol])

    axes_a = sub_a.subplots(1, m, squeeze=False)[0]
    for ax, metric in zip(axes_a, metrics):
        scatter(ax, loss_column, metric)
        ax.set_xlabel(LOSS_LABELS.get(loss_column, loss_column))
        ax.set_ylabel(metric_label(metric))
    what = "the masked-modeling loss" if loss_column == MASKED_NLL else "the validation loss"
    sub_a.suptitle(
        f"A   Metrics vs {what} (one point per member, {len(allrows)} in all)", x=0.01, ha="left", fontweight="bold"
    )
    handles, labels = axes_a[0].get_legend_handles_labels()

    axes_b = sub_b.subplots(n_b, n_b, squeeze=False)
    for i in range(n_b):
        for j in range(n_b):
            ax = axes_b[i, j]
            row, col = i + 1, j  # lower triangle: metric[row] vs metric[col], col < row
            if m < 2 or col >= row:
                ax.set_axis_off()
                continue
            scatter(ax, metrics[col], metrics[row])
            ax.set_xlabel(metric_label(metrics[col]))
            ax.set_ylabel(metric_label(metrics[row]))
    if m < 2:
        axes_b[0, 0].text(0.5, 0.5, "only one metric: nothing to compare", ha="center", va="center")
    # the empty upper triangle holds the legend
    axes_b[0, -1].legend(handles, labels, loc="upper right", frameon=False, fontsize=10, title="member set")
    sub_b.suptitle("B   Metrics against each other", x=0.01, ha="left", fontweight="bold")
    style.save(fig, out)
    return fig
