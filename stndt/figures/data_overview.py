"""Data overview: spike rasters and PSTHs of a few neurons of the val trials.

For synthetic datasets the true firing rates are overlaid, which is the quickest visual check that the
binning, trial alignment and conditions of the tensors line up with the generator.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter1d

from stndt.data.tensors import read_layout, window_start_ms
from stndt.figures import style
from stndt.io import load_h5


def _conditions(targets: dict, n_trials: int, max_conditions: int) -> list[np.ndarray]:
    """Trial indices per condition (nlb_tools' eval_cond_idx), or all trials as one group."""
    cond = targets.get("eval_cond_idx")
    if cond is None:
        return [np.arange(n_trials)]
    groups = [np.asarray(c).ravel() for c in (cond if isinstance(cond, (list, np.ndarray)) else cond.values())]
    groups = [g[g >= 0].astype(int) for g in groups if len(g)]
    return groups[:max_conditions]


def plot_data_overview(
    tensors_path: Path,
    truth_path: Path | None,
    out: Path,
    n_neurons: int = 3,
    max_conditions: int = 4,
    trials_per_condition: int = 6,
) -> None:
    """Write `out` (PNG) and its PDF: raster (left) and per-condition PSTH (right) for `n_neurons` neurons."""
    import matplotlib.pyplot as plt

    style.setup()
    layout, bw = read_layout(tensors_path)
    data = load_h5(tensors_path)
    key = next(iter(data["targets"]))
    targets = data["targets"][key]
    spikes = np.concatenate([data["eval_spikes_heldin"], data["eval_spikes_heldout"]], axis=-1)
    n_heldin = data["eval_spikes_heldin"].shape[-1]
    truth = None
    if truth_path is not None:
        t = load_h5(truth_path)["val"][key]
        truth = np.concatenate([t["eval_rates_heldin"], t["eval_rates_heldout"]], axis=-1)
    groups = _conditions(targets, len(spikes), max_conditions)
    # the most active neurons make the clearest rasters; take two held-in and one held-out
    rate = np.nanmean(spikes, axis=(0, 1))
    heldin = np.argsort(rate[:n_heldin])[::-1][: n_neurons - 1]
    heldout = n_heldin + np.argsort(rate[n_heldin:])[::-1][:1]
    neurons = list(heldin) + list(heldout)
    t_ms = window_start_ms(layout) + bw * (np.arange(spikes.shape[1]) + 0.5)
    colors = plt.get_cmap("tab10").colors

    fig, axes = plt.subplots(len(neurons), 2, figsize=(10, 2.6 * len(neurons)), sharex=True)
    axes = np.atleast_2d(axes)
    for row, n in enumerate(neurons):
        kind = "held-in" if n < n_heldin else "held-out"
        ax_r, ax_p = axes[row]
        y = 0
        for gi, g in enumerate(groups):
            for tr in g[:trials_per_condition]:
                hits = np.nonzero(np.nan_to_num(spikes[tr, :, n]) > 0)[0]
                ax_r.vlines(t_ms[hits], y, y + 0.8, color=colors[gi % 10], lw=1.0)
                y += 1
        ax_r.set_ylabel(f"neuron {n} ({kind})\ntrial")
        ax_r.set_ylim(0, max(y, 1))
        for gi, g in enumerate(groups):
            c = colors[gi % 10]
            hz = 1000.0 / bw
            emp = gaussian_filter1d(np.nanmean(spikes[g, :, n], axis=0) * hz, sigma=max(1.0, 20.0 / bw))
            ax_p.plot(t_ms, emp, color=c, lw=1.5, label=f"cond {gi + 1} (smoothed spikes)" if row == 0 else None)
            if truth is not None:
                ax_p.plot(
                    t_ms,
                    np.nanmean(truth[g, :, n], axis=0) * hz,
                    color=c,
                    lw=1.5,
                    ls="--",
                    label=f"cond {gi + 1} (true rate)" if row == 0 else None,
                )
        ax_p.set_ylabel("rate (spikes/s)")
    for ax in axes[-1]:
        ax.set_xlabel("time from alignment (ms)")
    axes[0, 0].set_title("spike raster (val trials, colour = condition)")
    axes[0, 1].set_title("PSTH: smoothed spikes" + (" (solid) vs true rate (dashed)" if truth is not None else ""))
    axes[0, 1].legend(fontsize=7, ncol=2, frameon=False, loc="upper left")
    fig.suptitle(f"{Path(tensors_path).parent.parent.name}: {layout} layout, {bw} ms bins", y=1.0)
    fig.tight_layout()
    style.save(fig, out, pdf=False)
