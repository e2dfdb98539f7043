"""STNDT training objective: masked Poisson NLL + lambda * contrastive InfoNCE on embedder outputs.

Masked modelling (reference Masker + Poisson loss): a BERT-style masked copy of the held-in trial
bins is the input (held-out columns and forward bins zero); the loss is the mean Poisson NLL with
log-rate input, exp(r) - y r, over ONE pool of entries: masked held-in entries, every held-out entry
of the trial bins and every entry of the forward bins.

Span widths > 1 act as cfg.mask_span_mode says (stndt.model.masking): "reference" only divides
the ratio by the width (the published MASK_MODE / CONTRAST_MASK_MODE "full"), "expand" also grows the
mask into spans. The contrast views use the same mode, as both were "full" in the published configs.

Contrastive (published configuration: contrast layer "embedder", no projector): two more views with
their own, lighter masks are passed through the linear embedders only; their scaled outputs (before
position encoding) are flattened per trial and compared with NT-Xent (temperature 0.07): positives are
the two views of one trial, negatives the other 2B - 2 vectors of the batch. One term for the temporal
embedding, one for the spatial embedding, each times lambda. The reference also pushes both views
through the whole encoder and decoder and discards the result; that changes no loss value or gradient,
so we skip it.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .config import ObjectiveConfig
from .masking import draw_span_width, mask_heldin, span_expand_prob


def poisson_nll(log_rates: Tensor, counts: Tensor) -> Tensor:
    """Element-wise Poisson NLL with log-rate input, without the count-only log(y!) term."""
    return torch.exp(log_rates) - counts * log_rates


def info_nce(view1: Tensor, view2: Tensor, temperature: float) -> Tensor:
    """NT-Xent / InfoNCE between two (B, D) batches of views; mean over all 2B anchors.

    Cosine similarities / temperature; for anchor i the positive is the other view of the same trial
    and the negatives are every other vector except i itself (SimCLR's formulation, as the reference).
    """
    return nt_xent(torch.cat([view1, view2]), temperature)


def nt_xent(features: Tensor, temperature: float) -> Tensor:
    """info_nce on stacked views: rows i and i + B of the (2B, D) `features` are a positive pair.

    Cosines come from the Gram matrix (G_ij / sqrt(G_ii G_jj)) rather than from normalised copies of
    the features: with D = T x N = 32,760 on MC_Maze, normalising costs several full passes over
    (2B, D) forward and backward, while the Gram matrix is one small matmul. Computed in float32
    even under autocast, so the term does not depend on the compute dtype.
    """
    two_b = features.shape[0]
    with torch.autocast(features.device.type, enabled=False):
        feats = features.float()
        gram = feats @ feats.T
        norm = gram.diagonal().clamp_min(1e-24).sqrt()  # = max(||f||, 1e-12), as F.normalize
        logits = gram / (norm[:, None] * norm[None, :] * temperature)
        self_pair = torch.eye(two_b, dtype=torch.bool, device=logits.device)
        logits = logits.masked_fill(self_pair, float("-inf"))
        target = torch.arange(two_b, device=logits.device).roll(two_b // 2)
        return F.cross_entropy(logits, target)


def _pad_visible(heldin: Tensor, t_all: int, n_all: int) -> Tensor:
    """Held-in trial bins placed in a zero (B, t_all, n_all) input."""
    return F.pad(heldin, (0, n_all - heldin.shape[2], 0, t_all - heldin.shape[1]))


def masked_nll(log_rates: Tensor, counts: Tensor, heldin_mask: Tensor, n_heldin: int, t_bins: int) -> Tensor:
    """Mean Poisson NLL over masked held-in entries + all held-out trial entries + all forward bins."""
    nll = poisson_nll(log_rates.float(), counts)
    b, t_all, n_all = counts.shape
    total = (nll[:, :t_bins, :n_heldin] * heldin_mask).sum()
    total = total + nll[:, :t_bins, n_heldin:].sum() + nll[:, t_bins:].sum()
    n_fixed = b * t_bins * (n_all - n_heldin) + b * (t_all - t_bins) * n_all
    count = heldin_mask.sum() + n_fixed
    return total / count.clamp(min=1)


def check_batch(batch: Tensor, n_heldin: int, t_bins: int) -> None:
    """Raise ValueError unless `batch` is (trials, bins, neurons) holding t_bins x n_heldin held-in counts."""
    if batch.dim() != 3:
        raise ValueError(f"batch: expected (trials, bins, neurons), got shape {tuple(batch.shape)}")
    if not (0 < t_bins <= batch.shape[1] and 0 < n_heldin <= batch.shape[2]):
        raise ValueError(
            f"batch: shape {tuple(batch.shape)} cannot hold t_bins={t_bins} trial bins and "
            f"n_heldin={n_heldin} held-in neurons"
        )


class StepInputs(NamedTuple):
    """What one training step feeds the model, drawn by draw_inputs."""

    masked: Tensor  # (B, T_all, N_all): masked held-in trial bins, zero elsewhere (the model input)
    mask: Tensor  # (B, t_bins, n_heldin): the held-in entries masked_nll scores
    views: Tensor | None  # (2B, T_all, N_all): the two contrast views (rows i, i + B: trial i), or None


def draw_inputs(
    counts: Tensor, cfg: ObjectiveConfig, epoch: int, generator: torch.Generator, n_heldin: int, t_bins: int
) -> StepInputs:
    """The step's random inputs for float counts (B, T_all, N_all), all drawn from `generator` in this
    order: the masked-modelling input's span width and mask, then - while the contrastive term is on
    (cfg.contrast_active(epoch)) - each contrast view's span width and mask."""
    _, t_all, n_all = counts.shape
    heldin = counts[:, :t_bins, :n_heldin]
    expand = span_expand_prob(epoch, cfg.mask_span_ramp_start, cfg.mask_span_ramp_end)
    width = draw_span_width(cfg.mask_max_span, expand, generator)
    masked, mask = mask_heldin(
        heldin, cfg.mask_ratio, cfg.mask_token_ratio, cfg.mask_random_ratio, width, generator, cfg.mask_span_mode
    )
    views = None
    if cfg.contrast_active(epoch):
        parts = []
        for _ in range(2):
            w = draw_span_width(cfg.contrast_max_span, expand, generator)
            v, _ = mask_heldin(
                heldin,
                cfg.contrast_mask_ratio,
                cfg.contrast_token_ratio,
                cfg.contrast_random_ratio,
                w,
                generator,
                cfg.mask_span_mode,
            )
            parts.append(_pad_visible(v, t_all, n_all))
        views = torch.cat(parts)
    return StepInputs(_pad_visible(masked, t_all, n_all), mask, views)


def score_outputs(
    log_rates: Tensor,
    counts: Tensor,
    heldin_mask: Tensor,
    embedded: tuple[Tensor, Tensor | None] | None,
    cfg: ObjectiveConfig,
    n_heldin: int,
    t_bins: int,
) -> dict[str, Tensor]:
    """The step's loss from the model's outputs: log_rates of the masked input and `embedded`, the
    embedders' outputs (temporal, spatial or None) of the contrast views, or None while the
    contrastive term is off. Scalars {'loss', 'masked_nll', 'contrast'}, 'contrast' times lambda."""
    nll = masked_nll(log_rates, counts, heldin_mask, n_heldin, t_bins)
    contrast = torch.zeros((), device=nll.device)
    if embedded is not None:
        temporal, spatial = embedded
        contrast = nt_xent(temporal.flatten(1), cfg.temperature)
        if spatial is not None:
            contrast = contrast + nt_xent(spatial.flatten(1), cfg.temperature)
        contrast = cfg.contrast_lambda * contrast
    return {"loss": nll + contrast, "masked_nll": nll, "contrast": contrast}


def training_loss(
    model, batch: Tensor, cfg: ObjectiveConfig, epoch: int, generator: torch.Generator, n_heldin: int, t_bins: int
) -> dict[str, Tensor]:
    """One step's loss. batch: full target counts (B, T_all, N_all), held-in first on both axes.

    Draws the masked input and contrast views (draw_inputs; held-out and forward inputs zero), runs
    the model and its embedders, and scores them (score_outputs): scalars {'loss', 'masked_nll',
    'contrast'}; 'contrast' is already multiplied by lambda and is 0 while the contrastive term is
    off (cfg.contrastive False or epoch < cfg.contrast_start_epoch). Packed training
    (stndt.train.pack.loss) runs the same two halves around one batched forward of K members.
    """
    check_batch(batch, n_heldin, t_bins)
    counts = batch.float()
    inputs = draw_inputs(counts, cfg, epoch, generator, n_heldin, t_bins)
    log_rates = model(inputs.masked)
    embedded = None if inputs.views is None else model.embed(inputs.views)  # rows i, i + B: trial i
    return score_outputs(log_rates, counts, inputs.mask, embedded, cfg, n_heldin, t_bins)


@torch.no_grad()
def eval_nll(model, batch: Tensor, n_heldin: int, t_bins: int) -> dict[str, Tensor]:
    """Unmasked evaluation: mean Poisson NLL on held-in trial bins, held-out trial bins, forward bins.

    The model sees only held-in trial bins. Set model.eval() first to switch dropout off.
    Returns {'heldin_nll', 'heldout_nll', 'forward_nll', 'log_rates'} (NaN for an empty region).
    """
    check_batch(batch, n_heldin, t_bins)
    counts = batch.float()
    log_rates = model(_pad_visible(counts[:, :t_bins, :n_heldin], *counts.shape[1:])).float()
    nll = poisson_nll(log_rates, counts)
    return {
        "heldin_nll": nll[:, :t_bins, :n_heldin].mean(),
        "heldout_nll": nll[:, :t_bins, n_heldin:].mean(),
        "forward_nll": nll[:, t_bins:].mean(),
        "log_rates": log_rates,
    }
