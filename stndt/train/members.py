"""Everything that makes member i of a dataset what it is: its sampled hyperparameters, its seed and
its model variant. One function, so the Snakemake rule, the CLI and the tests agree exactly.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from stndt.train.search_space import (
    load_search_spaces,
    member_seed,
    sample_params,
    search_space_for,
    validate_space,
)

# The model variants compared in the paper, as overrides of a member's sampled hyperparameters.
# NDT: no spatial attention and no contrastive term (the original NDT); no_contrast: the ablation.
VARIANTS: dict[str, dict[str, Any]] = {
    "stndt": {},
    "ndt": {"spatial": False, "contrastive": False},
    "no_contrast": {"contrastive": False},
}


def member_id(index: int) -> str:
    return f"m{index:03d}"


def member_index(member: str) -> int:
    if not (member.startswith("m") and member[1:].isdigit()):
        raise ValueError(f"member id {member!r}: expected 'm' followed by digits, e.g. m007")
    return int(member[1:])


def member_params(spaces_file: str | Path, layout: str, index: int, seed: int, variant: str = "stndt",
                  overrides: Mapping[str, Any] | None = None, training: Mapping[str, Any] | None = None,
                  space_name: str | None = None) -> dict[str, Any]:
    """Flat hyperparameters of member `index`: a seeded draw from the search space (member i gets the
    same draw in every variant, so variants are compared pairwise), then the fixed `training` settings,
    then the variant's switches and the member's own training seed."""
    if variant not in VARIANTS:
        raise ValueError(f"variant {variant!r}: expected one of {', '.join(VARIANTS)}")
    spaces = load_search_spaces(spaces_file)
    if space_name:
        if space_name not in spaces:
            raise ValueError(f"search_space {space_name!r}: not in {spaces_file} (have {', '.join(spaces)})")
        space = {**spaces[space_name], **dict(overrides or {})}
        validate_space(space, f"search_space[{space_name}]")
    else:
        space = search_space_for(layout, spaces, overrides)
    params = sample_params(space, seed, index)
    params.update(training or {})
    params.update(VARIANTS[variant])
    params["seed"] = member_seed(seed, index)
    return params
