"""Tests of stndt.train.pack: K members trained as one batched computation give each member exactly
its train_member result (bitwise, on CPU), leave the pack when they stop, and resume after kill -9.

Data: tiny tensors files from tests/tiny_tensors.py (Poisson counts from smooth low-rank log-rates),
as in tests/test_train.py but with fewer trials.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_tensors import assert_same_member_outputs, h5_arrays, kill_when, start_runner, write_tiny_tensors

from stndt.members import OUTPUT_FILES
from stndt.train import bookkeeping
from stndt.train.checkpoint import STATE_FILE
from stndt.train.inference import VAL_CO_BPS
from stndt.train.pack import train as pack_mod
from stndt.train.pack.train import PACK_STATE_FILE, train_pack
from stndt.train.solo import train_member

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tensors(tmp_path_factory):
    """val.h5 / test.h5: 3 smooth latent factors driving 20 neurons (64 train trials: 2 batches)."""
    return write_tiny_tensors(tmp_path_factory.mktemp("pack_tensors"), 64, 24, 40, 16)


BASE = dict(
    n_layers=2,
    n_heads=2,
    ff_hidden=16,
    batch_size=32,
    num_threads=1,
    val_every=2,
    patience=1000,
    mask_span_ramp_start=0,
    mask_span_ramp_end=4,
    mask_max_span=3,
    max_epochs=8,
)
# Members differ in every per-member setting the pack must keep apart: seed, lr, warm-up, weight
# decay, dropouts, context band (full / banded / one-sided), span ramp and span mode, contrastive
# schedule, validation cadence, early stopping, and their own epoch budget (member 2 stops first).
MEMBERS = [
    dict(
        seed=1,
        lr=5e-3,
        warmup_epochs=2,
        weight_decay=5e-5,
        dropout=0.1,
        dropout_rates=0.05,
        dropout_embedding=0.2,
        context_forward=-1,
        context_backward=-1,
        contrast_lambda=0.3,
    ),
    dict(
        seed=2,
        lr=2e-3,
        warmup_epochs=0,
        weight_decay=1e-3,
        dropout=0.0,
        dropout_rates=0.1,
        dropout_embedding=0.0,
        context_forward=3,
        context_backward=8,
        contrast_start_epoch=3,
        mask_span_mode="reference",
        grad_clip=0.5,
    ),
    dict(
        seed=3,
        lr=8e-3,
        warmup_epochs=4,
        weight_decay=0.0,
        dropout=0.2,
        dropout_rates=0.0,
        dropout_embedding=0.1,
        context_forward=0,
        context_backward=-1,
        contrastive=False,
        max_epochs=5,
        val_every=1,
        mask_span_ramp_start=2,
        mask_span_ramp_end=6,
    ),
]


@pytest.fixture(scope="module")
def solo_runs(tensors, tmp_path_factory):
    """Each MEMBERS entry trained alone with train_member, in fp32 and in bf16 autocast."""
    root = tmp_path_factory.mktemp("solo")
    out = {}
    for bf16 in (False, True):
        for i, extra in enumerate(MEMBERS):
            d = root / f"bf16_{bf16}" / f"m{i}"
            out[bf16, i] = (d, train_member(*tensors, d, {**BASE, **extra, "bf16": bf16}, progress=False))
    return out


@pytest.mark.parametrize("bf16", [False, True])
def test_packed_members_equal_solo_members_bitwise(tensors, solo_runs, tmp_path, bf16):
    dirs = [tmp_path / f"m{i}" for i in range(len(MEMBERS))]
    summaries = train_pack(*tensors, dirs, [{**BASE, **m, "bf16": bf16} for m in MEMBERS], progress=False)
    for i, d in enumerate(dirs):
        solo_dir, solo_summary = solo_runs[bf16, i]
        assert {p.name for p in d.iterdir()} >= set(OUTPUT_FILES) | {"train.log"}
        assert_same_member_outputs(solo_dir, d)
        assert {k: v for k, v in summaries[i].items() if "seconds" not in k} == {
            k: v for k, v in solo_summary.items() if "seconds" not in k
        }
    assert [s["epochs_run"] for s in summaries] == [8, 8, 5]  # member 2's own budget
    assert summaries[0][VAL_CO_BPS] != summaries[1][VAL_CO_BPS]  # the members really differ
    assert not (dirs[0] / PACK_STATE_FILE).exists() and not (dirs[0] / STATE_FILE).exists()


# The paper's usual pack: every member with attention dropout and a band (or every one with full
# context), so the attention core of the whole pack runs as one batched computation.
UNIFORM_BANDS = {"banded": [(3, 8), (0, 5), (6, 2)], "full": [(-1, -1)] * 3}


@pytest.mark.parametrize("bf16", [False, True])
@pytest.mark.parametrize("bands", sorted(UNIFORM_BANDS))
def test_batched_attention_core_equals_solo_members_bitwise(tensors, tmp_path, monkeypatch, bands, bf16):
    from stndt.train.pack.model import PackedSTNDT

    members = [
        {
            **BASE,
            "seed": 4 + i,
            "lr": 3e-3 * (i + 1),
            "dropout": 0.1 + 0.05 * i,
            "max_epochs": 4,
            "context_forward": fwd,
            "context_backward": bwd,
            "bf16": bf16,
        }
        for i, (fwd, bwd) in enumerate(UNIFORM_BANDS[bands])
    ]
    for i, m in enumerate(members):
        train_member(*tensors, tmp_path / f"solo{i}", m, progress=False)

    def per_member_core(*args):
        raise AssertionError("the per-member attention core ran: the batched path was not taken")

    monkeypatch.setattr(PackedSTNDT, "_attend", per_member_core)
    dirs = [tmp_path / f"m{i}" for i in range(len(members))]
    train_pack(*tensors, dirs, members, progress=False)
    for i, d in enumerate(dirs):
        assert_same_member_outputs(tmp_path / f"solo{i}", d)


def test_packed_cool_downs_equal_solo_cool_downs_bitwise(tensors, tmp_path, monkeypatch):
    # the rule fires for every member at its validation after epoch 4; with cooldown_fraction 0.5 members
    # 0 and 1 (validated every 2 epochs) anneal for 2 epochs, member 2 for 1 (its own cap is epoch 5):
    # each member's learning rate follows its own cool-down inside the pack
    monkeypatch.setattr(bookkeeping, "should_stop", lambda epoch, *a: epoch >= 4)
    params = [{**BASE, **m, "bf16": False, "cooldown_fraction": 0.5} for m in MEMBERS]
    solo = [train_member(*tensors, tmp_path / f"solo{i}", p, progress=False) for i, p in enumerate(params)]
    dirs = [tmp_path / f"m{i}" for i in range(len(MEMBERS))]
    packed = train_pack(*tensors, dirs, params, progress=False)
    assert [s["epochs_run"] for s in solo] == [6, 6, 5] and all(s["converged"] for s in solo)
    for i, d in enumerate(dirs):
        assert_same_member_outputs(tmp_path / f"solo{i}", d)
        assert {k: v for k, v in packed[i].items() if "seconds" not in k} == {
            k: v for k, v in solo[i].items() if "seconds" not in k
        }


def test_pack_engine_with_one_member_is_train_member(tensors, solo_runs, tmp_path):
    """The packed engine itself (not the K=1 shortcut of train_pack) reproduces train_member."""
    summaries = pack_mod._run_with_logs(
        tensors[0], tensors[1], [tmp_path / "m"], [{**BASE, **MEMBERS[0], "bf16": False}], False
    )
    assert_same_member_outputs(solo_runs[False, 0][0], tmp_path / "m")
    assert summaries[0][VAL_CO_BPS] == solo_runs[False, 0][1][VAL_CO_BPS]
    one = train_pack(*tensors, [tmp_path / "k1"], [{**BASE, **MEMBERS[0], "bf16": False}], progress=False)
    assert_same_member_outputs(solo_runs[False, 0][0], tmp_path / "k1")
    assert one[0]["epochs_run"] == 8


def test_stopped_members_leave_the_pack(tensors, tmp_path, monkeypatch):
    """Members stopped by early stopping or by their own budget cost no compute afterwards."""
    sizes = []
    real = pack_mod.pack_loss

    def spy(pack, batch, *args, **kwargs):
        sizes.append(batch.shape[0])
        assert pack.size == batch.shape[0]
        return real(pack, batch, *args, **kwargs)

    monkeypatch.setattr(pack_mod, "pack_loss", spy)
    members = [
        dict(seed=1, max_epochs=6),
        dict(seed=2, max_epochs=2),  # own budget
        dict(seed=3, max_epochs=6, patience=0, stop_rule="cobps", val_every=3),
    ]  # early stop at 3
    summaries = train_pack(
        *tensors, [tmp_path / f"m{i}" for i in range(3)], [{**BASE, **m} for m in members], progress=False
    )
    assert [s["stop_reason"] for s in summaries] == ["max_epochs", "max_epochs", "early_stopping"]
    assert [s["epochs_run"] for s in summaries] == [6, 2, 3]
    assert sizes == [3] * 4 + [2] * 2 + [1] * 6  # 2 steps per epoch


@pytest.mark.parametrize(
    "change, field",
    [({"n_layers": 1}, "n_layers"), ({"spatial": False}, "spatial"), ({"batch_size": 16}, "batch_size")],
)
def test_members_that_cannot_share_a_batch_are_refused(tensors, tmp_path, change, field):
    with pytest.raises(ValueError, match=f"'{field}'"):
        train_pack(*tensors, [tmp_path / "a", tmp_path / "b"], [BASE, {**BASE, **change}], progress=False)
    with pytest.raises(ValueError, match="folders"):
        train_pack(*tensors, [tmp_path / "a"], [BASE, BASE], progress=False)


# --------------------------------------------------------------------------------------- kill / resume
RUNNER = textwrap.dedent("""
    import json, sys
    from stndt.train.pack.train import train_pack
    val, test, root, members = sys.argv[1:5]
    members = json.loads(members)
    train_pack(val, test, [f"{root}/m{i}" for i in range(len(members))], members, progress=False)
""")
RESUME = [{**BASE, **m, "max_epochs": 24, "checkpoint_every_epochs": 2} for m in MEMBERS[:2]] + [
    {**BASE, **MEMBERS[2], "checkpoint_every_epochs": 2, "max_epochs": 9}
]


def _start(tensors, root):
    return start_runner(RUNNER, str(tensors[0]), str(tensors[1]), str(root), json.dumps(RESUME))


def _kill_when(proc, condition):
    kill_when(proc, condition, timeout=120.0)


def test_kill_9_and_resume_gives_the_uninterrupted_result(tensors, tmp_path):
    ref_root, run_root = tmp_path / "ref", tmp_path / "killed"
    ref = _start(tensors, ref_root)
    proc = _start(tensors, run_root)
    state = run_root / "m0" / PACK_STATE_FILE
    _kill_when(proc, state.exists)  # right after the first save
    first = state.stat().st_mtime_ns
    proc = _start(tensors, run_root)
    _kill_when(proc, lambda: state.stat().st_mtime_ns != first)  # right after a later save
    assert not any((run_root / f"m{i}" / f).exists() for i in range(3) for f in OUTPUT_FILES)
    proc = _start(tensors, run_root)
    assert proc.wait() == 0, proc.stderr.read()[-3000:]
    assert ref.wait() == 0, ref.stderr.read()[-3000:]
    assert (run_root / "m1" / "train.log").read_text().count("resumed pack from") == 2
    for i in range(3):
        assert_same_member_outputs(ref_root / f"m{i}", run_root / f"m{i}")
    assert not state.exists()


def test_damaged_pack_state_is_set_aside_and_the_pack_starts_afresh(tensors, solo_runs, tmp_path):
    """As a damaged state.pt (tests/test_train.py): the file is renamed aside with its bytes, every
    member's train.log gets one WARNING naming it and the error, and the pack trains afresh to the
    result it gives uninterrupted (= each member's solo result)."""
    import io as _io
    import re

    partial = _io.BytesIO()
    torch.save({"format": pack_mod.PACK_STATE_FORMAT, "epoch": 2}, partial)  # right format, keys missing
    damages = {
        "garbage": (b"not a checkpoint\n" * 50, "UnpicklingError"),
        "partial": (partial.getvalue(), "without fingerprint"),
    }
    for kind, (data, error) in damages.items():
        dirs = [tmp_path / kind / f"m{i}" for i in range(len(MEMBERS))]
        dirs[0].mkdir(parents=True)
        (dirs[0] / PACK_STATE_FILE).write_bytes(data)
        train_pack(*tensors, dirs, [{**BASE, **m, "bf16": False} for m in MEMBERS], progress=False)
        aside = sorted(dirs[0].glob(f"{PACK_STATE_FILE}.corrupt-*"))
        assert len(aside) == 1 and aside[0].read_bytes() == data, kind
        assert re.fullmatch(r"pack_state\.pt\.corrupt-\d{8}T\d{6}\.\d{6}Z", aside[0].name)
        for i, d in enumerate(dirs):
            warnings = [
                ln
                for ln in (d / "train.log").read_text().splitlines()
                if " WARNING " in ln and "NOT CONVERGED" not in ln
            ]  # trained to the cap: flagged too
            assert len(warnings) == 1 and str(dirs[0] / PACK_STATE_FILE) in warnings[0], (kind, i, warnings)
            assert error in warnings[0] and aside[0].name in warnings[0] and "afresh" in warnings[0], (kind, i)
            assert_same_member_outputs(solo_runs[False, i][0], d)
        assert not (dirs[0] / PACK_STATE_FILE).exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_pack_matches_solo_to_rounding(tensors, tmp_path):
    """On CUDA batched kernels round differently from the solo ones, so equality is to a tolerance.

    Provisional bound (not yet measured on a GPU: the session that built this had none); the printed
    differences are the measurement to record.
    """
    members = [{**BASE, **m, "device": "cuda", "max_epochs": 6} for m in MEMBERS]
    packed = train_pack(*tensors, [tmp_path / f"p{i}" for i in range(3)], members, progress=False)
    for i, params in enumerate(members):
        solo = train_member(*tensors, tmp_path / f"s{i}", params, progress=False)
        ra, rb = h5_arrays(tmp_path / f"s{i}" / "rates_val.h5"), h5_arrays(tmp_path / f"p{i}" / "rates_val.h5")
        rel = max(float(np.max(np.abs(ra[k] - rb[k]) / (np.abs(ra[k]) + 1e-6))) for k in ra)
        d_cobps = abs(solo[VAL_CO_BPS] - packed[i][VAL_CO_BPS])
        print(f"member {i}: |d val co-bps| = {d_cobps:.2e}, max relative rate difference = {rel:.2e}")
        assert d_cobps < 5e-3 and rel < 5e-2
