"""Seeded hyperparameter search space: format, validation, sampling, and mapping onto the configs.

Format (one mapping per dataset in config/search_spaces.yaml, or inline in a config file):
    param: {low: L, high: H, log: false, int: false}   # sampled; bounds inclusive
    param: value                                       # fixed (any non-mapping value)
`log: true` samples uniformly in log space (needs low > 0); `int: true` samples integers in [low, high]
(with `log`, log-uniformly). Parameter names are the field names of ModelConfig, ObjectiveConfig and
TrainConfig (shape fields excepted: they come from the data).

Reproducibility: every (seed, member_index, parameter name) triple gets its own numpy Generator, so
member i gets the same values however many members are requested, whatever order the space is
written in, and adding a parameter to the space does not change the values drawn for the others.
"""

from __future__ import annotations

import dataclasses
import math
import typing
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from stndt.datasets import nlb_dataset
from stndt.train.config import TrainConfig

RANGE_KEYS = frozenset({"low", "high", "log", "int"})
# ModelConfig fields set from the tensors file, never from hyperparameters.
SHAPE_FIELDS: tuple[str, ...] = ("n_heldin", "n_heldout", "t_bins", "t_forward")
DEFAULT_SPACES_FILE = Path(__file__).resolve().parents[3] / "config" / "search_spaces.yaml"


def _config_classes() -> tuple[type, type, type]:
    # Imported lazily: the model package is written in parallel and is heavy (torch).
    from stndt.model.config import ModelConfig, ObjectiveConfig

    return ModelConfig, ObjectiveConfig, TrainConfig


def known_params() -> dict[str, tuple[str, ...]]:
    """Flat parameter name -> names of the config classes that have a field of that name."""
    owners: dict[str, list[str]] = {}
    for cls in _config_classes():
        for f in dataclasses.fields(cls):
            if f.name not in SHAPE_FIELDS:
                owners.setdefault(f.name, []).append(cls.__name__)
    return {k: tuple(v) for k, v in owners.items()}


def is_range(spec: Any) -> bool:
    """A mapping is a range to sample from; anything else is a fixed value."""
    return isinstance(spec, Mapping)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, (bool, np.bool_))


def validate_space(space: Mapping[str, Any], where: str) -> None:
    """Raise ValueError naming `where` and the offending key for any malformed entry."""
    if not isinstance(space, Mapping):
        raise ValueError(
            f"{where}: search space must be a mapping of param -> range or value, got {type(space).__name__}"
        )
    known = known_params()
    hints = _field_hints()
    for name, spec in space.items():
        key = f"{where}.{name}"
        if name in SHAPE_FIELDS:
            raise ValueError(f"{key}: '{name}' is set from the tensors file and cannot be a hyperparameter")
        if name not in known:
            raise ValueError(f"{key}: unknown hyperparameter '{name}'; known: {', '.join(sorted(known))}")
        hint = hints.get(name)
        if not is_range(spec):
            _coerce(spec, hint, key)  # a fixed value of the wrong type fails here, not at training time
            continue
        if hint not in (int, float):
            raise ValueError(f"{key}: '{name}' is not numeric and cannot be sampled from a range")
        if hint is int and not spec.get("int", False):
            raise ValueError(f"{key}: '{name}' is an integer; its range needs 'int: true'")
        extra = set(spec) - RANGE_KEYS
        if extra:
            raise ValueError(f"{key}: unknown range keys {sorted(extra)}; allowed: {sorted(RANGE_KEYS)}")
        for bound in ("low", "high"):
            if bound not in spec:
                raise ValueError(f"{key}: range needs '{bound}'")
            if not _is_number(spec[bound]) or not math.isfinite(float(spec[bound])):
                raise ValueError(f"{key}.{bound}: must be a finite number, got {spec[bound]!r}")
        for flag in ("log", "int"):
            if flag in spec and not isinstance(spec[flag], bool):
                raise ValueError(f"{key}.{flag}: must be true or false, got {spec[flag]!r}")
        low, high = float(spec["low"]), float(spec["high"])
        if low > high:
            raise ValueError(f"{key}: low ({spec['low']}) > high ({spec['high']})")
        if spec.get("log", False) and low <= 0:
            raise ValueError(f"{key}: log-uniform range needs low > 0, got low={spec['low']}")
        if spec.get("int", False) and not (low.is_integer() and high.is_integer()):
            raise ValueError(f"{key}: integer range needs integer bounds, got [{spec['low']}, {spec['high']}]")


def _param_rng(seed: int, member_index: int, name: str) -> np.random.Generator:
    # crc32, not hash(): Python's string hash changes between processes.
    return np.random.default_rng(np.random.SeedSequence([seed, member_index, zlib.crc32(name.encode())]))


def _sample_one(spec: Mapping[str, Any], rng: np.random.Generator) -> int | float:
    low, high = float(spec["low"]), float(spec["high"])
    log, integer = bool(spec.get("log", False)), bool(spec.get("int", False))
    if integer:
        lo, hi = int(low), int(high)
        if not log:
            return int(rng.integers(lo, hi, endpoint=True))
        # log-uniform over [lo, hi + 1), floored: each integer gets the mass of its log-interval
        value = math.exp(rng.uniform(math.log(lo), math.log(hi + 1)))
        return min(hi, max(lo, int(math.floor(value))))
    if log:
        value = math.exp(rng.uniform(math.log(low), math.log(high)))
    else:
        value = low + (high - low) * rng.random()
    return float(min(high, max(low, value)))  # guard float round-off at the ends


def sample_params(space: Mapping[str, Any], seed: int, member_index: int) -> dict[str, Any]:
    """Draw member `member_index`'s hyperparameters; fixed entries are copied as they are.

    Independent of how many members are drawn and of the order of keys in `space`.
    """
    validate_space(space, "search_space")
    for label, value in (("seed", seed), ("member_index", member_index)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"sample_params: {label} must be a non-negative integer, got {value!r}")
    out: dict[str, Any] = {}
    for name in sorted(space):
        spec = space[name]
        out[name] = _sample_one(spec, _param_rng(int(seed), int(member_index), name)) if is_range(spec) else spec
    return out


def member_seed(seed: int, member_index: int) -> int:
    """A training seed for member i derived from the global seed (independent of the member count)."""
    state = np.random.SeedSequence([seed, member_index, 0x5EED]).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 31 | int(state[1]) >> 1  # 63-bit, fits torch.manual_seed


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """Turn YAML/JSON scalars into the field's declared type; error naming the key otherwise."""
    if hint is bool:
        if not isinstance(value, (bool, np.bool_)):
            raise ValueError(f"{key}: expected true/false, got {value!r}")
        return bool(value)
    if hint is int:
        if _is_number(value) and float(value).is_integer():
            return int(value)
        raise ValueError(f"{key}: expected an integer, got {value!r}")
    if hint is float:
        if _is_number(value):
            return float(value)
        raise ValueError(f"{key}: expected a number, got {value!r}")
    if isinstance(value, np.generic):
        return value.item()
    return value


def _field_hints() -> dict[str, Any]:
    """Declared type of every known parameter (the first owning config's)."""
    out: dict[str, Any] = {}
    for cls in _config_classes():
        for name, hint in _type_hints(cls).items():
            out.setdefault(name, hint)
    return out


def _type_hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception:  # unresolvable annotation: no coercion for that class
        return {}


def split_params(params: Mapping[str, Any], shapes: Mapping[str, int]) -> tuple[Any, Any, TrainConfig]:
    """Map flat hyperparameter names onto (ModelConfig, ObjectiveConfig, TrainConfig).

    `shapes` gives n_heldin, n_heldout, t_bins, t_forward (from the tensors file). A name that is a
    field of several configs sets it in each. Unknown names raise ValueError naming them.
    """
    classes = _config_classes()
    known = known_params()
    bad_shape = sorted(set(params) & set(SHAPE_FIELDS))
    if bad_shape:
        raise ValueError(f"params: {', '.join(bad_shape)} come from the tensors file, not from hyperparameters")
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ValueError(f"params: unknown hyperparameter(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    missing = [s for s in SHAPE_FIELDS if s not in shapes]
    if missing:
        raise ValueError(f"shapes: missing {', '.join(missing)}")
    built = []
    for cls in classes:
        hints = _type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: _coerce(v, hints.get(k), f"params.{k}") for k, v in params.items() if k in names}
        if cls is classes[0]:
            kwargs.update({k: int(shapes[k]) for k in SHAPE_FIELDS})
        try:
            built.append(cls(**kwargs))
        except TypeError as e:  # e.g. a required field without value
            raise ValueError(f"params: cannot build {cls.__name__}: {e}") from e
    return built[0], built[1], built[2]


def load_search_spaces(path: str | Path = DEFAULT_SPACES_FILE) -> dict[str, dict[str, Any]]:
    """Read the per-dataset search spaces YAML and validate every entry."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: search-space file does not exist")
    with path.open() as f:
        data = yaml.safe_load(f)
    if not isinstance(data, Mapping):
        raise ValueError(f"{path}: expected a mapping of dataset -> search space")
    for ds, space in data.items():
        validate_space(space, f"{path.name}:{ds}")
    return {k: dict(v) for k, v in data.items()}


def search_space_for(
    layout: str, spaces: Mapping[str, Mapping[str, Any]] | None = None, overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The search space for an NLB layout (scaling sizes use their family's, i.e. mc_maze's),
    with per-run `overrides` (e.g. epoch-valued ranges shrunk to a small budget) replacing entries."""
    spaces = load_search_spaces() if spaces is None else spaces
    family = nlb_dataset(layout).family
    key = layout if layout in spaces else family
    if key not in spaces:
        raise ValueError(f"no search space for layout {layout!r} (or its family {family!r}); have: {', '.join(spaces)}")
    space = {**spaces[key], **dict(overrides or {})}
    validate_space(space, f"search_space[{layout}]")
    return space
