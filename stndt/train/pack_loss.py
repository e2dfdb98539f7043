"""One training step's loss for a whole pack: stndt.model.objective.training_loss per member.

training_loss masks a batch, runs the model and scores it in one call, so it cannot run K members'
models as one batched forward. This module makes each member's draws with the masking functions
training_loss uses, in its order and from the member's own generator, runs the pack once (and once
more through the embedders for the members whose contrastive term is on), and scores each member with
objective.masked_nll / nt_xent on its own slice. If training_loss were split into "draw the step's
inputs" and "score the outputs", both paths could share those two halves; tests/test_pack.py pins
the equality meanwhile.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from stndt.model.config import ObjectiveConfig
from stndt.model.masking import draw_span_width, mask_heldin, span_expand_prob
from stndt.model.objective import _check_batch, _pad_visible, masked_nll, nt_xent
from stndt.train.pack_model import PackedSTNDT


def member_inputs(heldin: Tensor, cfg: ObjectiveConfig, epoch: int, generator: torch.Generator, t_all: int,
                  n_all: int) -> tuple[Tensor, Tensor, Tensor | None]:
    """One member's masked input (B, t_all, n_all), its held-in mask, and its two contrast views
    stacked (2B, t_all, n_all) or None: training_loss's draws, in training_loss's order."""
    expand = span_expand_prob(epoch, cfg.mask_span_ramp_start, cfg.mask_span_ramp_end)
    width = draw_span_width(cfg.mask_max_span, expand, generator)
    masked, mask = mask_heldin(heldin, cfg.mask_ratio, cfg.mask_token_ratio, cfg.mask_random_ratio,
                               width, generator, cfg.mask_span_mode)
    views = None
    if cfg.contrast_active(epoch):
        parts = []
        for _ in range(2):
            w = draw_span_width(cfg.contrast_max_span, expand, generator)
            v, _ = mask_heldin(heldin, cfg.contrast_mask_ratio, cfg.contrast_token_ratio,
                               cfg.contrast_random_ratio, w, generator, cfg.mask_span_mode)
            parts.append(_pad_visible(v, t_all, n_all))
        views = torch.cat(parts)
    return _pad_visible(masked, t_all, n_all), mask, views


def pack_loss(pack: PackedSTNDT, batch: Tensor, cfgs: Sequence[ObjectiveConfig], epoch: int,
              generators: Sequence[torch.Generator], n_heldin: int, t_bins: int) -> dict[str, Tensor]:
    """training_loss of every member: batch (K, B, T_all, N_all) holds member k's batch at k.

    Returns (K,) tensors 'loss', 'masked_nll', 'contrast' (lambda already applied; 0 where the
    member's contrastive term is off). Backpropagate loss.sum(): each member gets its own gradient.
    """
    pack.clear_casts()  # one autocast region per step, as train_member's
    counts = batch.float()
    k_, b, t_all, n_all = counts.shape
    inputs, masks, views = [], [], []
    for k in range(k_):
        _check_batch(batch[k], n_heldin, t_bins)
        x, mask, v = member_inputs(counts[k, :, :t_bins, :n_heldin], cfgs[k], epoch, generators[k], t_all, n_all)
        inputs.append(x)
        masks.append(mask)
        views.append(v)
    log_rates = pack(torch.stack(inputs)).unbind(0)  # unbind, not [k]: see PackedSTNDT
    nll = [masked_nll(log_rates[k], counts[k], masks[k], n_heldin, t_bins) for k in range(k_)]
    contrast = [torch.zeros((), device=counts.device) for _ in range(k_)]
    if any(v is not None for v in views):
        # Members without a contrastive term this epoch get zero views whose embeddings are unused.
        filler = counts.new_zeros(2 * b, t_all, n_all)
        temporal, spatial = pack.embed(torch.stack([filler if v is None else v for v in views]))
        temporal = temporal.unbind(0)
        spatial = None if spatial is None else spatial.unbind(0)
        for k, cfg in enumerate(cfgs):
            if views[k] is None:
                continue
            c = nt_xent(temporal[k].flatten(1), cfg.temperature)
            if spatial is not None:
                c = c + nt_xent(spatial[k].flatten(1), cfg.temperature)
            contrast[k] = cfg.contrast_lambda * c
    loss = [n + c for n, c in zip(nll, contrast)]
    pack.clear_casts()
    return {"loss": torch.stack(loss), "masked_nll": torch.stack(nll), "contrast": torch.stack(contrast)}
