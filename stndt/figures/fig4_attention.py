"""Fig. 4 of the STNDT paper: spatial attention matrices of the best STNDT member (first and last layer)
for example val trials from different conditions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from stndt.figures import style
from stndt.figures.common import PathLike, condition_groups, example_trials, pyplot, tensors_info

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def attention_panels(
    ensemble: PathLike, tensors: PathLike, checkpoints: Mapping[str, PathLike], n_trials: int = 4
) -> tuple[str, list[int], list[int], np.ndarray]:
    """What Fig. 4 shows: (best member id, val eval trials, layers, spatial attention (layers, trials, N, N)
    of that member on those trials, head-averaged). The best member is the first of `ensemble`'s ranking;
    `checkpoints` ({member id: best.pt}) must hold it. Trials: one per condition (the first of each)."""
    from stndt.analysis.attention import spatial_attention
    from stndt.analysis.neuron_dropping import member_ranking
    from stndt.evaluate.metrics import load_targets

    tensors, _, _, key = tensors_info(tensors)
    best = member_ranking(ensemble)[0][0]
    if best not in checkpoints:
        raise ValueError(
            f"{ensemble}: the best member is {best}, but no checkpoint was given for it "
            f"(given: {', '.join(sorted(checkpoints)) or 'none'})"
        )
    targets = load_targets(tensors)[key]
    n_eval = int(np.asarray(targets["eval_spikes_heldout"]).shape[0])
    trials = sorted(example_trials(condition_groups(targets, n_eval), min(n_trials, n_eval)))
    attn = spatial_attention(checkpoints[best], tensors, trials)  # (layers, trials, N, N)
    layers = [0, attn.shape[0] - 1] if attn.shape[0] > 1 else [0]
    return best, trials, layers, attn


def fig4_attention(
    ensemble: PathLike,
    tensors: PathLike,
    checkpoints: Mapping[str, PathLike],
    out: PathLike,
    dataset: str = "",
    n_trials: int = 4,
) -> Figure:
    """Fig. 4: spatial attention matrices of layer 1 and of the last layer for `n_trials` val trials
    (from different conditions) of the best STNDT member (first of `ensemble`'s ranking, its best.pt
    from `checkpoints`), on the val tensors `tensors`. `dataset` names the title."""
    from matplotlib.colors import PowerNorm

    plt = pyplot()
    best, trials, layers, attn = attention_panels(ensemble, tensors, checkpoints, n_trials)
    n_heldin = int(_h5_shape(tensors, "eval_spikes_heldin")[-1])
    shown = attn[layers]
    # square-root colour scale up to the largest weight shown: sparse large weights and the faint
    # background are both visible, nothing saturates
    norm = PowerNorm(gamma=0.5, vmin=0.0, vmax=float(shown.max()))
    n = attn.shape[-1]
    fig, axes = plt.subplots(
        len(layers),
        len(trials),
        figsize=(3.3 * len(trials) + 1.2, 3.4 * len(layers)),
        squeeze=False,
        layout="constrained",
    )
    im = None
    for r, layer in enumerate(layers):
        for c, tr in enumerate(trials):
            ax = axes[r, c]
            im = ax.imshow(
                attn[layer, c],
                cmap="viridis",
                norm=norm,
                interpolation="nearest",
                extent=(-0.5, n - 0.5, n - 0.5, -0.5),
            )
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
    prefix = f"{dataset}: " if dataset else ""
    fig.suptitle(
        f"{prefix}STNDT spatial attention, member {best} (neurons 0-{n_heldin - 1} held-in, "
        f"{n_heldin}-{n - 1} held-out; dashed line = boundary)",
        fontsize=11,
    )
    style.save(fig, out)
    return fig


def _h5_shape(path: PathLike, name: str) -> tuple[int, ...]:
    import h5py

    with h5py.File(path, "r") as f:
        if name not in f:
            raise KeyError(f"{path}: no dataset '{name}'")
        return tuple(f[name].shape)
