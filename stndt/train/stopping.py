"""Early stopping of one ensemble member: when has training stopped making progress?

Two rules, chosen by TrainConfig.stop_rule:

- ``"both"`` (the published runs; reference trungle93/STNDT ``src/runner.py`` ~line 661):
  ``update - best_val["update"] > PATIENCE and update - best_cobps["update"] > PATIENCE``, i.e. stop
  only when BOTH the val masked loss and the val co-bps have gone MORE than `patience` epochs without
  a strict improvement. (The reference's "update" is one pass over the training trials: our epoch.)
- ``"cobps"`` (this project's earlier rule, kept so that earlier runs can be reproduced exactly):
  stop when AT LEAST `patience` epochs have passed since the best val co-bps; the loss is ignored.

The two comparisons differ (``>`` vs ``>=``) because each rule is copied from its source verbatim.
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


def should_stop(epoch: int, best_cobps_epoch: int, best_loss_epoch: int, patience: int,
                rule: str = DEFAULT_STOP_RULE) -> bool:
    """Stop training after `epoch` (number of epochs trained so far, checked at a validation)?

    best_cobps_epoch / best_loss_epoch: the epochs at which val co-bps / val masked loss last
    strictly improved. rule "both" (published): both have been stalled for more than `patience`
    epochs. rule "cobps": at least `patience` epochs since the best co-bps (best_loss_epoch unused).
    """
    if rule not in STOP_RULES:
        raise ValueError(f"stop rule {rule!r}: expected one of {', '.join(STOP_RULES)}")
    if rule == "cobps":
        return epoch - best_cobps_epoch >= patience
    return epoch - best_cobps_epoch > patience and epoch - best_loss_epoch > patience
