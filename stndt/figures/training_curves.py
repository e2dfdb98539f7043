"""Training curves of every member of every member set: training loss and val co-bps against epoch, with
where each member's stopping rule fired and which members stopped at the cap (not converged)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from stndt.datasets import CO_BPS
from stndt.figures import style
from stndt.figures.common import SET_COLORS, PathLike, check_sets, metric_label, pyplot, read_csv, set_label
from stndt.members import STOP_CAP, VARIANTS

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


def read_member_training(params: Mapping[str, Mapping[str, PathLike]]) -> dict[str, dict[str, dict[str, Any]]]:
    """{set: {member: how its training ended}} (params.json's `training`: stop_reason, rule_fired_at, ...)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for name, members in params.items():
        for member, path in members.items():
            try:
                with open(path) as f:
                    out.setdefault(name, {})[member] = json.load(f)["training"]
            except OSError as err:
                raise type(err)(f"params.json of {name} member {member} ({path}): {err}") from None
            except (ValueError, KeyError, TypeError) as err:  # damaged JSON, or no `training` record
                raise ValueError(f"params.json of {name} member {member} ({path}): unreadable ({err!r})") from None
    return out


def fig_training_curves(
    train_logs: Mapping[str, Mapping[str, PathLike]],
    out: PathLike,
    dataset: str = "",
    params: Mapping[str, Mapping[str, PathLike]] | None = None,
) -> Figure:
    """Training loss and val co-bps against epoch for every member of every member set (colour = set,
    one thin line per member, dot = the member's best epoch). `train_logs`: {set: {member: train_log.csv}}
    with VARIANTS keys as set names; `dataset` names the title. With `params` ({set: {member:
    params.json}}), a cross marks the epoch at which a member's stopping rule fired (the cool-down, if
    any, runs after it) and a member that stopped at the cap, not converged, is drawn dashed."""
    from matplotlib.lines import Line2D

    plt = pyplot()
    sets = read_member_logs(train_logs)
    if not sets:
        raise ValueError("training curves: no train_log.csv given (STNDT or variants)")
    ended = read_member_training(params or {})
    any_cap = any_fired = False
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
            info = ended.get(name, {}).get(member, {})
            ls = "--" if info.get("stop_reason") == STOP_CAP else "-"
            any_cap |= ls == "--"
            tl = log.dropna(subset=["loss"])
            ax_l.plot(tl["epoch"], tl["loss"], color=color, lw=1.0, alpha=0.7, ls=ls, label=lab)
            vl = log.dropna(subset=[val_col])
            ax_v.plot(vl["epoch"], vl[val_col], color=color, lw=1.0, alpha=0.7, ls=ls, marker=".", ms=3, label=lab)
            if len(vl):
                best = vl.loc[vl[val_col].idxmax()]
                ax_v.plot(best["epoch"], best[val_col], "o", color=color, ms=5, mec="k", mew=0.5)
                later += list(vl.loc[vl["epoch"] > 0, val_col])
                fired = info.get("rule_fired_at")
                if fired is not None:
                    at = vl.loc[vl["epoch"] <= fired]
                    if len(at):
                        ax_v.plot(fired, at[val_col].iloc[-1], "X", color=color, ms=7, mec="k", mew=0.6)
                        any_fired = True
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
    ax_v.set_title("validation co-bps", loc="left")
    if later:
        lo, hi = np.nanmin(later), np.nanmax(later)
        pad = 0.08 * max(hi - lo, 1e-3)
        ax_v.set_ylim(lo - pad, hi + pad)
        ax_v.set_xlabel("epoch (values of the untrained epoch-0 models may lie below the axis)")
    ax_v.axhline(0, color="0.6", lw=0.8, ls=":")
    handles, labels = ax_v.get_legend_handles_labels()
    keys = [(Line2D([], [], ls="", marker="o", color="0.5", mec="k", mew=0.5), "best epoch (kept as the member)")]
    if any_fired:
        keys.append((Line2D([], [], ls="", marker="X", color="0.5", mec="k", ms=7), "stopping rule fired"))
    if any_cap:
        keys.append((Line2D([], [], ls="--", color="0.3"), "stopped at the epoch cap: NOT converged"))
    handles += [h for h, _ in keys]
    labels += [t for _, t in keys]
    fig.legend(handles, labels, loc="outside lower center", ncol=min(len(handles), 4), frameon=False, fontsize=9)
    prefix = f"{dataset}: " if dataset else ""
    fig.suptitle(f"{prefix}training curves of every member", fontsize=12)
    style.save(fig, out)
    return fig
