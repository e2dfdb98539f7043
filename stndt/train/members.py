"""Everything that makes member i of a dataset what it is: its sampled hyperparameters, its seed and
its model variant. One function, so the Snakemake rule, the CLI and the tests agree exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stndt.members import VARIANTS
from stndt.train.search.space import (
    load_search_spaces,
    member_seed,
    sample_params,
    search_space_for,
    validate_space,
)


def space_for(
    spaces: Mapping[str, Mapping[str, Any]],
    layout: str,
    overrides: Mapping[str, Any] | None = None,
    space_name: str | None = None,
) -> dict[str, Any]:
    """The validated search space of a dataset: a named space of the file (or the layout's family's)
    with the config's overrides replacing entries."""
    if space_name:
        if space_name not in spaces:
            raise ValueError(f"search_space {space_name!r}: not in the search-space file (have {', '.join(spaces)})")
        space = {**spaces[space_name], **dict(overrides or {})}
        validate_space(space, f"search_space[{space_name}]")
        return space
    return search_space_for(layout, spaces, overrides)


def resolve_member(
    space: Mapping[str, Any],
    seed: int,
    index: int,
    variant: str = "stndt",
    training: Mapping[str, Any] | None = None,
    sampled: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Flat hyperparameters of member `index`: its sampled values (a seeded draw from `space`, or the
    given `sampled` values, e.g. a Bayesian proposal), then the fixed `training` settings, then the
    variant's switches and the member's own training seed. Member i gets the same draw in every variant,
    so variants are compared pairwise."""
    if variant not in VARIANTS:
        raise ValueError(f"variant {variant!r}: expected one of {', '.join(VARIANTS)}")
    params = dict(sample_params(space, seed, index) if sampled is None else sampled)
    params.update(training or {})
    params.update(VARIANTS[variant])
    params["seed"] = member_seed(seed, index)
    return params


def member_params(
    spaces_file: str | Path,
    layout: str,
    index: int,
    seed: int,
    variant: str = "stndt",
    overrides: Mapping[str, Any] | None = None,
    training: Mapping[str, Any] | None = None,
    space_name: str | None = None,
) -> dict[str, Any]:
    """`resolve_member` for a search-space file (see there)."""
    space = space_for(load_search_spaces(spaces_file), layout, overrides, space_name)
    return resolve_member(space, seed, index, variant, training)
