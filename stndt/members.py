"""Who a member is and how its training ended: the facts that training, evaluation, figures and the
workflow share, kept on the ground floor so that evaluation and figures need nothing from stndt.train.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

# The model variants compared in the paper, as overrides of a member's sampled hyperparameters.
# NDT: no spatial attention and no contrastive term (the original NDT); no_contrast: the ablation.
VARIANTS: dict[str, dict[str, Any]] = {
    "stndt": {},
    "ndt": {"spatial": False, "contrastive": False},
    "no_contrast": {"contrastive": False},
}

#: How a dataset's members are drawn (config `search.method`): seeded random draws, or Bayesian waves.
SEARCH_METHODS: tuple[str, ...] = ("random", "bayes")

#: Why a member stopped: the stopping rule fired (converged), the cap `max_epochs` was reached first
#: (NOT converged: it may still have been improving), or the training loss became non-finite.
STOP_RULE, STOP_CAP, STOP_DIVERGED = "early_stopping", "max_epochs", "diverged"


#: The masked-modeling loss (the training objective without the contrastive term): its column in a
#: member's train_log.csv and, at the kept epoch, in members.csv (the x-axis of the paper's Fig. 2A).
MASKED_NLL = "masked_nll"


#: A member folder's files, written only at the end of training (and atomically): the kept checkpoint, the
#: resolved hyperparameters with how training ended, the per-epoch log and the rates of both phases.
OUTPUT_FILES: tuple[str, ...] = ("best.pt", "params.json", "train_log.csv", "rates_val.h5", "rates_test.h5")
#: Every file of a member folder that its training job leaves: the outputs above and the val scores
#: (`stndt train` scores the member in the same job). The workflow declares exactly these.
MEMBER_FILES: tuple[str, ...] = (*OUTPUT_FILES, "metrics_val.json")


#: The files of one member that a command reads, as its rule hands them over: {file name: path}, the
#: names being those above (and metrics_PHASE.json, candidates/...). Commands never look inside a
#: member folder for a file they were not given: the DAG stays the one map of what each job reads.
MemberFiles = Mapping[str, Path]


def member_file(files: MemberFiles, name: str, member: str) -> Path:
    """The path of member `member`'s file `name`, or an error saying the command was not given it."""
    try:
        return Path(files[name])
    except KeyError:
        raise ValueError(
            f"member {member}: no {name} given (--member-file {member} {name} PATH); given: "
            f"{', '.join(files) or 'nothing'}"
        ) from None


def member_id(index: int) -> str:
    return f"m{index:03d}"


def member_index(member: str) -> int:
    if not (member.startswith("m") and member[1:].isdigit()):
        raise ValueError(f"member id {member!r}: expected 'm' followed by digits, e.g. m007")
    return int(member[1:])


def converged(stop_reason: str) -> bool:
    """A member converged when the stopping rule ended it (not the cap, not divergence)."""
    return stop_reason == STOP_RULE
