"""Training of ensemble members and the seeded hyperparameter search.

driver.py runs the epochs of one member alone (solo.py: train_member) or of a pack of members
(pack/: train_pack, the batched model, loss and optimiser); both share the per-member pieces here
(setup, data, schedule, stopping, bookkeeping, checkpoint, preemption, inference, outputs, candidates).
search/ holds the search space (space.py) and the Bayesian search in waves (waves.py); members.py what
makes member i. Importing this package loads no torch: train_member is imported on first use.
"""

from .config import TrainConfig
from .search.space import (
    load_search_spaces,
    member_seed,
    sample_params,
    search_space_for,
    split_params,
    validate_space,
)

__all__ = [
    "TrainConfig",
    "load_search_spaces",
    "member_seed",
    "sample_params",
    "search_space_for",
    "split_params",
    "validate_space",
    "train_member",
]


def __getattr__(name: str):
    # train_member pulls in torch and the model; import it only when asked for.
    if name == "train_member":
        from .solo import train_member

        return train_member
    raise AttributeError(name)
