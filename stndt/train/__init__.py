"""Training of one ensemble member and the seeded hyperparameter search space."""

from .config import TrainConfig
from .search_space import (
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
        from .loop import train_member

        return train_member
    raise AttributeError(name)
