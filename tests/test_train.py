"""Tests of stndt.train: seeded search space, member training, kill -9 / resume reproducibility.

Data are tiny fake tensors files in the project's format (tests/tiny_tensors.py): Poisson counts
from smooth low-rank log-rates, so held-out neurons are predictable from held-in ones.
"""

from __future__ import annotations

import json
import math
import os
import signal
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from tiny_tensors import (
    N_IN,
    N_OUT,
    T_FP,
    TINY_MEMBER,
    T,
    assert_same_member_outputs,
    h5_arrays,
    kill_when,
    log_without_timing,
    start_runner,
    write_phase,
    write_tiny_tensors,
)

from stndt.members import OUTPUT_FILES
from stndt.train.checkpoint import STATE_FILE
from stndt.train.inference import VAL_CO_BPS
from stndt.train.outputs import LOG_COLUMNS, TIMING_COLUMNS
from stndt.train.search import space as ss
from stndt.train.solo import train_member

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------ fake data
@pytest.fixture(scope="module")
def tensors(tmp_path_factory):
    """val.h5 / test.h5 with 3 smooth latent factors driving 20 neurons."""
    return write_tiny_tensors(tmp_path_factory.mktemp("tensors"), 96, 32, 128, 32)


TINY = TINY_MEMBER


# ----------------------------------------------------------------------------------------- search space
SPACE = {
    "dropout": {"low": 0.0, "high": 0.4},
    "lr": {"low": 1e-5, "high": 1e-2, "log": True},
    "context_forward": {"low": 1, "high": 100, "int": True},
    "mask_max_span": {"low": 1, "high": 7, "int": True, "log": True},
    "n_layers": 4,
}


def test_sampler_is_deterministic_and_independent_of_member_count_and_order():
    few = [ss.sample_params(SPACE, 11, i) for i in range(3)]
    many = [ss.sample_params(SPACE, 11, i) for i in range(12)]
    assert few == many[:3]
    reordered = dict(reversed(list(SPACE.items())))
    assert [ss.sample_params(reordered, 11, i) for i in range(3)] == few
    assert len({json.dumps(p, sort_keys=True) for p in many}) == 12  # members differ
    assert ss.sample_params(SPACE, 12, 0) != few[0]  # the seed matters
    # adding a parameter leaves the others' draws unchanged
    extended = {**SPACE, "mask_ratio": {"low": 0.1, "high": 0.4}}
    assert {k: v for k, v in ss.sample_params(extended, 11, 1).items() if k != "mask_ratio"} == few[1]
    assert ss.member_seed(5, 2) == ss.member_seed(5, 2) != ss.member_seed(5, 3)


def test_sampler_respects_bounds_log_and_int():
    draws = [ss.sample_params(SPACE, 0, i) for i in range(400)]
    dr = np.array([d["dropout"] for d in draws])
    lr = np.array([d["lr"] for d in draws])
    cf = [d["context_forward"] for d in draws]
    span = [d["mask_max_span"] for d in draws]
    assert dr.min() >= 0.0 and dr.max() <= 0.4 and dr.std() > 0.08
    assert lr.min() >= 1e-5 and lr.max() <= 1e-2
    # log-uniform: about half the draws below the geometric mean (uniform would give ~3%)
    assert 0.4 < np.mean(lr < math.sqrt(1e-5 * 1e-2)) < 0.6
    assert all(type(v) is int and 1 <= v <= 100 for v in cf)
    assert min(cf) <= 3 and max(cf) >= 98  # inclusive ends are reachable
    assert all(type(v) is int and 1 <= v <= 7 for v in span) and set(span) == set(range(1, 8))
    assert np.mean(np.array(span) <= 2) > 0.4  # log-int favours small spans
    assert all(d["n_layers"] == 4 for d in draws)


@pytest.mark.parametrize(
    "space, key",
    [
        ({"not_a_param": 1}, "not_a_param"),
        ({"dropout": {"low": 0.5, "high": 0.1}}, "dropout"),
        ({"lr": {"low": 0.0, "high": 1e-2, "log": True}}, "lr"),
        ({"lr": {"low": 1e-4}}, "lr"),
        ({"lr": {"low": 1e-4, "high": 1e-3, "scale": "log"}}, "lr"),
        ({"context_forward": {"low": 1.5, "high": 9, "int": True}}, "context_forward"),
        ({"n_heldin": 3}, "n_heldin"),
        ({"context_forward": {"low": 1, "high": 100}}, "context_forward"),  # int field needs int: true
        ({"spatial": {"low": 0, "high": 1}}, "spatial"),  # bool cannot be a range
        ({"n_layers": "four"}, "n_layers"),  # fixed value of wrong type
    ],
)
def test_validate_space_names_bad_key(space, key):
    with pytest.raises(ValueError, match=f"where.{key}"):
        ss.validate_space(space, "where")


def test_split_params_maps_names_and_rejects_unknown():
    shapes = {"n_heldin": N_IN, "n_heldout": N_OUT, "t_bins": T, "t_forward": T_FP}
    params = {
        "dropout": 0.2,
        "contrast_lambda": 0.5,
        "lr": 1e-3,
        "warmup_epochs": 10.0,
        "n_layers": 2,
        "spatial": False,
    }
    model, obj, train = ss.split_params(params, shapes)
    assert (model.dropout, model.n_layers, model.spatial, model.n_heldin) == (0.2, 2, False, N_IN)
    assert (obj.contrast_lambda, train.lr, train.warmup_epochs) == (0.5, 1e-3, 10)
    with pytest.raises(ValueError, match="bogus"):
        ss.split_params({**params, "bogus": 1}, shapes)
    with pytest.raises(ValueError, match="warmup_epochs"):
        ss.split_params({**params, "warmup_epochs": 2.5}, shapes)
    with pytest.raises(ValueError, match="t_bins"):
        ss.split_params({**params, "t_bins": 3}, shapes)


def test_repo_search_spaces_file():
    spaces = ss.load_search_spaces(REPO / "config" / "search_spaces.yaml")
    assert set(spaces) == {"mc_maze", "mc_rtt", "area2_bump", "dmfc_rsg"}
    assert ss.search_space_for("mc_maze_small", spaces) == spaces["mc_maze"]
    assert spaces["dmfc_rsg"]["context_forward"] == {"low": 40, "high": 239, "int": True}  # randint(40, 240)
    assert spaces["area2_bump"]["mask_ratio"]["high"] == 0.6
    over = ss.search_space_for("mc_maze", spaces, overrides={"warmup_epochs": {"low": 0, "high": 20, "int": True}})
    assert over["warmup_epochs"]["high"] == 20
    shapes = {"n_heldin": 137, "n_heldout": 45, "t_bins": 140, "t_forward": 40}
    for space in spaces.values():  # every draw builds valid configs
        for i in range(3):
            model, obj, _ = ss.split_params(ss.sample_params(space, 1, i), shapes)
            assert model.n_layers == space["n_layers"]


# ------------------------------------------------------------------------------------------ training
def test_tiny_stndt_learns_and_writes_outputs(tensors, tmp_path):
    from nlb_tools.evaluation import bits_per_spike

    val, test = tensors
    out = tmp_path / "m"
    summary = train_member(val, test, out, {**TINY, "max_epochs": 90}, progress=False)
    assert {p.name for p in out.iterdir()} == set(OUTPUT_FILES) | {"train.log"}  # state.pt removed
    rows = log_without_timing(out / "train_log.csv")
    assert rows[0] == [c for c in LOG_COLUMNS if c not in TIMING_COLUMNS] and len(rows) == 1 + 91
    # the mean-rate model scores 0 bits/spike; the trained model must be clearly better, and better
    # than the untrained one
    assert summary[VAL_CO_BPS] > 0.15
    initial = float(rows[1][LOG_COLUMNS.index(VAL_CO_BPS)])
    assert summary[VAL_CO_BPS] > initial + 0.2
    rates = h5_arrays(out / "rates_val.h5")
    shapes = {
        "train_rates_heldin": (96, T, N_IN),
        "train_rates_heldout": (96, T, N_OUT),
        "eval_rates_heldin": (32, T, N_IN),
        "eval_rates_heldout": (32, T, N_OUT),
        "eval_rates_heldin_forward": (32, T_FP, N_IN),
        "eval_rates_heldout_forward": (32, T_FP, N_OUT),
    }
    assert {k: v.shape for k, v in rates.items()} == {f"mc_maze/{k}": s for k, s in shapes.items()}
    assert all(v.dtype == np.float32 and (v > 0).all() for v in rates.values())
    test_rates = h5_arrays(out / "rates_test.h5")
    assert test_rates["mc_maze/train_rates_heldin"].shape == (128, T, N_IN)
    # rates come from the best checkpoint: they reproduce its val co-bps
    with h5py.File(val, "r") as f:
        heldout = f["targets/mc_maze/eval_spikes_heldout"][()]
    recomputed = bits_per_spike(rates["mc_maze/eval_rates_heldout"].astype(float), heldout.astype(float))
    ckpt = torch.load(out / "best.pt", weights_only=True)
    assert recomputed == pytest.approx(ckpt["metrics"][VAL_CO_BPS], abs=1e-6)
    params = json.loads((out / "params.json").read_text())
    assert params["hyperparameters"]["lr"] == TINY["lr"] and params["training"]["best_epoch"] == ckpt["epoch"]
    from stndt.train.checkpoint import load_member

    model, _ = load_member(out)
    assert model.cfg.n_heldin == N_IN


@pytest.mark.parametrize(
    "extra",
    [
        {"spatial": False},  # NDT
        {"contrastive": False},
        {"contrast_start_epoch": 3},  # paper schedule: contrast added later
        {"bf16": True, "mask_max_span": 3, "mask_span_ramp_start": 0, "mask_span_ramp_end": 2},
    ],
)
def test_variants_run(tensors, tmp_path, extra):
    val, _ = tensors
    summary = train_member(val, None, tmp_path, {**TINY, "max_epochs": 6, **extra}, progress=False)
    assert math.isfinite(summary[VAL_CO_BPS]) and not (tmp_path / "rates_test.h5").exists()
    rows = log_without_timing(tmp_path / "train_log.csv")[2:]  # skip header and epoch 0
    contrast = [float(r[LOG_COLUMNS.index("contrast")]) for r in rows]
    if extra.get("contrastive") is False:
        assert contrast == [0.0] * 6
    elif "contrast_start_epoch" in extra:
        assert contrast[:3] == [0.0] * 3 and all(c > 0 for c in contrast[3:])
    else:
        assert all(c > 0 for c in contrast)


def test_bad_inputs_name_the_file(tensors, tmp_path):
    val, _ = tensors
    rng = np.random.default_rng(1)
    other = tmp_path / "other_test.h5"
    write_phase(
        other,
        rng.poisson(1, (8, T + T_FP, N_IN + N_OUT + 2)).astype(np.float32),
        rng.poisson(1, (4, T + T_FP, N_IN + N_OUT + 2)).astype(np.float32),
        "test",
    )
    with pytest.raises(ValueError, match="other_test.h5"):
        train_member(val, other, tmp_path / "m", {**TINY, "max_epochs": 1})
    noattr = tmp_path / "noattr.h5"
    with h5py.File(val) as src, h5py.File(noattr, "w") as dst:
        for k in src:
            src.copy(k, dst)
    with pytest.raises(ValueError, match="noattr.h5.*layout"):
        train_member(noattr, None, tmp_path / "m", {**TINY, "max_epochs": 1})
    with pytest.raises(ValueError, match="bogus"):
        train_member(val, None, tmp_path / "m", {**TINY, "bogus": 1})
    assert not any((tmp_path / "m").glob("rates_*.h5"))


def test_state_of_other_params_is_not_resumed(tensors, tmp_path):
    val, _ = tensors
    a = train_member(val, None, tmp_path / "a", {**TINY, "max_epochs": 3, "keep_state": True}, progress=False)
    assert (tmp_path / "a" / STATE_FILE).exists()
    # same folder, other lr: the kept state must be ignored, giving the same result as a fresh run
    b = train_member(val, None, tmp_path / "a", {**TINY, "max_epochs": 3, "lr": 1e-3}, progress=False)
    c = train_member(val, None, tmp_path / "c", {**TINY, "max_epochs": 3, "lr": 1e-3}, progress=False)
    assert b[VAL_CO_BPS] == c[VAL_CO_BPS] != a[VAL_CO_BPS]


def test_deterministic_setting_turns_on_torch_s_deterministic_kernels(tensors, tmp_path, monkeypatch):
    val, _ = tensors
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    plain = train_member(val, None, tmp_path / "plain", {**TINY, "max_epochs": 2}, progress=False)
    assert not torch.are_deterministic_algorithms_enabled()
    try:
        det = train_member(
            val, None, tmp_path / "det", {**TINY, "max_epochs": 2, "deterministic": True}, progress=False
        )
        assert torch.are_deterministic_algorithms_enabled()
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    finally:
        torch.use_deterministic_algorithms(False)  # process-wide: leave the other tests as they were
    assert det[VAL_CO_BPS] == plain[VAL_CO_BPS]  # on the CPU the kernels were deterministic already
    with pytest.raises(ValueError, match="deterministic"):
        train_member(val, None, tmp_path / "bad", {**TINY, "deterministic": "yes"})


# --------------------------------------------------------------------------------------- kill / resume
RUNNER = textwrap.dedent("""
    import json, sys
    from stndt.train.solo import train_member
    val, test, out, params = sys.argv[1:5]
    train_member(val, test, out, json.loads(params), progress=False)
""")
RESUME_PARAMS = {
    **TINY,
    "max_epochs": 50,
    "val_every": 4,
    "checkpoint_every_epochs": 3,
    "mask_max_span": 3,
    "mask_span_ramp_start": 0,
    "mask_span_ramp_end": 10,
    "dropout": 0.1,
    "dropout_rates": 0.1,
    "dropout_embedding": 0.1,
}


def _start(tensors, out):
    return start_runner(RUNNER, str(tensors[0]), str(tensors[1]), str(out), json.dumps(RESUME_PARAMS))


def _kill_when(proc, condition):
    kill_when(proc, condition, timeout=60.0)


def test_kill_9_and_resume_is_bitwise_identical(tensors, tmp_path):
    ref_dir, run_dir = tmp_path / "ref", tmp_path / "killed"
    ref = _start(tensors, ref_dir)  # the uninterrupted run, in parallel with the killed one
    proc = _start(tensors, run_dir)
    state = run_dir / STATE_FILE
    _kill_when(proc, state.exists)  # 1: right after the first save
    assert not any((run_dir / f).exists() for f in OUTPUT_FILES)
    first = state.stat().st_mtime_ns
    proc = _start(tensors, run_dir)
    _kill_when(proc, lambda: state.stat().st_mtime_ns != first)  # 2: just after a later save ...
    assert not any((run_dir / f).exists() for f in OUTPUT_FILES)
    proc = _start(tensors, run_dir)
    time.sleep(2.2)  # 3: ... and at an arbitrary moment
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    proc = _start(tensors, run_dir)
    assert proc.wait() == 0, proc.stderr.read()[-3000:]
    assert ref.wait() == 0, ref.stderr.read()[-3000:]
    assert (run_dir / "train.log").read_text().count("resumed from") >= 2
    assert_same_member_outputs(ref_dir, run_dir)
    assert not (run_dir / STATE_FILE).exists()


def test_sigterm_saves_the_state_logs_why_and_the_rerun_resumes(tensors, tmp_path):
    """SLURM's SIGTERM before a time-limit kill or a preemption: the epoch in progress ends, the state is
    saved (periodic saves are off here, so only the signal can have saved it) and the log says so."""
    params = {**RESUME_PARAMS, "max_epochs": 150, "checkpoint_every_epochs": 100000, "checkpoint_every_s": 1e9}
    log_file = tmp_path / "train.log"
    proc = start_runner(RUNNER, str(tensors[0]), str(tensors[1]), str(tmp_path), json.dumps(params))
    t0 = time.monotonic()
    while not (log_file.exists() and "parameters" in log_file.read_text()):
        assert proc.poll() is None, proc.stderr.read()[-2000:]
        assert time.monotonic() - t0 < 60, "training did not start"
        time.sleep(0.02)
    time.sleep(1.0)  # some epochs in
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 143
    text = log_file.read_text()
    assert "SIGTERM received" in text and "terminated by SIGTERM after epoch" in text
    saved = torch.load(tmp_path / STATE_FILE, map_location="cpu", weights_only=False)
    assert f"after epoch {saved['epoch']}:" in text and 1 <= saved["epoch"] < 150
    assert not any((tmp_path / f).exists() for f in OUTPUT_FILES)
    rerun = start_runner(RUNNER, str(tensors[0]), str(tensors[1]), str(tmp_path), json.dumps(params))
    assert rerun.wait(timeout=300) == 0, rerun.stderr.read()[-2000:]
    assert f"resumed from {tmp_path / STATE_FILE} at epoch {saved['epoch']}" in log_file.read_text()


def test_finished_state_rewrites_outputs_without_training(tensors, tmp_path):
    """A kill while outputs are written leaves a state marked done: the rerun only writes outputs."""
    val, test = tensors
    params = {**TINY, "max_epochs": 4, "keep_state": True}
    train_member(val, test, tmp_path, params, progress=False)
    best = torch.load(tmp_path / "best.pt", weights_only=True)
    rates = h5_arrays(tmp_path / "rates_test.h5")
    log_text = (tmp_path / "train_log.csv").read_text()
    (tmp_path / "rates_test.h5").unlink()
    (tmp_path / ".rates_val.h5.abc.tmp").write_bytes(b"half-written")  # debris of a kill -9
    train_member(val, test, tmp_path, params, progress=False)
    assert (tmp_path / "train_log.csv").read_text() == log_text  # no epoch trained again
    again = torch.load(tmp_path / "best.pt", weights_only=True)
    assert all(torch.equal(best["model"][k], again["model"][k]) for k in best["model"])
    new_rates = h5_arrays(tmp_path / "rates_test.h5")
    assert rates.keys() == new_rates.keys() and all(np.array_equal(rates[k], new_rates[k]) for k in rates)
    assert not (tmp_path / ".rates_val.h5.abc.tmp").exists()


# ------------------------------------------------------------------------------------- damaged state
def test_damaged_state_is_set_aside_and_the_member_starts_afresh(tensors, tmp_path):
    """A state.pt that cannot be loaded used to fail every rerun of its member. Now it is renamed aside
    (bytes kept), a WARNING naming it and the error goes to train.log, and the member trains afresh to
    exactly a clean run's result."""
    import io as _io
    import re

    val, test = tensors
    params = {**TINY, "max_epochs": 4, "keep_state": True}
    ref = tmp_path / "ref"
    train_member(val, test, ref, params, progress=False)
    good = (ref / STATE_FILE).read_bytes()
    foreign = _io.BytesIO()
    torch.save({"format": "someone-elses-v3", "epoch": 2}, foreign)
    damages = {  # kind -> (bytes, what the warning must say about the error)
        "truncated": (good[: len(good) // 2], "RuntimeError: PytorchStreamReader failed"),
        "garbage": (b"not a checkpoint\n" * 50, "UnpicklingError"),
        "empty": (b"", "EOFError"),
        "foreign": (foreign.getvalue(), "format 'someone-elses-v3'"),
    }
    for kind, (data, error) in damages.items():
        out = tmp_path / kind
        out.mkdir()
        (out / STATE_FILE).write_bytes(data)
        train_member(val, test, out, params, progress=False)
        aside = sorted(out.glob(f"{STATE_FILE}.corrupt-*"))
        assert len(aside) == 1 and aside[0].read_bytes() == data, kind
        assert re.fullmatch(r"state\.pt\.corrupt-\d{8}T\d{6}\.\d{6}Z", aside[0].name)
        warnings = [
            ln for ln in (out / "train.log").read_text().splitlines() if " WARNING " in ln and "NOT CONVERGED" not in ln
        ]  # trained to the cap: flagged too
        assert len(warnings) == 1 and str(out / STATE_FILE) in warnings[0], (kind, warnings)
        assert error in warnings[0] and aside[0].name in warnings[0] and "afresh" in warnings[0], kind
        assert_same_member_outputs(ref, out)


def test_set_aside_never_overwrites_and_unreadable_state_is_not_set_aside(tmp_path, monkeypatch):
    from datetime import datetime, timezone

    from stndt.train import checkpoint

    now = datetime(2025, 3, 4, 5, 6, 7, 89, tzinfo=timezone.utc)
    names = []
    for content in (b"first", b"second"):
        (tmp_path / "state.pt").write_bytes(content)
        names.append(checkpoint.set_aside(tmp_path / "state.pt", now).name)
    assert names == ["state.pt.corrupt-20250304T050607.000089Z", "state.pt.corrupt-20250304T050607.000089Z-1"]
    assert [(tmp_path / n).read_bytes() for n in names] == [b"first", b"second"]
    # an I/O error is not damage: setting the file aside would not help, so it is raised, file untouched
    (tmp_path / "state.pt").write_bytes(b"fine")
    monkeypatch.setattr(torch, "load", lambda *a, **k: (_ for _ in ()).throw(OSError(5, "Input/output error")))
    with pytest.raises(RuntimeError, match="state.pt: cannot be loaded.*Input/output error"):
        checkpoint.load_state_file(tmp_path / "state.pt")
    assert (tmp_path / "state.pt").read_bytes() == b"fine"
