"""The STNDT paper's data figures (Le & Shlizerman, NeurIPS 2022, Figs. 2-5) and training curves.

Each function reads result files of one dataset folder (or one table) and writes a PNG and a PDF beside
it through stndt.figures.style.save (atomic). Metric names come from stndt.datasets; rates are stored in
spikes per bin and shown in spikes/s; time is ms from the layout's alignment event.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from stndt.datasets import CO_BPS, FP_BPS, METRICS, PSTH_R2, RATE_R2, TP_CORR, VEL_R2, nlb_dataset, nlb_key
from stndt.figures import style
from stndt.data.tensors import read_layout, window_start_ms

PathLike = str | os.PathLike

#: Axis labels with units, by metric name.
METRIC_LABELS: dict[str, str] = {
    CO_BPS: "co-bps (bits/spike)",
    FP_BPS: "fp-bps (bits/spike)",
    VEL_R2: "vel R$^2$",
    PSTH_R2: "psth R$^2$",
    TP_CORR: "tp corr (Pearson r)",
    RATE_R2: "rate R$^2$ (vs true rates)",
}
#: Display names of the member sets (the STNDT members and the variants' folders under variants/).
SET_LABELS: dict[str, str] = {"stndt": "STNDT", "ndt": "NDT", "no_contrast": "STNDT w/o contrastive"}
SET_COLORS: dict[str, str] = {"stndt": "C0", "ndt": "C1", "no_contrast": "C2"}
#: x-axis labels of Fig. 2A by loss column of members.csv.
LOSS_LABELS: dict[str, str] = {
    "val nll": "val Poisson NLL, held-out neurons\n(nats per neuron-bin)",
    "masked nll": "masked-modeling loss\n(train NLL, kept epoch)",
}


def metric_label(metric: str) -> str:
    return METRIC_LABELS.get(metric, metric)


def _plt():
    import matplotlib.pyplot as plt

    style.setup()
    return plt


def _metrics_in(table: pd.DataFrame) -> list[str]:
    """The NLB metrics a table has values for, in the benchmark's order."""
    return [m for m in METRICS if m in table.columns and table[m].notna().any()]


def _pearson(x: np.ndarray, y: np.ndarray) -> float | None:
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3 or np.std(x[ok]) == 0 or np.std(y[ok]) == 0:
        return None
    return float(np.corrcoef(x[ok], y[ok])[0, 1])


def _annotate_r(ax, x, y) -> None:
    """Pearson r of all points shown, as the panel title (never on top of the data)."""
    r = _pearson(np.asarray(x, float), np.asarray(y, float))
    ax.set_title("Pearson r = n/a (< 3 points)" if r is None else f"Pearson r = {r:.2f}", fontsize=9)


def _read_csv(path: PathLike, what: str) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: {what} does not exist")
    return pd.read_csv(path)



# ====================================================================================== Fig. 2
def fig2_member_metrics(members_csv: PathLike, out: PathLike,
                        variants: Mapping[str, PathLike] | None = None, loss_column: str = "val nll") -> None:
    """Fig. 2: (A) each metric of the layout against the validation loss and (B) the metrics against
    each other, one point per member (Pearson r of all points in each panel title).

    `variants` optionally adds other member sets ({set name: members.csv}, e.g. ndt, no_contrast) in
    their own colours. `loss_column`: the members.csv column on the x-axis of A. The paper plots the
    masked-modeling loss (`masked nll`); `val nll` (Poisson NLL of the held-out neurons on the val
    trials) is an affine function of val co-bps (same trials, same null model), so r = -1 there.
    """
    from matplotlib.ticker import MaxNLocator

    plt = _plt()
    sets = {"stndt": _read_csv(members_csv, "members table")}
    for name, path in (variants or {}).items():
        sets[name] = _read_csv(path, f"members table of variant {name}")
    first = sets["stndt"]
    metrics = _metrics_in(first)
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
            ax.scatter(t[xcol], t[ycol], s=34, alpha=0.85, color=SET_COLORS.get(name, None),
                       label=f"{SET_LABELS.get(name, name)} ({len(t)})", edgecolor="white", linewidth=0.5)
        _annotate_r(ax, allrows[xcol], allrows[ycol])

    axes_a = sub_a.subplots(1, m, squeeze=False)[0]
    for ax, metric in zip(axes_a, metrics):
        scatter(ax, loss_column, metric)
        ax.set_xlabel(LOSS_LABELS.get(loss_column, loss_column))
        ax.set_ylabel(metric_label(metric))
    what = "the masked-modeling loss" if loss_column == "masked nll" else "the validation loss"
    sub_a.suptitle(f"A   Metrics vs {what} (one point per member, {len(allrows)} in all)",
                   x=0.01, ha="left", fontweight="bold")
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


# ====================================================================================== Fig. 3
def _condition_groups(targets: Mapping, n_trials: int) -> list[np.ndarray]:
    """Eval trial indices per condition (nlb_tools' eval_cond_idx), or every trial as one group."""
    from stndt.evaluate.metrics import normalize_cond_idx

    if "eval_cond_idx" not in targets:
        return [np.arange(n_trials)]
    groups = normalize_cond_idx(targets["eval_cond_idx"], "eval_cond_idx")
    return [np.asarray(g, dtype=int) for g in groups]


def _example_trials(groups: list[np.ndarray], n: int, score: np.ndarray | None = None) -> list[int]:
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


def _dataset_info(ds_dir: Path) -> tuple[Path, str, int, str]:
    tensors = ds_dir / "tensors" / "val.h5"
    if not tensors.exists():
        raise FileNotFoundError(f"{tensors}: val tensors file does not exist")
    layout, bw = read_layout(tensors)
    return tensors, layout, bw, nlb_key(layout, bw)


def _panel_curve(ax, ds_dir: Path) -> None:
    curve = _read_csv(ds_dir / "ensemble_curve.csv", "ensemble curve")
    ens_path = ds_dir / "ensemble.json"
    if not ens_path.exists():
        raise FileNotFoundError(f"{ens_path}: does not exist")
    ens = json.loads(ens_path.read_text())
    if CO_BPS not in curve.columns:
        raise KeyError(f"{ds_dir / 'ensemble_curve.csv'}: no '{CO_BPS}' column")
    ax.plot(curve["n"], curve[CO_BPS], "o-", color="C0", ms=4, lw=1.5, label="ensemble of the top n (val)")
    n = int(ens["n"])
    chosen = curve.loc[curve["n"] == n, CO_BPS]
    if len(chosen):
        ax.plot([n], [chosen.iloc[0]], marker="*", ms=16, color="C3", ls="none", zorder=5,
                label=f"chosen n = {n}")
    single = float(curve.loc[curve["n"] == 1, CO_BPS].iloc[0])
    ax.axhline(single, color="0.4", ls="--", lw=1.2, label=f"best single member ({single:.3f})")
    honest = ens.get("honest", {}).get("metrics", {}).get(CO_BPS)
    if honest is not None:
        ax.axhline(honest, color="C2", ls=":", lw=1.8, label=f"split-half honest estimate ({honest:.3f})")
    if "test" in ens and CO_BPS in ens["test"]:
        # other trials, other scale: reported in the legend, not drawn (it would squash the val curve)
        ax.plot([], [], ls="none", label=f"chosen ensemble on the test split: {ens['test'][CO_BPS]:.3f}")
    ax.set_xlabel("ensemble size n (members, ranked by val co-bps)")
    ax.set_ylabel(metric_label(CO_BPS))
    ax.set_xticks(curve["n"] if len(curve) <= 12 else ax.get_xticks())
    ax.legend(fontsize=8, frameon=False, loc="best")
    ax.set_title("A   co-bps vs ensemble size", loc="left", fontweight="bold")


def _has_velocity(layout: str, targets: Mapping) -> bool:
    return VEL_R2 in nlb_dataset(layout).metrics and "train_behavior" in targets


def _examples(groups: list[np.ndarray], n: int, feats: np.ndarray | None) -> list[tuple[int, int]]:
    """(condition index, trial) of `n` example trials from different conditions, spread out in `feats`,
    sorted by condition. One colour per example, shared by panels B and C."""
    trials = _example_trials(groups, n, feats)
    return sorted((next(i for i, g in enumerate(groups) if t in g), t) for t in trials)


def _panel_trajectories(ax, rates: Mapping, targets: Mapping, examples: list[tuple[int, int]], layout: str,
                        bw: int, synthetic: bool, conditioned: bool) -> None:
    from matplotlib.lines import Line2D

    plt = _plt()
    if not _has_velocity(layout, targets):
        ax.set_axis_off()
        why = (f"{layout}: no hand velocity in this layout\n(behaviour is scored as {TP_CORR})"
               if TP_CORR in nlb_dataset(layout).metrics else "no hand velocity (train_behavior) in the targets")
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
    handles = [Line2D([], [], color="k", ls="-"), Line2D([], [], color="k", ls="--"),
               Line2D([], [], color="k", marker="o", ls="none", ms=3)]
    labels = ["true", "decoded from ensemble rates", "start"]
    if conditioned:
        handles += [Line2D([], [], color=colors[i % 10], lw=2) for i in range(len(examples))]
        labels += [f"trial {tr} (condition {c + 1})" for c, tr in examples]
    ax.legend(handles, labels, fontsize=8, frameon=False, loc="best")
    ax.set_title(f"B   decoded vs true hand trajectories, {len(examples)} val trials (vel R$^2$ = {r2:.3f})",
                 loc="left", fontweight="bold")


def _pick_neurons(pred: np.ndarray, groups, n_heldin: int) -> list[int]:
    """Two held-in and one held-out neuron with the most condition-dependent predicted PSTH."""
    psth = np.stack([pred[g].mean(axis=0) for g in groups if len(g)])  # (cond, T, N)
    modulation = psth.std(axis=(0, 1))
    heldin = list(np.argsort(modulation[:n_heldin])[::-1][:2])
    heldout = list(n_heldin + np.argsort(modulation[n_heldin:])[::-1][:1]) if pred.shape[-1] > n_heldin else []
    return [int(i) for i in heldin + heldout]


def _panel_rates(fig_c, rates: Mapping, targets: Mapping, groups, examples: list[tuple[int, int]],
                 truth: Mapping | None, layout: str, bw: int, conditioned: bool,
                 trials_per_condition: int = 2) -> None:
    """Rows: single-trial rates, PSTHs; columns: 3 neurons. With conditions, colour = condition (the
    conditions of the example trials); without, the example trials themselves and the all-trial mean."""
    from matplotlib.lines import Line2D

    plt = _plt()
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
    what = (f"{trials_per_condition} trials per condition) and PSTHs" if conditioned
            else "example trials; no conditions in this layout) and mean rates")
    fig_c.suptitle(f"C   predicted single-trial rates ({what} of 3 example neurons (val trials)",
                   x=0.01, ha="left", fontweight="bold")


def fig3_ensemble(ds_dir: PathLike, out: PathLike, n_examples: int = 4) -> None:
    """Fig. 3: (A) co-bps against ensemble size, (B) decoded vs true hand trajectories of `n_examples`
    val trials, (C) predicted single-trial rates and PSTHs of 3 neurons by condition (the conditions of
    the trials in B, same colours; true rates dotted for synthetic data, else the NLB target PSTH).

    Reads ensemble_curve.csv, ensemble.json, ensemble/rates_val.h5, tensors/val.h5 and truth.h5 (if any).
    """
    from stndt.evaluate.metrics import load_rates, load_targets

    plt = _plt()
    ds_dir = Path(ds_dir)
    tensors, layout, bw, key = _dataset_info(ds_dir)
    targets = load_targets(tensors)[key]
    rates_path = ds_dir / "ensemble" / "rates_val.h5"
    rates = load_rates(rates_path)
    if key not in rates:
        raise KeyError(f"{rates_path}: no group '{key}' (found {sorted(rates)})")
    rates = rates[key]
    truth_path = ds_dir / "truth.h5"
    truth = load_rates(truth_path, "val")[key] if truth_path.exists() else None
    n_eval = rates["eval_rates_heldout"].shape[0]
    groups = _condition_groups(targets, n_eval)
    conditioned = sum(len(g) > 0 for g in groups) > 1
    # examples spread out in where the hand ends (or, without velocity, in mean predicted rates)
    if _has_velocity(layout, targets):
        feats = _integrate(np.asarray(targets["eval_behavior"], float), bw)[:, -1, :]
    else:
        feats = np.nan_to_num(np.concatenate([rates["eval_rates_heldin"], rates["eval_rates_heldout"]],
                                             axis=-1).mean(axis=1))
    n_cond = sum(len(g) > 0 for g in groups)
    examples = _examples(groups, min(n_examples, n_cond if conditioned else n_eval), feats)  # 1 per condition

    fig = plt.figure(figsize=(14, 10.5), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[1.0, 1.05], hspace=0.05)
    ax_a, ax_b = top.subplots(1, 2, gridspec_kw={"width_ratios": [1.0, 1.1]})
    _panel_curve(ax_a, ds_dir)
    _panel_trajectories(ax_b, rates, targets, examples, layout, bw, truth is not None, conditioned)
    _panel_rates(bottom, rates, targets, groups, examples, truth, layout, bw, conditioned)
    fig.suptitle(f"{ds_dir.name}: STNDT ensemble ({layout} layout, {bw} ms bins)", fontsize=13)
    style.save(fig, out)


# ====================================================================================== Fig. 4
def fig4_attention(ds_dir: PathLike, out: PathLike, n_trials: int = 4) -> None:
    """Fig. 4: spatial attention matrices of layer 1 and of the last layer for `n_trials` val trials
    (from different conditions) of the best STNDT member (first of ensemble.json's ranking)."""
    from matplotlib.colors import PowerNorm

    from stndt.analysis.attention import spatial_attention
    from stndt.analysis.neuron_dropping import member_ranking
    from stndt.evaluate.metrics import load_targets

    plt = _plt()
    ds_dir = Path(ds_dir)
    tensors, layout, bw, key = _dataset_info(ds_dir)
    best = member_ranking(ds_dir)[0][0]
    member_dir = ds_dir / "members" / best
    targets = load_targets(tensors)[key]
    n_eval = int(np.asarray(targets["eval_spikes_heldout"]).shape[0])
    trials = sorted(_example_trials(_condition_groups(targets, n_eval), min(n_trials, n_eval)))
    attn = spatial_attention(member_dir, tensors, trials)  # (layers, trials, N, N)
    n_heldin = int(_h5_shape(tensors, "eval_spikes_heldin")[-1])
    layers = [0, attn.shape[0] - 1] if attn.shape[0] > 1 else [0]
    shown = attn[layers]
    # square-root colour scale up to the largest weight shown: sparse large weights and the faint
    # background are both visible, nothing saturates
    norm = PowerNorm(gamma=0.5, vmin=0.0, vmax=float(shown.max()))
    n = attn.shape[-1]
    fig, axes = plt.subplots(len(layers), len(trials), figsize=(3.3 * len(trials) + 1.2, 3.4 * len(layers)),
                             squeeze=False, layout="constrained")
    im = None
    for r, layer in enumerate(layers):
        for c, tr in enumerate(trials):
            ax = axes[r, c]
            im = ax.imshow(attn[layer, c], cmap="viridis", norm=norm, interpolation="nearest",
                           extent=(-0.5, n - 0.5, n - 0.5, -0.5))
            for pos in (n_heldin - 0.5,):
                ax.axvline(pos, color="w", lw=0.8, ls="--")
                ax.axhline(pos, color="w", lw=0.8, ls="--")
            if r == 0:
                ax.set_title(f"val trial {tr}", fontsize=10)
            if r == len(layers) - 1:
                ax.set_xlabel("key neuron (attended)")
            if c == 0:
                ax.set_ylabel(f"layer {layer + 1}\nquery neuron")
    cb = fig.colorbar(im, ax=axes, shrink=0.8, pad=0.01)
    cb.set_label("spatial attention weight (rows sum to 1; square-root scale)")
    fig.suptitle(f"{ds_dir.name}: STNDT spatial attention, member {best} (neurons 0-{n_heldin - 1} held-in, "
                 f"{n_heldin}-{n - 1} held-out; dashed line = boundary)", fontsize=11)
    style.save(fig, out)


def _h5_shape(path: PathLike, name: str) -> tuple[int, ...]:
    import h5py

    with h5py.File(path, "r") as f:
        if name not in f:
            raise KeyError(f"{path}: no dataset '{name}'")
        return tuple(f[name].shape)


# ====================================================================================== Fig. 5
def fig5_neuron_dropping(csv: PathLike, out: PathLike) -> None:
    """Fig. 5: each metric against the number of dropped input neurons, for STNDT and NDT with the
    attention order and random orders; mean over members (and seeds), shaded band = 2 s.e.m."""
    from stndt.analysis.neuron_dropping import MODEL_NDT, MODEL_STNDT, ORDER_ATTENTION, ORDER_RANDOM

    from matplotlib.ticker import MaxNLocator

    plt = _plt()
    table = _read_csv(csv, "neuron-dropping table")
    for col in ("model", "order", "k"):
        if col not in table.columns:
            raise KeyError(f"{csv}: no '{col}' column")
    metrics = _metrics_in(table)
    if not metrics:
        raise ValueError(f"{csv}: no metric columns with values")
    curves = [(MODEL_STNDT, ORDER_ATTENTION, "C0", "-", "o"), (MODEL_STNDT, ORDER_RANDOM, "C0", "--", "s"),
              (MODEL_NDT, ORDER_ATTENTION, "C1", "-", "o"), (MODEL_NDT, ORDER_RANDOM, "C1", "--", "s")]
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.9 * len(metrics), 4.3), squeeze=False,
                             layout="constrained")
    for ax, metric in zip(axes[0], metrics):
        for model, order, color, ls, marker in curves:
            sel = table[(table["model"] == model) & (table["order"] == order)]
            if sel.empty:
                continue
            g = sel.groupby("k")[metric]
            mean, sem, count = g.mean(), g.sem(ddof=1).fillna(0.0), g.count()
            label = f"{model}, {'attention order' if order == ORDER_ATTENTION else 'random order'}"
            ax.plot(mean.index, mean.values, ls=ls, marker=marker, ms=3.5, color=color, lw=1.6,
                    label=f"{label} (n={int(count.max())})")
            ax.fill_between(mean.index, mean - 2 * sem, mean + 2 * sem, color=color,
                            alpha=0.18 if order == ORDER_ATTENTION else 0.10, lw=0)
        ax.set_xlabel("dropped held-in input neurons")
        ax.set_ylabel(metric_label(metric))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=len(handles), frameon=False, fontsize=9)
    fig.suptitle("Neuron dropping: inputs zeroed in descending layer-1 attention vs random order "
                 "(mean, band = 2 s.e.m. over members and random seeds)", fontsize=11)
    style.save(fig, out)


# ====================================================================================== training curves
def member_logs(ds_dir: PathLike) -> dict[str, dict[str, pd.DataFrame]]:
    """{set name: {member: train_log}} for the STNDT members and every variant under variants/."""
    ds_dir = Path(ds_dir)
    roots = {"stndt": ds_dir}
    vdir = ds_dir / "variants"
    if vdir.exists():
        roots.update({p.name: p for p in sorted(vdir.iterdir()) if (p / "members").is_dir()})
    out: dict[str, dict[str, pd.DataFrame]] = {}
    for name, root in roots.items():
        logs = {p.parent.name: pd.read_csv(p) for p in sorted((root / "members").glob("*/train_log.csv"))}
        if logs:
            out[name] = logs
    return out


def fig_training_curves(ds_dir: PathLike, out: PathLike) -> None:
    """Training loss and val co-bps against epoch for every member of every member set (colour = set,
    one thin line per member, dot = the member's best epoch)."""
    plt = _plt()
    ds_dir = Path(ds_dir)
    sets = member_logs(ds_dir)
    if not sets:
        raise FileNotFoundError(f"{ds_dir}: no members/*/train_log.csv (STNDT or variants)")
    fig, (ax_l, ax_v) = plt.subplots(1, 2, figsize=(12, 4.3), layout="constrained")
    val_col = f"val {CO_BPS}"
    later: list[float] = []
    for name, logs in sets.items():
        color = SET_COLORS.get(name, None)
        label = SET_LABELS.get(name, name)
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
    fig.suptitle(f"{ds_dir.name}: training curves of every member", fontsize=12)
    style.save(fig, out)


__all__ = [
    "METRIC_LABELS", "decode_velocity", "fig2_member_metrics", "fig3_ensemble", "fig4_attention",
    "fig5_neuron_dropping", "fig_training_curves", "member_logs", "metric_label",
]
