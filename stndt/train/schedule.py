"""The learning-rate schedule of a member (the reference's WarmupCosineSchedule, stepped per epoch)."""

from __future__ import annotations

import math


def lr_factor(epoch: int, warmup_epochs: int, max_epochs: int) -> float:
    """Learning-rate multiplier while training epoch `epoch` (0-based).

    Linear warm-up over `warmup_epochs` (reaching 1 at the last warm-up epoch, never 0), then cosine
    decay to 0 at `max_epochs` - the reference's WarmupCosineSchedule, stepped once per epoch.
    """
    if epoch < warmup_epochs:
        return (epoch + 1) / (warmup_epochs + 1)
    progress = (epoch - warmup_epochs) / max(1, max_epochs - warmup_epochs)
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))
