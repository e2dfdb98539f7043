"""Bayesian search in waves (stndt.train.search.waves): no training, toy objectives only.

Each Bayesian wave below costs a GP fit and ~8 acquisition optimisations (1-5 s on one core), so the
spaces are small and the waves few.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from stndt.train.search.space import sample_params
from stndt.train.search.waves import (
    MIN_FINITE,
    completed_members,
    optuna_distributions,
    propose_wave,
    sampler_seed,
    wave_indices,
)

ROOT = Path(__file__).resolve().parents[1]

# Real parameter names (validate_space knows only config fields): a linear float, a log float, a
# linear int, a log int, a one-point range and two fixed entries.
SPACE = {
    "lr": {"low": 1.0e-3, "high": 1.0e-2},
    "weight_decay": {"low": 1.0e-8, "high": 1.0e-3, "log": True},
    "context_forward": {"low": 1, "high": 100, "int": True},
    "warmup_epochs": {"low": 1, "high": 64, "int": True, "log": True},
    "mask_max_span": {"low": 3, "high": 3, "int": True},
    "n_layers": 2,
    "spatial": True,
}


def toy_value(p: dict) -> float:
    """Maximised at lr = 3e-3; the other parameters do not matter."""
    return -((p["lr"] - 3e-3) ** 2)


def run_waves(space: dict, seed: int, n_waves: int, wave_size: int, value=toy_value) -> list[list[dict]]:
    """Propose and 'evaluate' waves 0..n_waves-1 the way the workflow does."""
    done: list[tuple[dict, float]] = []
    waves = []
    for wave in range(n_waves):
        props = propose_wave(space, seed, wave, wave_size, done)
        done += [(p, value(p)) for p in props]
        waves.append(props)
    return waves


@pytest.fixture(scope="module")
def wave1_inputs() -> tuple[list[tuple[dict, float]], list[dict]]:
    """Wave 0's draws with toy values (seed 3, waves of 4), and the wave-1 proposals from them."""
    wave0 = propose_wave(SPACE, 3, 0, 4, [])
    completed = [(p, toy_value(p)) for p in wave0]
    return completed, propose_wave(SPACE, 3, 1, 4, completed)


# ---------------------------------------------------------------------------------------------- random
def test_wave0_and_random_method_are_sample_params():
    assert propose_wave(SPACE, 5, 0, 3, []) == [sample_params(SPACE, 5, i) for i in (0, 1, 2)]
    # random search ignores completed values: wave 2 of size 3 is members 6, 7, 8
    junk = [(sample_params(SPACE, 5, i), float(i)) for i in range(6)]
    assert propose_wave(SPACE, 5, 2, 3, junk, method="random") == [sample_params(SPACE, 5, i) for i in (6, 7, 8)]
    assert list(wave_indices(2, 3)) == [6, 7, 8]


def test_too_few_finite_values_fall_back_to_random_draws():
    # one finite value (< MIN_FINITE = 2): nothing to fit a GP to
    assert MIN_FINITE == 2
    completed = [(sample_params(SPACE, 1, 0), 0.2), (sample_params(SPACE, 1, 1), float("nan"))]
    assert propose_wave(SPACE, 1, 1, 2, completed) == [sample_params(SPACE, 1, i) for i in (2, 3)]


# ----------------------------------------------------------------------------------------------- bayes
def test_bayes_wave_respects_space_types_and_fixed_entries(wave1_inputs):
    _, props = wave1_inputs
    assert len(props) == 4
    reference = sample_params(SPACE, 3, 4)
    dists = optuna_distributions(SPACE)
    for p in props:
        assert list(p) == list(reference)  # same keys, same (sorted) order as sample_params
        for name, value in p.items():
            assert type(value) is type(reference[name]), name  # int stays int, float float, bool bool
        assert p["n_layers"] == 2 and p["spatial"] is True
        assert p["mask_max_span"] == 3  # one-point range
        assert 1e-3 <= p["lr"] <= 1e-2 and 1e-8 <= p["weight_decay"] <= 1e-3
        assert 1 <= p["context_forward"] <= 100 and 1 <= p["warmup_epochs"] <= 64
    assert dists["weight_decay"].log and dists["warmup_epochs"].log and not dists["lr"].log
    assert (dists["context_forward"].low, dists["context_forward"].high) == (1, 100)  # inclusive ints
    assert "n_layers" not in dists and "spatial" not in dists
    # pending (asked, untold) trials make the wave's points differ
    assert len({p["lr"] for p in props}) == 4


def test_changing_one_completed_value_changes_the_proposals(wave1_inputs):
    completed, props = wave1_inputs
    changed = list(completed)
    changed[2] = (changed[2][0], changed[2][1] + 1e-5)  # toy values are ~ -1e-5: a big change
    assert propose_wave(SPACE, 3, 1, 4, changed) != props


def test_order_of_dict_keys_does_not_matter(wave1_inputs):
    completed, props = wave1_inputs
    space_rev = dict(reversed(list(SPACE.items())))
    completed_rev = [(dict(reversed(list(p.items()))), v) for p, v in completed]
    assert propose_wave(space_rev, 3, 1, 4, completed_rev) == props


def test_extra_keys_of_completed_params_are_ignored(wave1_inputs):
    completed, props = wave1_inputs
    with_fixed = [({**p, "max_epochs": 100, "seed": 123456789, "contrastive": False}, v) for p, v in completed]
    assert propose_wave(SPACE, 3, 1, 4, with_fixed) == props


def test_non_finite_value_is_a_failed_trial(wave1_inputs):
    """A diverged member is told as FAILED, which the GP ignores: the proposals equal those made
    without that member at all (trial numbers do not enter the GP)."""
    completed, _ = wave1_inputs
    dropped = propose_wave(SPACE, 3, 1, 4, completed[:3])
    for bad in (float("nan"), float("inf"), None):
        assert propose_wave(SPACE, 3, 1, 4, [*completed[:3], (completed[3][0], bad)]) == dropped


def test_same_inputs_same_proposals_in_a_fresh_process(wave1_inputs):
    completed, props = wave1_inputs
    code = (
        "import json, sys; from stndt.train.search.waves import propose_wave; a = json.load(sys.stdin); "
        "print(json.dumps(propose_wave(a['space'], 3, 1, 4, [tuple(c) for c in a['completed']])))"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps({"space": SPACE, "completed": completed}),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        check=True,
        timeout=300,
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == props  # JSON round-trips floats exactly


def test_later_waves_crowd_towards_the_optimum():
    """Toy problem: value = -(lr - 3e-3)^2 with lr uniform on [1e-3, 1e-2] and an irrelevant int.

    Tolerance: wave 2's median |lr - 3e-3| must be below 5e-4. For 8 uniform random draws
    P(|lr - 3e-3| < 5e-4) = 1e-3 / 9e-3 = 0.11 each, and a median below 5e-4 needs at least 4 of 8
    draws there: probability < 1% (binomial), so a sampler that ignored the values would fail this.
    Random draws' median distance is 2.5e-3 in expectation; the GP's is ~1e-5 here (seed 0).
    """
    space = {"lr": SPACE["lr"], "context_forward": SPACE["context_forward"], "n_layers": 2}
    waves = run_waves(space, seed=0, n_waves=3, wave_size=8)
    bayes = statistics.median(abs(p["lr"] - 3e-3) for p in waves[2])
    random = statistics.median(abs(sample_params(space, 0, i)["lr"] - 3e-3) for i in wave_indices(2, 8))
    assert bayes < 5e-4
    assert bayes < random
    assert waves[0] == [sample_params(space, 0, i) for i in range(8)]


# ------------------------------------------------------------------------------------------- errors
def test_bad_inputs_raise():
    completed = [(sample_params(SPACE, 0, i), 0.1 * i) for i in range(4)]
    with pytest.raises(ValueError, match="search method"):
        propose_wave(SPACE, 0, 1, 4, completed, method="grid")
    with pytest.raises(ValueError, match="only 4 members come before"):
        propose_wave(SPACE, 0, 1, 4, [*completed, completed[0]])
    outside = [({**completed[0][0], "lr": 0.5}, 0.3), *completed[1:]]
    with pytest.raises(ValueError, match="outside the search space"):
        propose_wave(SPACE, 0, 1, 4, outside)
    missing = [({k: v for k, v in completed[0][0].items() if k != "lr"}, 0.3), *completed[1:]]
    with pytest.raises(ValueError, match="lack sampled key"):
        propose_wave(SPACE, 0, 1, 4, missing)
    with pytest.raises(ValueError, match="wave_size"):
        propose_wave(SPACE, 0, 0, 0, [])


def test_sampler_seed_depends_on_seed_and_wave():
    # recorded value (SeedSequence([0, 1, 0xBA7E5]).generate_state(1)): changing the derivation
    # changes every Bayesian proposal of existing runs, so it must be a deliberate change
    assert sampler_seed(0, 1) == 2835889315
    assert len({sampler_seed(s, w) for s in range(3) for w in range(3)}) == 9


# ------------------------------------------------------------------------------ completed members
def _write_member(folder: Path, given: dict, value) -> None:
    folder.mkdir(parents=True)
    (folder / "params.json").write_text(
        json.dumps({"hyperparameters": {}, "given": given, "training": {"best_epoch": 10, "val co-bps": value}})
    )


def test_completed_members_reads_params_json_in_member_order(tmp_path):
    p0, p1, p2 = (sample_params(SPACE, 0, i) for i in range(3))
    _write_member(tmp_path / "m001", {**p1, "max_epochs": 100, "seed": 7}, 0.25)
    _write_member(tmp_path / "m000", {**p0, "max_epochs": 100, "seed": 6}, 0.125)
    _write_member(tmp_path / "m002", p2, None)  # no val co-bps
    files = {m: tmp_path / m / "params.json" for m in ("m002", "m001", "m000")}  # any order
    got = completed_members(files, SPACE)
    assert [v for _, v in got[:2]] == [0.125, 0.25] and math.isnan(got[2][1])
    sampled = ["context_forward", "lr", "mask_max_span", "warmup_epochs", "weight_decay"]
    assert got[0][0] == {k: p0[k] for k in sampled}  # fixed and training keys dropped
    assert completed_members(files)[1][0] == {**p1, "max_epochs": 100, "seed": 7}  # no space: as given
    with pytest.raises(FileNotFoundError, match="m003"):
        completed_members({"m003": tmp_path / "m003" / "params.json"})
