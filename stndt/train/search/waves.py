"""Bayesian search over ensemble members, in waves: the published runs' search, rebuilt without Ray.

The paper's 120 members per dataset came from Bayesian optimisation (authors' src/ray_random.py:
Ray Tune with `SkOptSearch(metric='best_cobps', mode='max')`, i.e. scikit-optimize's Gaussian-process
optimiser, several trials running at once). Here the members are proposed in waves of `wave_size`, so
that every member stays its own (resumable) Snakemake job: the workflow trains a wave, then asks for
the next one from a checkpoint.

- Wave 0, and every wave of `method="random"`, is exactly `sample_params(space, seed, i)` for the
  wave's member indices: random and Bayesian search share their first wave (the GP's random start,
  as skopt's `n_initial_points`), and random search is the project's original search unchanged.
- A later Bayesian wave rebuilds an in-memory Optuna study from the completed members (their sampled
  params and best val co-bps, added in member order with `optuna.trial.create_trial`) and asks it
  `wave_size` times. Sampler: Optuna's `GPSampler` (Matern-5/2 ARD GP with log-EI), the closest
  Optuna counterpart of skopt's GP optimiser. Chosen over TPE because (a) it is the published method's
  model class, (b) with asked-but-untold (RUNNING) trials it switches to q-batch log-EI (sequential
  greedy over the pending points), so the points of one wave differ without an ad-hoc liar value, and
  (c) with a fixed seed and a fresh sampler per call it is deterministic (checked across processes in
  tests/test_search.py). `n_startup_trials=0`: the random start is wave 0, not Optuna's.
- A completed member whose value is not finite (diverged, or no val co-bps) is added as a FAILED trial:
  the GP ignores it (it neither attracts nor repels proposals) and the study keeps a record of it. With
  fewer than `MIN_FINITE` finite values there is nothing to fit, and the wave falls back to the random
  search's draws for its indices.

Determinism: the sampler is seeded from (seed, wave) through a SeedSequence; parameters are mapped in
sorted-name order; the same inputs give the same proposals in any process (same library versions).
The proposals depend on the completed values, not only on the seed.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from stndt.members import SEARCH_METHODS, member_index
from stndt.train.search.space import is_range, sample_params, validate_space

#: Fewest finite completed values the GP is fitted to; fewer and a wave is the random search's draws.
MIN_FINITE = 2
_VAL_CO_BPS = "val co-bps"  # stndt.train.inference.VAL_CO_BPS (not imported: inference pulls in torch)
_SEED_TAG = 0xBA7E5  # separates the sampler seeds from the other SeedSequence users of (seed, ...)

log = logging.getLogger(__name__)


def wave_of(index: int, wave_size: int) -> int:
    """The wave whose members include member `index` (the inverse of `wave_indices`)."""
    _check_nonneg_int("index", index)
    if wave_size < 1:
        raise ValueError("wave_size must be positive")
    return index // wave_size


def wave_indices(wave: int, wave_size: int) -> range:
    """Member indices of `wave`: wave*wave_size ... (wave+1)*wave_size - 1."""
    _check_nonneg_int("wave", wave)
    _check_nonneg_int("wave_size", wave_size)
    if wave_size == 0:
        raise ValueError("wave_size must be positive")
    return range(wave * wave_size, (wave + 1) * wave_size)


def sampled_names(space: Mapping[str, Any]) -> list[str]:
    """Names of the space's sampled (range) entries, sorted: the parameters the search optimises."""
    return sorted(name for name, spec in space.items() if is_range(spec))


def optuna_distributions(space: Mapping[str, Any]) -> dict:
    """Optuna distributions of the sampled entries (sorted by name); fixed entries are left out.

    Same ranges as `sample_params`: bounds inclusive (IntDistribution includes `high`), `log: true`
    log-uniform, `int: true` integers. A degenerate range (low == high) maps to a one-point
    distribution, which Optuna returns as that value.
    """
    from optuna.distributions import FloatDistribution, IntDistribution

    validate_space(space, "search_space")
    out = {}
    for name in sampled_names(space):
        spec = space[name]
        log_ = bool(spec.get("log", False))
        if spec.get("int", False):
            out[name] = IntDistribution(int(spec["low"]), int(spec["high"]), log=log_)
        else:
            out[name] = FloatDistribution(float(spec["low"]), float(spec["high"]), log=log_)
    return out


def sampler_seed(seed: int, wave: int) -> int:
    """The sampler seed of one wave: a function of (seed, wave) only, stable across processes."""
    state = np.random.SeedSequence([int(seed), int(wave), _SEED_TAG]).generate_state(1, dtype=np.uint32)
    return int(state[0])


def propose_wave(
    space: Mapping[str, Any],
    seed: int,
    wave: int,
    wave_size: int,
    completed: Sequence[tuple[Mapping[str, Any], float]],
    method: str = "bayes",
) -> list[dict[str, Any]]:
    """Sampled hyperparameters of the members of `wave` (indices `wave_indices(wave, wave_size)`).

    `completed`: (params, best val co-bps) of the finished members of the earlier waves, in member
    order (e.g. from `completed_members`); only the space's sampled keys of each params dict are used,
    and each must lie in the space's range. Ignored for wave 0 and for `method="random"`.
    Returns one dict per member with the keys and value types of `sample_params` (fixed entries copied).
    """
    if method not in SEARCH_METHODS:
        raise ValueError(f"search method {method!r}: expected one of {', '.join(SEARCH_METHODS)}")
    indices = wave_indices(wave, wave_size)
    _check_nonneg_int("seed", seed)
    random_draws = [sample_params(space, seed, i) for i in indices]  # also validates the space
    if wave == 0 or method == "random":
        return random_draws
    if len(completed) > indices.start:
        raise ValueError(
            f"wave {wave}: {len(completed)} completed members given, but only {indices.start} "
            f"members come before it (wave_size {wave_size})"
        )
    finite = sum(1 for _, v in completed if _finite(v))
    if finite < MIN_FINITE:
        log.warning("wave %d: only %d completed member(s) with a finite value; using the random draws", wave, finite)
        return random_draws
    proposals = _ask_gp(space, sampler_seed(seed, wave), completed, wave_size)
    fixed = {name: spec for name, spec in space.items() if not is_range(spec)}
    return [{name: ({**fixed, **p})[name] for name in sorted(space)} for p in proposals]


def _ask_gp(
    space: Mapping[str, Any], sampler_seed_: int, completed: Sequence[tuple[Mapping[str, Any], float]], n: int
) -> list[dict[str, Any]]:
    """Rebuild the study from `completed` and ask it `n` times (the asked trials stay RUNNING, so each
    later ask sees the earlier ones as pending points: q-batch log-EI)."""
    import optuna
    from optuna.trial import TrialState, create_trial

    dists = optuna_distributions(space)
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "study created" / "trial added" chatter
    try:
        sampler = optuna.samplers.GPSampler(seed=sampler_seed_, n_startup_trials=0, warn_independent_sampling=False)
        study = optuna.create_study(direction="maximize", sampler=sampler)
        for k, (params, value) in enumerate(completed):
            trial_params = _space_params(params, dists, k)
            if _finite(value):
                trial = create_trial(params=trial_params, distributions=dists, value=float(value))
            else:
                trial = create_trial(state=TrialState.FAIL, params=trial_params, distributions=dists)
            study.add_trial(trial)
        return [_plain(study.ask(fixed_distributions=dists).params, dists) for _ in range(n)]
    finally:
        optuna.logging.set_verbosity(verbosity)


def _space_params(params: Mapping[str, Any], dists: Mapping[str, Any], k: int) -> dict[str, Any]:
    """The sampled entries of completed member k's params, checked against the space's ranges."""
    missing = [name for name in dists if name not in params]
    if missing:
        raise ValueError(f"completed member {k}: params lack sampled key(s) {', '.join(missing)}")
    from optuna.distributions import IntDistribution

    out = {}
    for name, dist in dists.items():
        value = float(params[name])
        if isinstance(dist, IntDistribution):
            if not value.is_integer():
                raise ValueError(f"completed member {k}: {name}={params[name]!r} is not an integer")
            value = int(value)
        if not dist._contains(dist.to_internal_repr(value)):
            raise ValueError(
                f"completed member {k}: {name}={params[name]!r} is outside the search space "
                f"[{dist.low}, {dist.high}] (did the space change between waves?)"
            )
        out[name] = value
    return out


def _plain(params: Mapping[str, Any], dists: Mapping[str, Any]) -> dict[str, Any]:
    """Optuna's values as the builtin int/float that `sample_params` returns, clipped to the bounds:
    Optuna's log transform can land one ulp outside them (e.g. 0.004000000000000002 for low=4e-3)."""
    from optuna.distributions import IntDistribution

    out: dict[str, Any] = {}
    for name, dist in dists.items():
        cast = int if isinstance(dist, IntDistribution) else float
        out[name] = cast(min(dist.high, max(dist.low, params[name])))
    return out


def completed_members(
    params_files: Mapping[str, str | Path], space: Mapping[str, Any] | None = None
) -> list[tuple[dict[str, Any], float]]:
    """(params, best val co-bps) of finished members, read from their params.json files ({member id:
    path}, as the rule hands them over), in member order.

    params.json is written by stndt.train.outputs.write_member_outputs: "given" holds the params the member
    was trained with (sampled + fixed settings + variant switches + seed), "training" its summary with "val co-bps".
    With `space`, only its sampled keys are kept (the ones the search optimises); `propose_wave`
    ignores the other keys anyway. Members are sorted by index (m007 -> 7), so the order of
    `params_files` does not matter. A missing value (None) is returned as NaN.
    """
    keep = sampled_names(space) if space is not None else None
    out: list[tuple[dict[str, Any], float]] = []
    for member in sorted(params_files, key=member_index):
        path = Path(params_files[member])
        if not path.exists():
            raise FileNotFoundError(f"{path}: member has no params.json (not finished?)")
        data = json.loads(path.read_text())
        for section in ("given", "training"):
            if section not in data:
                raise ValueError(f"{path}: no '{section}' entry")
        given = dict(data["given"])
        if keep is not None:
            missing = [k for k in keep if k not in given]
            if missing:
                raise ValueError(f"{path}: 'given' lacks sampled key(s) {', '.join(missing)}")
            given = {k: given[k] for k in keep}
        value = data["training"].get(_VAL_CO_BPS)
        out.append((given, float("nan") if value is None else float(value)))
    return out


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _check_nonneg_int(label: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{label} must be a non-negative integer, got {value!r}")
