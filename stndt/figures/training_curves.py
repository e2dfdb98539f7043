"""Training curves of every member of every member set: training loss and val co-bps against epoch."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from stndt.datasets import CO_BPS
from stndt.figures import style
from stndt.figures.common import SET_COLORS, PathLike, check_sets, metric_label, pyplot, read_csv, set_label
from stndt.members import VARIANTS

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def read_member_logs(train_logs: Mapping[str, Mapping[str, PathLike]]) -> dict[str, dict[str, pd.DataFrame]]:
    """{set: {member: train_log}} from {set: {member: train_log.csv}}; sets in VARIANTS order, members sorted."""
    check_sets(train_logs, "training curves' train logs", need_stndt=False)
    out: dict[str, dict[str, pd.DataFrame]] = {}
    for name in (v for v in VARIANTS if train_logs.get(v)):
        out[name] = {
            m: read_csv(path, f"train_log.csv of {name} member {m}") for m, path in sorted(train_logs[name].items())
        }
    return out


def fig_training_curves(train_logs: Mapping[str, Mapping[str, PathLike]], out: PathLike, dataset: str = "") -> Figure:
    """Training loss and val co-bps against epoch for every member of every member set (colour = set,
    one thin line per member, dot = the member's best epoch). `train_logs`: {set: {member: train_log.csv}}
    with VARIANTS keys as set names; `dataset` names the title."""
    plt = pyplot()
    sets = read_member_logs(train_logs)
    if not sets:
        raise ValueError("training curves: no train_log.csv given (STNDT or variants)")
    fig, (ax_l, ax_v) = plt.subplots(1, 2, figsize=(12, 4.3), layout="constrained")
    val_col = f"val {CO_BPS}"
    later: list[float] = []
    for name, logs in sets.items():
        color = SET_COLORS.get(name, None)
        label = set_label(name)
        for i, (member, log) in enumerate(logs.items()):
            for col in ("epoch", "loss", val_col):
                if col not in log.columns:
                    raise KeyError(f"train_log.csv of {name} member {member}: no '{col}' column")
            lab = f"{label} ({len(logs)} member{'s' if len(logs) > 1 else ''})" if i == 0 else None
            tl = log.dropna(subset=["loss"])
            ax_l.plot(tl["epoch"], tl["loss"], color=color, lw=1.0, alpha=0.7, label=lab)
            vl = log.dropna(subset=[val_col])
            ax_v.plot(vl["epoch"], vl[val_col], color=color, lw=1.0, alpha=0.7, marker=".", ms=3, label=lab)
            if len(vl):
                best = vl.loc[vl[val_col].idxmax()]
                ax_v.plot(best["epoch"], best[val_col], "o", color=color, ms=5, mec="k", mew=0.5)
                later += list(vl.loc[vl["epoch"] > 0, val_col])
    losses = np.concatenate([log["loss"].dropna().to_numpy(float) for ls in sets.values() for log in ls.values()])
    # log scale when the early drop would squash the rest of the curve
    if len(losses) and losses.min() > 0 and losses.max() / losses.min() > 2:
        from matplotlib.ticker import FormatStrFormatter

        ax_l.set_yscale("log")
        for which in (ax_l.yaxis.set_major_formatter, ax_l.yaxis.set_minor_formatter):
            which(FormatStrFormatter("%.2g"))
    ax_l.set_xlabel("epoch")
    ax_l.set_ylabel("training loss (masked NLL [+ contrastive])")
    ax_l.set_title("training loss", loc="left")
    ax_v.set_xlabel("epoch")
    ax_v.set_ylabel(f"val {metric_label(CO_BPS)}")
    ax_v.set_title("validation co-bps (dot = best epoch, kept as the member)", loc="left")
    if later:
        lo, hi = np.nanmin(later), np.nanmax(later)
        pad = 0.08 * max(hi - lo, 1e-3)
        ax_v.set_ylim(lo - pad, hi + pad)
        ax_v.set_xlabel("epoch (values of the untrained epoch-0 models may lie below the axis)")
    ax_v.axhline(0, color="0.6", lw=0.8, ls=":")
    handles, labels = ax_v.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=len(handles), frameon=False, fontsize=9)
    prefix = f"{dataset}: " if dataset else ""
    fig.suptitle(f"{prefix}training curves of every member", fontsize=12)
    style.save(fig, out)
    return fig
