"""Early stopping of one ensemble member: when has training stopped making progress?

Two rules, chosen by TrainConfig.stop_rule:

- ``"both"`` (the published runs; reference trungle93/STNDT ``src/runner.py`` ~line 661):
  ``update - best_val["update"] > PATIENCE and update - best_cobps["update"] > PATIENCE``, i.e. stop
  only when BOTH the val masked loss and the val co-bps have gone MORE than `patience` epochs without
  a strict improvement. (The reference's "update" is one pass over the training trials: our epoch.)
- ``"cobps"`` (this project's earlier rule, kept so that earlier runs can be reproduced exactly):
  stop when AT LEAST `patience` epochs have passed since the best val co-bps; the loss is ignored.

The two comparisons differ (``>`` vs ``>=``) because each rule is copied from its source verbatim.

Patience that scales with the data (``patience_fraction``): a fixed patience is sized for one dataset.
A member that is still improving at epoch 800 on a harder dataset deserves a longer wait than one that
peaked at epoch 80, so the patience a criterion gets is ``max(patience, patience_fraction x the epoch of
its last improvement)``: a member must stay stalled for that share of its own training so far. 0 (the
default and the published runs) is the fixed patience.

Patience in optimizer steps (``patience_steps``): an epoch is one pass over the training trials, so 20
epochs are 200 steps on 160 trials but only 100 on 80 (batch 16), and a member on a small dataset could
stop as "converged" before it started to learn. ``patience_steps`` sets a floor in steps, converted to
epochs for this dataset by `patience_floor` (ceil(patience_steps / steps per epoch)); the patience in
epochs is the larger of the two. Whatever the patience, ``max_epochs`` caps
training; a member stopped there before the rule fired has not converged (``converged``). The cap has
the same floor in steps (``max_steps``, `epoch_cap`): a cap of 400 epochs is 4,000 steps on 160 trials
but 2,000 on 75, so a budget sized on one dataset would cut a smaller one short.
The decision is a pure function of epoch counters, so it is tested on hand-made histories and a
resumed run makes exactly the decisions of an uninterrupted one (the counters live in state.pt).
"""

from __future__ import annotations

import math

STOP_RULES: tuple[str, ...] = ("both", "cobps")
DEFAULT_STOP_RULE = "both"


def improved(value: float, best: float, *, lower_is_better: bool) -> bool:
    """Whether `value` strictly beats `best` (reference: ``<`` for losses, ``>`` for co-bps).

    NaN never improves (a diverged model must not become the best); a finite value beats an infinite
    starting `best`.
    """
    if math.isnan(value):
        return False
    return value < best if lower_is_better else value > best


def effective_patience(best_epoch: int, patience: int, patience_fraction: float = 0.0) -> float:
    """The patience a criterion last improved at `best_epoch` gets: max(patience, fraction x best_epoch)."""
    return max(float(patience), patience_fraction * max(best_epoch, 0))


def patience_floor(patience: int, patience_steps: int, steps_per_epoch: int) -> int:
    """The patience in epochs on a dataset with `steps_per_epoch` optimizer steps per epoch: at least
    `patience` epochs and at least `patience_steps` steps (0 = no step floor, the published runs)."""
    if steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be positive, got {steps_per_epoch}")
    return max(int(patience), math.ceil(patience_steps / steps_per_epoch))


def epoch_cap(max_epochs: int, max_steps: int, steps_per_epoch: int) -> int:
    """The cap in epochs on a dataset with `steps_per_epoch` steps per epoch: at least `max_epochs`
    epochs and at least `max_steps` optimizer steps (0 = the cap is `max_epochs`, the published runs)."""
    return patience_floor(max_epochs, max_steps, steps_per_epoch)


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """Optimizer steps in one pass over `n_train` training trials (the last batch may be short)."""
    return max(1, math.ceil(n_train / batch_size))


def should_stop(
    epoch: int,
    best_cobps_epoch: int,
    best_loss_epoch: int,
    patience: int,
    rule: str = DEFAULT_STOP_RULE,
    patience_fraction: float = 0.0,
) -> bool:
    """Stop training after `epoch` (number of epochs trained so far, checked at a validation)?

    best_cobps_epoch / best_loss_epoch: the epochs at which val co-bps / val masked loss last
    strictly improved. rule "both" (published): both have been stalled for more than their patience.
    rule "cobps": at least its patience since the best co-bps (best_loss_epoch unused). The patience of
    each is `effective_patience` (= `patience` when patience_fraction is 0).
    """
    if rule not in STOP_RULES:
        raise ValueError(f"stop rule {rule!r}: expected one of {', '.join(STOP_RULES)}")

    def waited(best: int) -> float:
        return epoch - best - effective_patience(best, patience, patience_fraction)

    if rule == "cobps":
        return waited(best_cobps_epoch) >= 0
    return waited(best_cobps_epoch) > 0 and waited(best_loss_epoch) > 0
