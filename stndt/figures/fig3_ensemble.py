"""Fig. 3 of the STNDT paper: the ensemble. (A) co-bps against ensemble size, (B) hand trajectories decoded
from the ensemble's rates beside the true ones, (C) its single-trial rates and PSTHs of 3 neurons."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from stndt.candidates import CHECKPOINTS
from stndt.data.tensors import window_start_ms
from stndt.datasets import CO_BPS, TP_CORR, VEL_R2, nlb_dataset
from stndt.figures import style
from stndt.figures.common import (
    PathLike,
    condition_groups,
    example_trials,
    metric_label,
    pyplot,
    read_csv,
    tensors_info,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def decode_velocity(rates: Mapping, targets: Mapping) -> tuple[np.ndarray, float]:
    """Decoded eval-trial velocity (trials, bins, 2) and its R2, as nlb_tools scores vel R2: ridge
    regression (alpha by 5-fold grid search over logspace(-4, 0, 9)) from all neurons' rates of the
    train trials to their (already lagged) behaviour, one decoder per decode mask; NaN rows skipped."""
    from sklearn.linear_model import Ridge
    from sklearn.metrics import r2_score
    from sklearn.model_selection import GridSearchCV

    tr = np.concatenate([rates["train_rates_heldin"], rates["train_rates_heldout"]], axis=-1).astype(float)
    ev = np.concatenate([rates["eval_rates_heldin"], rates["eval_rates_heldout"]], axis=-1).astype(float)
    yb_tr = np.asarray(targets["train_behavior"], float)
    yb_ev = np.asarray(targets["eval_behavior"], float)
    if yb_tr.ndim != 3 or yb_tr.shape[:2] != tr.shape[:2]:
        raise ValueError(f"train_behavior {yb_tr.shape} does not match train rates {tr.shape[:2]} (trials, bins)")
    m_tr = np.asarray(targets.get("train_decode_mask", np.ones((len(tr), 1), bool)), bool)
    m_ev = np.asarray(targets.get("eval_decode_mask", np.ones((len(ev), 1), bool)), bool)
    pred = np.full(yb_ev.shape, np.nan)
    r2s = []
    for i in range(m_tr.shape[1]):
        x = tr[m_tr[:, i]].reshape(-1, tr.shape[-1])
        y = yb_tr[m_tr[:, i]].reshape(-1, yb_tr.shape[-1])
        ok = ~np.isnan(y).any(axis=1)
        dec = GridSearchCV(Ridge(), {"alpha": np.logspace(-4, 0, 9)}).fit(x[ok], y[ok])
        sel = m_ev[:, i]
        pred[sel] = dec.predict(ev[sel].reshape(-1, ev.shape[-1])).reshape(*ev[sel].shape[:2], -1)
        yt, yp = yb_ev[sel].reshape(-1, yb_ev.shape[-1]), pred[sel].reshape(-1, yb_ev.shape[-1])
        keep = ~np.isnan(yt).any(axis=1)
        r2s.append(r2_score(yt[keep], yp[keep]))
    return pred, float(np.mean(r2s))


def _integrate(vel: np.ndarray, bin_width_ms: int) -> np.ndarray:
    """Position from velocity (per second): cumulative sum over bins times the bin width, from 0."""
    v = np.nan_to_num(vel)
    return np.cumsum(v, axis=-2) * (bin_width_ms / 1000.0)


def _panel_curve(ax, curve_path: Path, ens_path: Path) -> None:
    curve = read_csv(curve_path, "ensemble curve")
    if not ens_path.exists():
        raise FileNotFoundError(f"{ens_path}: does not exist")
    ens = json.loads(ens_path.read_text())
    if CO_BPS not in curve.columns:
        raise KeyError(f"{curve_path}: no '{CO_BPS}' column")
    held = int(ens.get("holdout_trials", 0))
    trials = f"val, {held} holdout trials excluded" if held else "val"
    ax.plot(curve["n"], curve[CO_BPS], "o-", color="C0", ms=4, lw=1.5, label=f"ensemble of the top n ({trials})")
    n = int(ens["n"])
    chosen = curve.loc[curve["n"] == n, CO_BPS]
    if len(chosen):
        ax.plot([n], [chosen.iloc[0]], marker="*", ms=16, color="C3", ls="none", zorder=5, label=f"chosen n = {n}")
    single = float(curve.loc[curve["n"] == 1, CO_BPS].iloc[0])
    ax.axhline(single, color="0.4", ls="--", lw=1.2, label=f"best single member ({single:.3f})")
    honest = ens.get("honest", {}).get("metrics", {}).get(CO_BPS)
    if honest is not None:
        ax.axhline(honest, color="C2", ls=":", lw=1.8, label=f"split-half honest estimate ({honest:.3f})")
    if "test" in ens and CO_BPS in ens["test"]:
        # other trials, other scale: reported in the legend, not drawn (it would squash the val curve)
        ax.plot([], [], ls="none", label=f"chosen ensemble on the test split: {ens['test'][CO_BPS]:.3f}")
    # evaluation.candidates: checkpoints ranks every member's best checkpoints, not whole members
    ranked = "checkpoints" if ens.get("candidates") == CHECKPOINTS else "members"
    ax.set_xlabel(f"ensemble size n ({ranked}, ranked by val co-bps)")
    ax.set_ylabel(metric_label(CO_BPS))
    ax.set_xticks(curve["n"] if len(curve) <= 12 else ax.get_xticks())
    ax.legend(fontsize=8, frameon=False, loc="best")
    ax.set_title("A   co-bps vs ensemble size", loc="left", fontweight="bold")


def _has_velocity(layout: str, targets: Mapping) -> bool:
    return VEL_R2 in nlb_dataset(layout).metrics and "train_behavior" in targets


def _examples(groups: list[np.ndarray], n: int, feats: np.ndarray | None) -> list[tuple[int, int]]:
    """(condition index, trial) of `n` example trials from different conditions, spread out in `feats`,
    sorted by condition. One colour per example, shared by panels B and C."""
    trials = example_trials(groups, n, feats)
    return sorted((next(i for i, g in enumerate(groups) if t in g), t) for t in trials)


def _panel_trajectories(
    ax,
    rates: Mapping,
    targets: Mapping,
    examples: list[tuple[int, int]],
    layout: str,
    bw: int,
    synthetic: bool,
    conditioned: bool,
) -> None:
    from matplotlib.lines import Line2D

    plt = pyplot()
    if not _has_velocity(layout, targets):
        ax.set_axis_off()
        why = (
            f"{layout}: no hand velocity in this layout\n(behaviour is scored as {TP_CORR})"
            if TP_CORR in nlb_dataset(layout).metrics
            else "no hand velocity (train_behavior) in the targets"
        )
        ax.text(0.5, 0.5, why, ha="center", va="center", transform=ax.transAxes, fontsize=10)
        ax.set_title("B   decoded hand trajectories: not applicable", loc="left", fontweight="bold")
        return
    pred, r2 = decode_velocity(rates, targets)
    true = np.asarray(targets["eval_behavior"], float)
    pos_true, pos_pred = _integrate(true, bw), _integrate(pred, bw)
    colors = plt.get_cmap("tab10").colors
    for i, (_, tr) in enumerate(examples):
        ax.plot(pos_true[tr, :, 0], pos_true[tr, :, 1], "-", color=colors[i % 10], lw=2.0)
        ax.plot(pos_pred[tr, :, 0], pos_pred[tr, :, 1], "--", color=colors[i % 10], lw=2.0)
        ax.plot(pos_true[tr, 0, 0], pos_true[tr, 0, 1], "o", color="k", ms=3)
    unit = "a.u." if synthetic or nlb_dataset(layout).family != "mc_maze" else "mm"
    ax.set_xlabel(f"hand x position ({unit}; integrated velocity)")
    ax.set_ylabel(f"hand y position ({unit})")
    ax.set_aspect("equal", adjustable="datalim")
    handles = [
        Line2D([], [], color="k", ls="-"),
        Line2D([], [], color="k", ls="--"),
        Line2D([], [], color="k", marker="o", ls="none", ms=3),
    ]
    labels = ["true", "decoded from ensemble rates", "start"]
    if conditioned:
        handles += [Line2D([], [], color=colors[i % 10], lw=2) for i in range(len(examples))]
        labels += [f"trial {tr} (condition {c + 1})" for c, tr in examples]
    ax.legend(handles, labels, fontsize=8, frameon=False, loc="best")
    ax.set_title(
        f"B   decoded vs true hand trajectories, {len(examples)} val trials (vel R$^2$ = {r2:.3f})",
        loc="left",
        fontweight="bold",
    )


def _pick_neurons(pred: np.ndarray, groups, n_heldin: int) -> list[int]:
    """Two held-in and one held-out neuron with the most condition-dependent predicted PSTH."""
    psth = np.stack([pred[g].mean(axis=0) for g in groups if len(g)])  # (cond, T, N)
    modulation = psth.std(axis=(0, 1))
    heldin = list(np.argsort(modulation[:n_heldin])[::-1][:2])
    heldout = list(n_heldin + np.argsort(modulation[n_heldin:])[::-1][:1]) if pred.shape[-1] > n_heldin else []
    return [int(i) for i in heldin + heldout]


def _panel_rates(
    fig_c,
    rates: Mapping,
    targets: Mapping,
    groups,
    examples: list[tuple[int, int]],
    truth: Mapping | None,
    layout: str,
    bw: int,
    conditioned: bool,
    trials_per_condition: int = 2,
) -> None:
    """Rows: single-trial rates, PSTHs; columns: 3 neurons. With conditions, colour = condition (the
    conditions of the example trials); without, the example trials themselves and the all-trial mean."""
    from matplotlib.lines import Line2D

    plt = pyplot()
    hz = 1000.0 / bw
    n_heldin = rates["eval_rates_heldin"].shape[-1]
    pred = np.concatenate([rates["eval_rates_heldin"], rates["eval_rates_heldout"]], axis=-1) * hz
    true = None
    if truth is not None:
        true = np.concatenate([truth["eval_rates_heldin"], truth["eval_rates_heldout"]], axis=-1) * hz
    neurons = _pick_neurons(pred, groups, n_heldin)
    if conditioned:  # (label, single trials to draw, trials averaged for the PSTH, condition or None)
        lines = [(f"condition {c + 1}", groups[c][:trials_per_condition], groups[c], c) for c, _ in examples]
    else:
        every = np.arange(pred.shape[0])
        lines = [(f"trial {tr}", [tr], every if i == 0 else [], None) for i, (_, tr) in enumerate(examples)]
    t_ms = window_start_ms(layout) + bw * (np.arange(pred.shape[1]) + 0.5)
    colors = plt.get_cmap("tab10").colors
    axes = fig_c.subplots(2, len(neurons), squeeze=False, sharex=True)
    emp_psth = targets.get("psth")
    for col, n in enumerate(neurons):
        kind = "held-in" if n < n_heldin else "held-out"
        ax_s, ax_p = axes[0, col], axes[1, col]
        for i, (_, single, avg, c) in enumerate(lines):
            color = colors[i % 10]
            for tr in single:
                ax_s.plot(t_ms, pred[tr, :, n], color=color, lw=1.2, alpha=0.9)
                if true is not None:
                    ax_s.plot(t_ms, true[tr, :, n], color=color, lw=1.2, ls=":")
            if len(avg):
                pc = color if conditioned else "0.2"
                ax_p.plot(t_ms, pred[avg, :, n].mean(axis=0), color=pc, lw=1.8)
                if true is not None:
                    ax_p.plot(t_ms, true[avg, :, n].mean(axis=0), color=pc, lw=1.8, ls=":")
                elif emp_psth is not None and c is not None and c < len(emp_psth):
                    ax_p.plot(t_ms, np.asarray(emp_psth)[c, : len(t_ms), n] * hz, color=pc, lw=1.5, ls=":")
        ax_s.set_title(f"neuron {n} ({kind})", fontsize=10)
        ax_p.set_xlabel("time from alignment (ms)")
        if col == 0:
            ax_s.set_ylabel("single-trial rate\n(spikes/s)")
            ax_p.set_ylabel("PSTH (spikes/s)" if conditioned else "mean over all\nval trials (spikes/s)")
    ref = "true rate" if true is not None else ("empirical PSTH (NLB target)" if emp_psth is not None else None)
    handles = [Line2D([], [], color=colors[i % 10], lw=1.8) for i in range(len(lines))]
    labels = [label for label, *_ in lines]
    handles.append(Line2D([], [], color="k", lw=1.5))
    labels.append("predicted (ensemble)")
    if ref:
        handles.append(Line2D([], [], color="k", lw=1.5, ls=":"))
        labels.append(ref)
    fig_c.legend(handles, labels, loc="outside lower center", ncol=len(labels), frameon=False, fontsize=8)
    what = (
        f"{trials_per_condition} trials per condition) and PSTHs"
        if conditioned
        else "example trials; no conditions in this layout) and mean rates"
    )
    fig_c.suptitle(
        f"C   predicted single-trial rates ({what} of 3 example neurons (val trials)",
        x=0.01,
        ha="left",
        fontweight="bold",
    )


def fig3_ensemble(
    curve: PathLike,
    ensemble: PathLike,
    rates: PathLike,
    tensors: PathLike,
    out: PathLike,
    truth: PathLike | None = None,
    dataset: str = "",
    n_examples: int = 4,
) -> Figure:
    """Fig. 3: (A) co-bps against ensemble size, (B) decoded vs true hand trajectories of `n_examples`
    val trials, (C) predicted single-trial rates and PSTHs of 3 neurons by condition (the conditions of
    the trials in B, same colours; true rates dotted for synthetic data, else the NLB target PSTH).

    Reads `curve` (ensemble_curve.csv), `ensemble` (ensemble.json), `rates` (the ensemble's val rates),
    `tensors` (val tensors) and, for synthetic data, `truth` (truth.h5). `dataset` names the title.
    """
    from stndt.evaluate.metrics import load_rates, load_targets

    plt = pyplot()
    tensors, layout, bw, key = tensors_info(tensors)
    targets = load_targets(tensors)[key]
    rates_path = Path(rates)
    rates = load_rates(rates_path)
    if key not in rates:
        raise KeyError(f"{rates_path}: no group '{key}' (found {sorted(rates)})")
    rates = rates[key]
    truth = load_rates(truth, "val")[key] if truth is not None else None
    n_eval = rates["eval_rates_heldout"].shape[0]
    groups = condition_groups(targets, n_eval)
    conditioned = sum(len(g) > 0 for g in groups) > 1
    # examples spread out in where the hand ends (or, without velocity, in mean predicted rates)
    if _has_velocity(layout, targets):
        feats = _integrate(np.asarray(targets["eval_behavior"], float), bw)[:, -1, :]
    else:
        feats = np.nan_to_num(
            np.concatenate([rates["eval_rates_heldin"], rates["eval_rates_heldout"]], axis=-1).mean(axis=1)
        )
    n_cond = sum(len(g) > 0 for g in groups)
    examples = _examples(groups, min(n_examples, n_cond if conditioned else n_eval), feats)  # 1 per condition

    fig = plt.figure(figsize=(14, 10.5), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[1.0, 1.05], hspace=0.05)
    ax_a, ax_b = top.subplots(1, 2, gridspec_kw={"width_ratios": [1.0, 1.1]})
    _panel_curve(ax_a, Path(curve), Path(ensemble))
    _panel_trajectories(ax_b, rates, targets, examples, layout, bw, truth is not None, conditioned)
    _panel_rates(bottom, rates, targets, groups, examples, truth, layout, bw, conditioned)
    prefix = f"{dataset}: " if dataset else ""
    fig.suptitle(f"{prefix}STNDT ensemble ({layout} layout, {bw} ms bins)", fontsize=13)
    style.save(fig, out)
    return fig
