"""BERT-style masking of held-in spike counts (the reference's Masker in "full" mode).

Every random number comes from the torch.Generator passed in, so a run is a pure function of its seed
and can be resumed exactly. Draws are made on the generator's device and moved to the data's device.

Per batch (reference order, trungle93/STNDT src/mask.py): decide whether to use spans (probability
ramps in over epochs) and, if so, the span width w ~ U{1..max_span}; mask each held-in (bin, neuron)
entry with probability ratio / w; then, depending on the span mode (ObjectiveConfig.mask_span_mode):

- "reference": stop there. This is what src/mask.py does in MASK_MODE "full", the mode of every
  published config: its expansion into spans is guarded by `mode != "full"`, so a span width only
  THINS the mask (masked fraction ratio / w; about ratio x E[1/w] once the ramp is done).
- "expand": grow every masked entry into a span of w bins along time (the reference's conv1d
  placement), keeping the masked fraction near `ratio`: what the paper describes and what the
  reference does in its other mask modes.

Of the masked entries a fraction `token_ratio` is set to zero, a fraction `random_ratio` of the rest
to a random count in [0, max count of the batch), and the rest is left intact.

One reference detail is not reproduced here: its Masker caches the per-entry probability tensor and
recomputes it only when the batch shape changes, so the ratio / w in force is the one drawn at the
first batch after a shape change (in practice the first batch of an epoch, and the short last batch),
while the widths drawn for the other batches are discarded. We use each batch's own width: the same
distribution per batch (same E[ratio / w]), less correlated across the batches of one epoch.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from .config import SPAN_MODES


class MaskDraw(NamedTuple):
    """Boolean (B, T, N) maps: masked entries, and the zeroed / randomised subsets of them."""

    mask: Tensor
    zeroed: Tensor
    randomised: Tensor


def span_expand_prob(epoch: int, ramp_start: int, ramp_end: int) -> float:
    """Probability that a batch's mask is expanded into spans: 0 before ramp_start, 1 after ramp_end."""
    return min(max((epoch - ramp_start) / (ramp_end - ramp_start), 0.0), 1.0)


def draw_span_width(max_span: int, expand_prob: float, generator: torch.Generator) -> int:
    """Span width for one batch: 1, or U{1..max_span} with probability expand_prob (reference order)."""
    if max_span <= 1 or expand_prob <= 0.0:
        return 1
    if torch.rand((), generator=generator, device=generator.device).item() >= expand_prob:
        return 1
    return int(torch.randint(1, max_span + 1, (), generator=generator, device=generator.device).item())


def expand_spans(mask: Tensor, width: int) -> Tensor:
    """Grow every masked entry of a (B, T, N) mask into `width` consecutive bins along T.

    Same placement as the reference's conv1d with padding width // 2: an entry at bin s covers
    bins [s + width // 2 - width + 1, s + width // 2], clipped to the trial.
    """
    if width <= 1:
        return mask
    t = mask.shape[1]
    pad = width // 2
    out = torch.zeros_like(mask)
    for d in range(pad - width + 1, pad + 1):  # out[:, u] |= mask[:, u - d]
        if abs(d) >= t:
            continue
        if d >= 0:
            out[:, d:] |= mask[:, : t - d]
        else:
            out[:, : t + d] |= mask[:, -d:]
    return out


def draw_mask(
    shape: tuple[int, ...],
    ratio: float,
    token_ratio: float,
    random_ratio: float,
    width: int,
    generator: torch.Generator,
    span_mode: str = "expand",
) -> MaskDraw:
    """Draw which entries are masked, and of those which are zeroed and which randomised.

    Each entry is masked with probability p = ratio / width. span_mode "expand" then grows masked
    entries into spans of `width` bins (fraction near `ratio`); "reference" does not (fraction p), as
    the published MASK_MODE "full". Of the masked entries a fraction token_ratio is zeroed and
    random_ratio of the rest randomised, like the reference's two Bernoulli draws, but from one
    uniform c per entry: c < token_ratio -> zero, token_ratio <= c < token_ratio + (1 - token_ratio)
    * random_ratio -> random count. Without expansion c is u / p for the same uniform u that decided
    masking (given u < p it is uniform and independent of the mask), which saves a draw; with spans
    c is a fresh uniform.
    """
    if span_mode not in SPAN_MODES:
        raise ValueError(f"span_mode must be one of {SPAN_MODES}, got {span_mode!r}")
    dev = generator.device
    p = ratio / width if width > 1 else ratio
    z = token_ratio
    r = token_ratio + (1.0 - token_ratio) * random_ratio
    u = torch.rand(shape, generator=generator, device=dev)
    if width == 1 or span_mode == "reference":
        mask = u < p
        zeroed = u < p * z
        randomised = mask & ~zeroed & (u < p * r)
    else:
        mask = expand_spans(u < p, width)
        c = torch.rand(shape, generator=generator, device=dev)
        zeroed = mask & (c < z)
        randomised = mask & ~zeroed & (c < r)
    return MaskDraw(mask, zeroed, randomised)


def apply_mask(heldin: Tensor, draw: MaskDraw, generator: torch.Generator) -> Tensor:
    """Masked float copy of `heldin`: zeroed entries 0, randomised ones U{0..max-1} of the batch max."""
    out = heldin.float().masked_fill(draw.zeroed.to(heldin.device), 0.0)
    high = max(int(out.max().item()), 1)  # reference: randint(batch.max()) after zeroing
    where = draw.randomised.to(heldin.device)
    n = int(where.sum().item())
    counts = torch.randint(0, high, (n,), generator=generator, device=generator.device, dtype=torch.float32)
    out[where] = counts.to(heldin.device)
    return out


def mask_heldin(
    heldin: Tensor,
    ratio: float,
    token_ratio: float,
    random_ratio: float,
    width: int,
    generator: torch.Generator,
    span_mode: str = "expand",
) -> tuple[Tensor, Tensor]:
    """Mask held-in counts (B, T, N_in). Returns (masked float copy, boolean mask on heldin's device)."""
    draw = draw_mask(tuple(heldin.shape), ratio, token_ratio, random_ratio, width, generator, span_mode)
    return apply_mask(heldin, draw, generator), draw.mask.to(heldin.device)
