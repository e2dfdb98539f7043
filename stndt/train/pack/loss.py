"""One training step's loss for a whole pack: stndt.model.objective.training_loss per member.

training_loss is two halves around the model: draw_inputs (the member's masks and contrast views,
from its own generator) and score_outputs (masked NLL + contrastive term). Here each member's inputs
come from draw_inputs, the pack runs once (and once more through the embedders for the members whose
contrastive term is on), and each member's slice is scored by score_outputs: the very functions the
solo step calls, so both paths compute the same loss by construction (tests/test_pack.py checks the
bitwise equality of whole training runs).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from stndt.model.config import ObjectiveConfig
from stndt.model.objective import check_batch, draw_inputs, score_outputs
from stndt.train.pack.model import PackedSTNDT


def pack_loss(
    pack: PackedSTNDT,
    batch: Tensor,
    cfgs: Sequence[ObjectiveConfig],
    epoch: int,
    generators: Sequence[torch.Generator],
    n_heldin: int,
    t_bins: int,
) -> dict[str, Tensor]:
    """training_loss of every member: batch (K, B, T_all, N_all) holds member k's batch at k.

    Returns (K,) tensors 'loss', 'masked_nll', 'contrast' (lambda already applied; 0 where the
    member's contrastive term is off). Backpropagate loss.sum(): each member gets its own gradient.
    """
    pack.clear_casts()  # one autocast region per step, as train_member's
    counts = batch.float()
    k_, b, t_all, n_all = counts.shape
    inputs = []
    for k in range(k_):
        check_batch(batch[k], n_heldin, t_bins)
        inputs.append(draw_inputs(counts[k], cfgs[k], epoch, generators[k], n_heldin, t_bins))
    log_rates = pack(torch.stack([x.masked for x in inputs])).unbind(0)  # unbind, not [k]: see PackedSTNDT
    embedded: list[tuple[Tensor, Tensor | None] | None] = [None] * k_
    if any(x.views is not None for x in inputs):
        # Members without a contrastive term this epoch get zero views whose embeddings are unused.
        filler = counts.new_zeros(2 * b, t_all, n_all)
        temporal, spatial = pack.embed(torch.stack([filler if x.views is None else x.views for x in inputs]))
        temporal = temporal.unbind(0)
        spatial = [None] * k_ if spatial is None else spatial.unbind(0)
        embedded = [None if x.views is None else (temporal[k], spatial[k]) for k, x in enumerate(inputs)]
    out = [
        score_outputs(log_rates[k], counts[k], inputs[k].mask, embedded[k], cfgs[k], n_heldin, t_bins)
        for k in range(k_)
    ]
    pack.clear_casts()
    return {name: torch.stack([o[name] for o in out]) for name in ("loss", "masked_nll", "contrast")}
