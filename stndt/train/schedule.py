"""The learning-rate schedule of a member (the reference's WarmupCosineSchedule, stepped per epoch),
and the cool-down that anneals it to zero once the stopping rule has fired (TrainConfig.cooldown_fraction).

Why a cool-down: on a budget of a few hundred epochs the learning rate is still high when a member
plateaus, and its val co-bps then jumps by a few hundredths from one validation to the next. The
stopping rule fires on that noisy plateau, although annealing the learning rate would lift it: on the
area2_bump layout a member stopped at epoch 120 with 0.267 val co-bps reached 0.305 when trained on
through the cosine decay. The cool-down gives every member stopped by the rule that annealing, at a
cost proportional to its own training so far.
"""

from __future__ import annotations

import math
from collections.abc import Mapping


def lr_factor(epoch: int, warmup_epochs: int, max_epochs: int, cooldown: Mapping[str, int] | None = None) -> float:
    """Learning-rate multiplier while training epoch `epoch` (0-based).

    Linear warm-up over `warmup_epochs` (reaching 1 at the last warm-up epoch, never 0), then cosine
    decay to 0 at `max_epochs` - the reference's WarmupCosineSchedule, stepped once per epoch. With a
    `cooldown` ({"start": epochs trained when the rule fired, "length": epochs}), the epochs from
    `start` on fall linearly from the schedule's factor at `start` towards 0 (never 0 itself: the last
    cool-down epoch still trains, at 1 / (length + 1) of that factor).
    """
    if cooldown is not None and epoch >= cooldown["start"]:
        start, length = cooldown["start"], cooldown["length"]
        left = max(0, start + length - epoch)
        return lr_factor(start, warmup_epochs, max_epochs) * left / (length + 1)
    if epoch < warmup_epochs:
        return (epoch + 1) / (warmup_epochs + 1)
    progress = (epoch - warmup_epochs) / max(1, max_epochs - warmup_epochs)
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))


def cooldown_epochs(fired_at: int, fraction: float, val_every: int, max_epochs: int) -> int:
    """Length of the cool-down of a member whose stopping rule fired after `fired_at` epochs:
    `fraction` x fired_at, rounded up to whole validation intervals (so that its last epoch is
    validated), and never past the cap `max_epochs` (validated too). 0 when fraction is 0 (stop at once)."""
    if fraction <= 0:
        return 0
    length = val_every * math.ceil(fraction * fired_at / val_every)
    return max(0, min(length, max_epochs - fired_at))
