"""Tests that fail when the science breaks (issue 11), with values worked out by hand in comments.

Each test pins one thing a silent regression could change without any plumbing test noticing: the
learning-rate schedule, the early-stopping rule (both the published "both" rule and the co-bps-only
one) and that the loop really uses it, the reference's val masked loss, bf16 autocast in the training
step, the Fig. 5 attention ranking (column sums, not row sums), that NDT / no-contrast members share
STNDT's hyperparameter draws, the published-numbers branch of the paper tables, and the dandiset ids.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from tiny_tensors import member_files

from stndt.analysis.attention import rank_by_attention, received_attention
from stndt.evaluate.members_table import convergence_summary, members_table, unconverged_members
from stndt.io import save_h5
from stndt.members import STOP_RULE
from stndt.train import bookkeeping
from stndt.train.checkpoint import STATE_FILE
from stndt.train.config import TrainConfig
from stndt.train.device import cpu_has_native_bf16
from stndt.train.inference import VAL_CO_BPS, VAL_MASKED_NLL, val_masked_nll
from stndt.train.schedule import cooldown_epochs, lr_factor
from stndt.train.solo import train_member
from stndt.train.stopping import effective_patience, epoch_cap, improved, patience_floor, should_stop, steps_per_epoch

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------ learning-rate schedule
@pytest.mark.parametrize(
    "epoch, expected",
    [
        # warm-up W = 4: (e + 1) / (W + 1) = (e + 1) / 5
        (0, 0.2),
        (1, 0.4),
        (3, 0.8),
        # peak: first epoch after warm-up, progress (4 - 4) / (14 - 4) = 0 -> 0.5 (1 + cos 0) = 1
        (4, 1.0),
        # progress 2 / 10 = 0.2 -> 0.5 (1 + cos(0.2 pi)) = 0.5 (1 + 0.80901699) = 0.90450850
        (6, 0.9045084972),
        # cosine midpoint: progress 5 / 10 = 0.5 -> 0.5 (1 + cos(pi / 2)) = 0.5
        (9, 0.5),
        # progress 0.9 -> 0.5 (1 + cos(0.9 pi)) = 0.5 (1 - 0.95105652) = 0.02447174
        (13, 0.0244717419),
        # end: progress 1 -> 0.5 (1 + cos pi) = 0
        (14, 0.0),
    ],
)
def test_lr_schedule_warmup_peak_cosine_end(epoch, expected):
    assert lr_factor(epoch, warmup_epochs=4, max_epochs=14) == pytest.approx(expected, abs=1e-9)


def test_lr_schedule_without_warmup_starts_at_peak():
    # W = 0: no warm-up; epoch 0 is progress 0 -> 1; epoch 50 of 100 is the midpoint -> 0.5
    assert lr_factor(0, 0, 100) == 1.0
    assert lr_factor(50, 0, 100) == pytest.approx(0.5, abs=1e-12)


# ---------------------------------------------------------------------------------------- stopping rule
def test_improved_is_strict_and_nan_never_improves():
    assert improved(1.0, math.inf, lower_is_better=True)
    assert not improved(1.0, 1.0, lower_is_better=True)  # equal is not better (reference `<`)
    assert improved(0.9, 1.0, lower_is_better=True) and not improved(1.1, 1.0, lower_is_better=True)
    assert improved(0.2, 0.1, lower_is_better=False) and not improved(0.1, 0.1, lower_is_better=False)
    assert not improved(math.nan, math.inf, lower_is_better=True)
    assert not improved(math.nan, -math.inf, lower_is_better=False)


def test_should_stop_both_rule_boundaries():
    # published rule: both stalled for MORE than patience epochs (reference: update - best > PATIENCE)
    assert not should_stop(160, 40, 60, 100, "both")  # co-bps 120 > 100, loss 100 > 100 is false
    assert should_stop(161, 40, 60, 100, "both")  # 121 > 100 and 101 > 100
    assert not should_stop(1000, 900, 0, 100, "both")  # loss long stalled, co-bps only 100: no
    assert not should_stop(1000, 0, 900, 100, "both")  # co-bps long stalled, loss only 100: no
    assert should_stop(1000, 0, 0, 100, "both")


def test_patience_fraction_scales_the_wait_with_the_epoch_of_the_last_improvement():
    # patience 100, fraction 0.5: a criterion last improved at epoch 400 waits max(100, 200) = 200 epochs
    assert not should_stop(600, 400, 400, 100, "both", 0.5)  # 200 > 200 is false
    assert should_stop(601, 400, 400, 100, "both", 0.5)
    assert should_stop(501, 400, 400, 100, "both", 0.0)  # fixed patience: 101 > 100
    # early improvements keep the floor: improved at 40 -> max(100, 20) = 100
    assert not should_stop(140, 40, 40, 100, "both", 0.5) and should_stop(141, 40, 40, 100, "both", 0.5)
    # each criterion gets its own patience: loss improved late (600 -> waits 300), co-bps early (100)
    assert not should_stop(900, 100, 600, 100, "both", 0.5) and should_stop(901, 100, 600, 100, "both", 0.5)
    assert not should_stop(599, 400, 0, 100, "cobps", 0.5) and should_stop(600, 400, 0, 100, "cobps", 0.5)
    assert effective_patience(400, 100, 0.5) == 200 and effective_patience(-1, 100, 0.5) == 100
    with pytest.raises(ValueError, match="patience_fraction"):
        TrainConfig(patience_fraction=-0.1)


def test_cooldown_length_and_its_linear_annealing_of_the_learning_rate():
    # fired after 100 epochs, fraction 0.22 -> 22 epochs, rounded up to whole validation intervals of 5
    assert cooldown_epochs(100, 0.22, 5, 400) == 25 and cooldown_epochs(100, 0.25, 5, 400) == 25
    assert cooldown_epochs(390, 0.5, 5, 400) == 10  # never past the cap
    assert cooldown_epochs(100, 0.0, 5, 400) == 0  # 0 = stop at once (the published runs)
    cool = {"start": 100, "length": 4}
    f0 = lr_factor(100, 5, 400)
    assert lr_factor(99, 5, 400, cool) == lr_factor(99, 5, 400)  # before the rule fired: the schedule
    assert [lr_factor(e, 5, 400, cool) for e in range(100, 104)] == pytest.approx([f0 * k / 5 for k in (4, 3, 2, 1)])
    with pytest.raises(ValueError, match="cooldown_fraction"):
        TrainConfig(cooldown_fraction=-0.1)


def test_patience_steps_is_a_floor_counted_in_optimizer_steps():
    # 200 steps: 40 epochs on a dataset of 5 steps per epoch (80 trials, batch 16), 20 at 10 per epoch
    assert patience_floor(20, 200, 5) == 40 and patience_floor(20, 200, 10) == 20
    assert patience_floor(20, 200, 30) == 20  # the epoch patience stays the floor
    assert patience_floor(20, 201, 10) == 21  # rounded up: never fewer steps than asked
    assert patience_floor(20, 0, 7) == 20  # 0 = no step floor (the published runs)
    with pytest.raises(ValueError, match="steps_per_epoch"):
        patience_floor(20, 200, 0)
    with pytest.raises(ValueError, match="patience_steps"):
        TrainConfig(patience_steps=-1)


def test_loop_counts_patience_steps_on_the_dataset_s_steps_per_epoch(val_tensors, tmp_path, monkeypatch):
    # 16 training trials, batch 8 -> 2 steps per epoch; patience 1 epoch but 8 steps -> 4 epochs
    patiences = []

    def spy(epoch, best_cobps_epoch, best_loss_epoch, patience, rule, patience_fraction):
        patiences.append(patience)
        return should_stop(epoch, best_cobps_epoch, best_loss_epoch, patience, rule, patience_fraction)

    monkeypatch.setattr(bookkeeping, "should_stop", spy)
    train_member(
        val_tensors,
        None,
        tmp_path,
        {**LOOP, "max_epochs": 4, "batch_size": 8, "patience": 1, "patience_steps": 8},
        progress=False,
    )
    assert patiences and set(patiences) == {4}


def test_a_member_anneals_after_the_rule_fires_then_stops_converged(val_tensors, tmp_path, monkeypatch):
    # the rule fires at the validation after epoch 8; cool-down 0.5 x 8 = 4 epochs, then the stop
    asked = []

    def fires_at_8(epoch, *args):
        asked.append(epoch)
        return epoch >= 8

    monkeypatch.setattr(bookkeeping, "should_stop", fires_at_8)
    cfg = {**LOOP, "max_epochs": 20, "cooldown_fraction": 0.5}
    summary = train_member(val_tensors, None, tmp_path, cfg, progress=False)
    assert summary["stop_reason"] == STOP_RULE and summary["converged"]
    assert summary["epochs_run"] == 12 and summary["rule_fired_at"] == 8
    assert asked == [2, 4, 6, 8]  # not asked again during the cool-down
    log = pd.read_csv(tmp_path / "train_log.csv").set_index("epoch")
    f0 = lr_factor(8, LOOP["warmup_epochs"], 20)
    # the row of epoch e holds the learning rate of training epoch index e - 1
    assert log.loc[9:12, "lr"].tolist() == pytest.approx([LOOP["lr"] * f0 * k / 5 for k in (4, 3, 2, 1)])
    assert log.loc[[10, 12], VAL_CO_BPS].notna().all()  # the cool-down is validated as before


def test_max_steps_is_a_floor_of_the_cap_counted_in_optimizer_steps():
    # 4,000 steps: 800 epochs on 75 trials at batch 16 (5 steps per epoch), 400 on 160 trials (10)
    assert steps_per_epoch(75, 16) == 5 and steps_per_epoch(160, 16) == 10 and steps_per_epoch(3, 16) == 1
    assert epoch_cap(400, 4000, 5) == 800 and epoch_cap(400, 4000, 10) == 400
    assert epoch_cap(400, 4000, 20) == 400  # the epoch cap stays the floor
    assert epoch_cap(400, 0, 5) == 400  # 0 = the cap is max_epochs (the published runs)
    with pytest.raises(ValueError, match="max_steps"):
        TrainConfig(max_steps=-1)


def test_a_member_on_few_trials_trains_to_its_cap_in_steps(val_tensors, tmp_path):
    """16 training trials at batch 8 are 2 steps per epoch: max_steps 8 raises a 2-epoch cap to 4, the
    member runs 8 steps, and its summary and params.json give the cap it had."""
    summary = train_member(
        val_tensors,
        None,
        tmp_path,
        {**LOOP, "max_epochs": 2, "max_steps": 8, "batch_size": 8, "patience": 100},
        progress=False,
    )
    assert (summary["epochs_run"], summary["steps"], summary["stop_reason"]) == (4, 8, "max_epochs")
    params = json.loads((tmp_path / "params.json").read_text())
    assert params["train"]["max_epochs"] == 4 and params["hyperparameters"]["max_steps"] == 8
    assert "NOT CONVERGED: stopped at the cap (max_epochs 4, 8 optimizer steps)" in (tmp_path / "train.log").read_text()


def test_should_stop_cobps_rule_boundaries():
    # co-bps only: AT LEAST patience epochs since the best co-bps; the loss is ignored
    assert not should_stop(139, 40, 139, 100, "cobps")  # 99 epochs
    assert should_stop(140, 40, 140, 100, "cobps")  # 100 epochs, loss just improved: still stops
    with pytest.raises(ValueError, match="stop rule"):
        should_stop(140, 40, 40, 100, "loss")


def _stop_epoch(history: list[tuple[int, float, float]], patience: int, rule: str) -> int | None:
    """Replay a hand-made val history [(epoch, co-bps, masked loss)] the way the loop does: update
    each metric's best epoch on a strict improvement, then ask should_stop. None = never stops."""
    best_c, best_c_epoch, best_l, best_l_epoch = -math.inf, -1, math.inf, -1
    for epoch, cobps, loss in history:
        if improved(cobps, best_c, lower_is_better=False):
            best_c, best_c_epoch = cobps, epoch
        if improved(loss, best_l, lower_is_better=True):
            best_l, best_l_epoch = loss, epoch
        if should_stop(epoch, best_c_epoch, best_l_epoch, patience, rule):
            return epoch
    return None


# Validation every 20 epochs. Co-bps peaks at epoch 20 (0.30) and then sits at 0.25; the masked loss
# keeps falling by 0.01 at every validation up to epoch 400.
COBPS_STALLS = [(e, 0.30 if e == 20 else (0.10 if e == 0 else 0.25), 2.0 - 0.01 * e / 20) for e in range(0, 401, 20)]
# Both stall: co-bps best 0.31 at epoch 40, loss best 1.50 at epoch 60, nothing better afterwards
# (later values equal to the best must not count: the reference's comparisons are strict).
BOTH_STALL = [(0, 0.0, 3.0), (20, 0.2, 2.0), (40, 0.31, 1.8), (60, 0.30, 1.5)] + [
    (e, 0.31 if e == 100 else 0.29, 1.5 if e == 120 else 1.6) for e in range(80, 401, 20)
]


def test_plateau_in_cobps_only_does_not_stop_under_the_published_rule():
    # loss improves at every validation, so "both" never has its loss stalled
    assert _stop_epoch(COBPS_STALLS, 100, "both") is None
    # ... while the co-bps rule stops at the first validation >= 20 + 100 = 120
    assert _stop_epoch(COBPS_STALLS, 100, "cobps") == 120


def test_plateau_in_both_stops_at_the_right_epoch():
    # "both": first validation epoch e with e - 40 > 100 and e - 60 > 100, i.e. e > 160 -> 180
    assert _stop_epoch(BOTH_STALL, 100, "both") == 180
    # "cobps": first e with e - 40 >= 100 -> 140
    assert _stop_epoch(BOTH_STALL, 100, "cobps") == 140
    # patience 400: never within the 400 epochs of the history
    assert _stop_epoch(BOTH_STALL, 400, "both") is None


def test_train_config_stop_rule():
    assert TrainConfig().stop_rule == "both"  # the published runs' rule is the default
    assert TrainConfig(stop_rule="cobps").stop_rule == "cobps"
    with pytest.raises(ValueError, match="stop_rule"):
        TrainConfig(stop_rule="loss")


# ----------------------------------------------------------------------------------- val masked loss
class _ConstantModel(torch.nn.Module):
    """Predicts log-rate `c` everywhere (so every pooled entry's NLL is exp(c) - y c)."""

    def __init__(self, c: float, n_heldout: int, t_forward: int):
        super().__init__()
        self.c = c
        self.cfg = SimpleNamespace(n_heldout=n_heldout, t_forward=t_forward)

    def forward(self, x):
        return torch.full_like(x, self.c)


def test_val_masked_nll_pools_masked_heldin_heldout_and_zero_forward():
    # 2 trials, 3 bins, 2 held-in neurons all 1 spike, 1 held-out neuron 0 spikes, 1 forward bin.
    # mask_ratio 1: every held-in entry is in the pool. log-rate log 2 everywhere, NLL = 2 - y log 2:
    #   12 held-in entries (y = 1):         12 (2 - log 2)
    #    6 held-out entries (y = 0):          6 x 2
    #    6 forward entries (3 neurons, y = 0 as in the reference's val file): 6 x 2
    #   mean = (48 - 12 log 2) / 24 = 2 - log 2 / 2 = 1.6534264
    heldin = np.ones((2, 3, 2), np.float32)
    heldout = np.zeros((2, 3, 1), np.float32)
    cfg = SimpleNamespace(mask_ratio=1.0, mask_token_ratio=0.8, mask_random_ratio=0.5)
    model = _ConstantModel(math.log(2.0), n_heldout=1, t_forward=1)
    for bs in (1, 2):  # pooled over batches
        value = val_masked_nll(model, heldin, heldout, cfg, torch.Generator().manual_seed(0), batch_size=bs)
        assert value == pytest.approx(2 - math.log(2) / 2, rel=1e-6)
    assert (
        val_masked_nll(_ConstantModel(math.inf, 1, 1), heldin, heldout, cfg, torch.Generator().manual_seed(0))
        == math.inf
    )  # diverged: never a best


def test_val_masked_nll_counts_only_masked_heldin_entries():
    # as above, but mask_ratio 1e-12: (practically) no held-in entry is masked, so the pool is the
    # 6 held-out + 6 forward entries, each NLL 2 - 0 x log 2 = 2 -> mean exactly 2 (an implementation
    # pooling every held-in entry would give 1.6534 again)
    heldin = np.ones((2, 3, 2), np.float32)
    heldout = np.zeros((2, 3, 1), np.float32)
    cfg = SimpleNamespace(mask_ratio=1e-12, mask_token_ratio=0.8, mask_random_ratio=0.5)
    model = _ConstantModel(math.log(2.0), n_heldout=1, t_forward=1)
    assert val_masked_nll(model, heldin, heldout, cfg, torch.Generator().manual_seed(0)) == pytest.approx(2.0)


def test_val_masked_nll_leaves_out_nan_targets_past_a_trials_end():
    # DMFC_RSG's eval held-out spikes are NaN after each trial's end. As above (mask_ratio 1e-12: pool =
    # held-out + forward entries, NLL 2 each), with 2 of the 6 held-out entries NaN: mean 2 over the
    # 4 + 6 known entries. Counting NaN made the loss NaN at every validation (returned as inf), so it
    # never improved and the "both" stopping rule silently used co-bps alone.
    heldin = np.ones((2, 3, 2), np.float32)
    heldout = np.zeros((2, 3, 1), np.float32)
    heldout[1, 1:, 0] = np.nan
    cfg = SimpleNamespace(mask_ratio=1e-12, mask_token_ratio=0.8, mask_random_ratio=0.5)
    model = _ConstantModel(math.log(2.0), n_heldout=1, t_forward=1)
    assert val_masked_nll(model, heldin, heldout, cfg, torch.Generator().manual_seed(0)) == pytest.approx(2.0)


# --------------------------------------------------------------------- the loop uses all of the above
N_IN, N_OUT, T, T_FP = 6, 2, 12, 4
LOOP = dict(
    n_layers=1,
    n_heads=2,
    ff_hidden=8,
    context_forward=-1,
    context_backward=-1,
    dropout=0.05,
    dropout_rates=0.05,
    dropout_embedding=0.05,
    batch_size=8,
    lr=4e-3,
    warmup_epochs=3,
    weight_decay=5e-5,
    seed=5,
    contrast_lambda=0.1,
    num_threads=1,
    val_every=2,
    patience=1000,
    device="cpu",
)


@pytest.fixture(scope="module")
def val_tensors(tmp_path_factory) -> Path:
    """A tiny val-phase tensors file (Poisson counts from 2 smooth factors; 16 train, 8 eval trials)."""
    rng = np.random.default_rng(4)
    c = rng.normal(0, 0.8, (2, N_IN + N_OUT))

    def trials(n):
        tt = np.arange(T + T_FP)[None, :, None] / (T + T_FP)
        z = np.sin(2 * np.pi * np.array([1.0, 1.7]) * tt + rng.uniform(0, 6.3, (n, 1, 2)))
        return rng.poisson(np.exp(np.log(0.4) + z @ c)).astype(np.float32)

    tr, ev = trials(16), trials(8)
    path = tmp_path_factory.mktemp("science") / "val.h5"
    save_h5(
        path,
        {
            "train_spikes_heldin": tr[:, :T, :N_IN],
            "train_spikes_heldout": tr[:, :T, N_IN:],
            "train_spikes_heldin_forward": tr[:, T:, :N_IN],
            "train_spikes_heldout_forward": tr[:, T:, N_IN:],
            "eval_spikes_heldin": ev[:, :T, :N_IN],
            "targets": {"mc_maze": {"eval_spikes_heldout": ev[:, :T, N_IN:]}},
        },
        attrs={"layout": "mc_maze", "bin_width_ms": 5, "phase": "val"},
    )
    return path


def test_loop_asks_should_stop_with_the_tracked_best_epochs(val_tensors, tmp_path, monkeypatch):
    calls = []

    def spy(epoch, best_cobps_epoch, best_loss_epoch, patience, rule, patience_fraction):
        calls.append((epoch, best_cobps_epoch, best_loss_epoch, patience, rule, patience_fraction))
        return should_stop(epoch, best_cobps_epoch, best_loss_epoch, patience, rule, patience_fraction)

    monkeypatch.setattr(bookkeeping, "should_stop", spy)  # the rules train_member applies
    summary = train_member(val_tensors, None, tmp_path, {**LOOP, "max_epochs": 10, "keep_state": True}, progress=False)
    assert summary["epochs_run"] == 10 and summary["stop_reason"] == "max_epochs"
    log = pd.read_csv(tmp_path / "train_log.csv")
    assert [c[0] for c in calls] == [2, 4, 6, 8, 10]  # at every validation
    assert all(c[3:] == (1000, "both", 0.0) for c in calls)  # patience, default rule, fixed
    # the best epochs the loop passes are those of the log's columns (strict improvements, epoch 0 on)
    val_rows = log[log[VAL_CO_BPS].notna()]
    assert val_rows["epoch"].tolist() == [0, 2, 4, 6, 8, 10] and val_rows[VAL_MASKED_NLL].notna().all()
    assert log.loc[log[VAL_CO_BPS].isna(), VAL_MASKED_NLL].isna().all()  # only at validations
    for epoch, best_c, best_l, *_ in calls:
        seen = val_rows[val_rows["epoch"] <= epoch]
        assert best_c == int(seen["epoch"].iloc[int(np.argmax(seen[VAL_CO_BPS].to_numpy()))])
        assert best_l == int(seen["epoch"].iloc[int(np.argmin(seen[VAL_MASKED_NLL].to_numpy()))])
    # what the rule needs lives in the saved state (a resumed run decides exactly as an uninterrupted one)
    st = torch.load(tmp_path / STATE_FILE, weights_only=True)
    assert st["best_loss"]["epoch"] == calls[-1][2]
    assert st["best_loss"][VAL_MASKED_NLL] == pytest.approx(val_rows[VAL_MASKED_NLL].min(), rel=1e-12)
    assert st["best"]["epoch"] == calls[-1][1]
    # lr column: epoch e (1-based row) trained with lr x lr_factor(e - 1); W = 3:
    # rows 1..3: 4e-3 x 1/4, 2/4, 3/4 = 1e-3, 2e-3, 3e-3; row 4 is the peak 4e-3
    assert log["lr"].iloc[1:5].tolist() == pytest.approx([1e-3, 2e-3, 3e-3, 4e-3], rel=1e-12)


def test_loop_stops_when_should_stop_says_so(val_tensors, tmp_path):
    # co-bps rule with patience 0: epoch - best >= 0 always, so the first validation (epoch 2) stops
    summary = train_member(
        val_tensors, None, tmp_path, {**LOOP, "max_epochs": 10, "patience": 0, "stop_rule": "cobps"}, progress=False
    )
    assert (summary["epochs_run"], summary["stop_reason"]) == (2, "early_stopping")
    assert pd.read_csv(tmp_path / "train_log.csv")["epoch"].tolist() == [0, 1, 2]


def test_a_member_stopped_by_its_cap_is_flagged_unconverged_everywhere(val_tensors, tmp_path, caplog):
    capped, ruled = tmp_path / "members" / "m000", tmp_path / "members" / "m001"
    s_cap = train_member(val_tensors, None, capped, {**LOOP, "max_epochs": 4}, progress=False)
    s_rule = train_member(
        val_tensors, None, ruled, {**LOOP, "max_epochs": 10, "patience": 0, "stop_rule": "cobps"}, progress=False
    )
    assert (s_cap["stop_reason"], s_cap["converged"]) == ("max_epochs", False)
    assert (s_rule["stop_reason"], s_rule["converged"]) == ("early_stopping", True)
    log_text = (capped / "train.log").read_text()
    assert "WARNING" in log_text and "NOT CONVERGED" in log_text and "max_epochs 4" in log_text
    assert "NOT CONVERGED" not in (ruled / "train.log").read_text()
    table = members_table(member_files(capped, ruled), tmp_path / "members.csv", phases=())
    assert table.set_index("member")["converged"].to_dict() == {"m000": False, "m001": True}
    reread = pd.read_csv(tmp_path / "members.csv")
    assert unconverged_members(reread) == ["m000"]
    summary = convergence_summary([tmp_path / "members.csv", tmp_path / "absent.csv"])
    assert "NOT converged" in summary and "m000" in summary and "m001" not in summary
    assert convergence_summary([tmp_path / "absent.csv"]) is None


def test_a_diverged_member_is_not_reported_as_stopped_by_its_cap(tmp_path):
    table = pd.DataFrame(
        {
            "member": ["m000", "m001", "m002"],
            "converged": [False, False, True],
            "stop_reason": ["max_epochs", "diverged", "early_stopping"],
        }
    )
    table.to_csv(tmp_path / "members.csv", index=False)
    assert unconverged_members(table) == ["m000", "m001"]
    assert unconverged_members(table, "max_epochs") == ["m000"]
    summary = convergence_summary([tmp_path / "members.csv"])
    cap_part, div_part = summary.split("non-finite")
    assert "m000" in cap_part and "m001" not in cap_part
    assert "m001" in div_part and "m000" not in div_part and "m002" not in summary


def test_native_bf16_is_read_from_the_cpu_flags(tmp_path):
    flags = "flags\t\t: fpu vme sse sse2 avx avx2 fma"
    (tmp_path / "avx2").write_text(f"processor\t: 0\n{flags}\n")
    (tmp_path / "bf16").write_text(f"processor\t: 0\n{flags} avx512f avx512_bf16\n")
    (tmp_path / "amx").write_text(f"processor\t: 0\n{flags} amx_tile amx_bf16\n")
    assert not cpu_has_native_bf16(str(tmp_path / "avx2"))
    assert cpu_has_native_bf16(str(tmp_path / "bf16")) and cpu_has_native_bf16(str(tmp_path / "amx"))
    assert not cpu_has_native_bf16(str(tmp_path / "missing"))


_NO_CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA")


@pytest.mark.parametrize(
    "device, bf16, expected",
    [
        ("cpu", True, {torch.bfloat16}),
        ("cpu", False, {torch.float32}),
        # None = bf16 on CUDA and on CPUs with bf16 matrix instructions (emulated bf16 is ~7x slower)
        ("cpu", None, {torch.bfloat16} if cpu_has_native_bf16() else {torch.float32}),
        pytest.param("cuda", None, {torch.bfloat16}, marks=_NO_CUDA),
        pytest.param("cuda", False, {torch.float32}, marks=_NO_CUDA),
    ],
)
def test_bf16_autocast_is_used_in_the_training_step_only_when_asked(
    val_tensors, tmp_path, monkeypatch, device, bf16, expected
):
    import stndt.model.stndt as stndt_model

    seen: set[torch.dtype] = set()

    class Recording(stndt_model.STNDT):
        """STNDT recording the dtype of every Linear output while training (not at validation)."""

        def __init__(self, cfg):
            super().__init__(cfg)
            for mod in self.modules():
                if isinstance(mod, torch.nn.Linear):
                    mod.register_forward_hook(self._record)

        def _record(self, module, inputs, output):
            if self.training:
                seen.add(output.dtype)

    monkeypatch.setattr(stndt_model, "STNDT", Recording)
    summary = train_member(
        val_tensors, None, tmp_path, {**LOOP, "max_epochs": 1, "bf16": bf16, "device": device}, progress=False
    )
    assert summary["bf16"] is (expected == {torch.bfloat16})
    assert seen == expected


# ------------------------------------------------------------------ Fig. 5: attention received by neurons
# Layer 0 of a hand-made spatial attention (2 layers, 2 trials, N = 4 neurons, the first 3 held in);
# rows sum to 1 (row i: how neuron i mixes the others), columns are the attention each neuron receives.
A_LAYER0 = np.array(
    [
        [
            [0.1, 0.2, 0.7, 0.0],
            [0.0, 0.5, 0.5, 0.0],
            [0.2, 0.1, 0.6, 0.1],
            [0.1, 0.0, 0.4, 0.5],
        ],  # column sums: 0.4, 0.8, 2.2, 0.6
        [
            [0.0, 1.0, 0.0, 0.0],
            [0.0, 0.4, 0.6, 0.0],
            [0.3, 0.3, 0.2, 0.2],
            [0.0, 0.5, 0.0, 0.5],
        ],  # column sums: 0.3, 2.2, 0.8, 0.7
    ]
)
ATTENTION = np.stack([A_LAYER0, np.broadcast_to(np.eye(4), (2, 4, 4))])  # layer 1: identity


def test_received_attention_is_column_sums_averaged_over_trials():
    np.testing.assert_allclose(ATTENTION.sum(axis=-1), 1.0)  # a valid row-stochastic input
    # trial means of the column sums: (0.4 + 0.3) / 2 = 0.35, (0.8 + 2.2) / 2 = 1.5, (2.2 + 0.8) / 2 = 1.5
    # (row sums would be 1, 1, 1; leaving out the held-out query row 3 would give 0.3, 1.25, 1.15)
    np.testing.assert_allclose(received_attention(ATTENTION, n_heldin=3, layer=0), [0.35, 1.5, 1.5])
    np.testing.assert_allclose(received_attention(ATTENTION, n_heldin=3, layer=1), [1.0, 1.0, 1.0])


def test_attention_ranking_of_the_hand_made_matrix():
    # 1.5 (neuron 1) ties 1.5 (neuron 2), the lower index first; 0.35 (neuron 0) last
    assert rank_by_attention(received_attention(ATTENTION, n_heldin=3, layer=0)).tolist() == [1, 2, 0]


# ------------------------------------------------------------ variants share STNDT's hyperparameter draws
def test_ndt_and_no_contrast_members_use_the_same_draws_as_stndt():
    from stndt.train.members import member_params

    spaces = REPO / "config" / "search_spaces.yaml"
    training = {"max_epochs": 500, "patience": 100}
    for index in (0, 3):
        stndt, ndt, no_c = (
            member_params(spaces, "mc_rtt", index, 7, v, training=training) for v in ("stndt", "ndt", "no_contrast")
        )
        switches = {"spatial", "contrastive"}
        shared = set(stndt) - switches
        assert {"lr", "dropout", "mask_ratio", "context_forward", "seed"} <= shared
        for other in (ndt, no_c):
            assert set(other) - switches == shared
            assert {k: other[k] for k in shared} == {k: stndt[k] for k in shared}
        # only the variant switches differ: STNDT keeps both parts, NDT drops both, no_contrast one
        assert stndt.get("spatial", True) is True and stndt.get("contrastive", True) is True
        assert (ndt["spatial"], ndt["contrastive"]) == (False, False)
        assert no_c.get("spatial", True) is True and no_c["contrastive"] is False
    # members differ from each other (so equality across variants is not equality of everything)
    a, b = (member_params(spaces, "mc_rtt", i, 7) for i in (0, 3))
    assert a["lr"] != b["lr"] and a["seed"] != b["seed"]


# --------------------------------------------------------------- paper tables: the published-numbers path
def _baselines(cobps: float) -> pd.DataFrame:
    """A real dataset's baselines.csv: val phase only (the real test split is scored by EvalAI)."""
    return pd.DataFrame(
        {
            "method": ["stndt_ensemble", "stndt_single", "no_contrast_ensemble", "smoothing"],
            "phase": ["val"] * 4,
            "split": ["val"] * 4,
            "selected on": ["val", "val", "val", "none (fixed settings)"],
            "co-bps": [cobps, cobps - 0.01, cobps - 0.02, 0.2],
            "vel R2": [0.9, 0.89, 0.88, 0.6],
            "psth R2": [0.6, 0.59, 0.58, 0.2],
            "fp-bps": [0.25, 0.24, 0.23, float("nan")],
        }
    )


PUBLISHED = pd.DataFrame(
    {
        "method": ["STNDT", "STNDT", "GPFA", "STNDT", "STNDT", "STNDT", "Smoothing"],
        "variant": ["ensemble", "single", "baseline", "ensemble", "ensemble", "ensemble", "baseline"],
        "dataset": ["mc_maze", "mc_maze", "mc_maze", "mc_maze_large", "mc_maze_medium", "mc_maze_small", "mc_rtt"],
        "co-bps": [0.3862, 0.3691, 0.1872, 0.3735, 0.3142, 0.2552, 0.1468],
        "vel R2": [0.9095, 0.8985, 0.6399, 0.9182, float("nan"), 0.7871, 0.4142],
        "psth R2": [0.6693, 0.6567, 0.5150, 0.7178, 0.6031, 0.5276, float("nan")],
        "fp-bps": [0.2686, 0.2505, float("nan"), 0.2601, 0.2276, 0.1910, float("nan")],
        "tp corr": [float("nan")] * 7,
    }
)


@pytest.fixture(scope="module")
def tables():
    from stndt.paper.tables import main_table, scaling_table

    # deliberately given small, medium, large: the scaling table must reorder them
    results = {
        name: (name, _baselines(c))
        for name, c in [
            ("mc_maze", 0.35),
            ("mc_maze_small", 0.22),
            ("mc_maze_medium", 0.28),
            ("mc_maze_large", 0.33),
            ("synth", 0.4),
        ]
    }
    main = main_table(results, PUBLISHED, synthetic={"synth"})
    return main, scaling_table(main)


def test_published_rows_stand_beside_ours(tables):
    main, _ = tables
    maze = main[main["dataset"] == "mc_maze"]
    pub = maze[maze["source"] == "published"]
    ours = maze[maze["source"] == "ours"]
    assert len(ours) == 4 and set(ours["method"]) == {"STNDT", "STNDT without contrastive", "Smoothing"}
    # the published STNDT rows, values unchanged; GPFA is not among the methods shown
    assert pub[["method", "variant"]].values.tolist() == [["STNDT", "ensemble"], ["STNDT", "single"]]
    row = pub[pub["variant"] == "ensemble"].iloc[0]
    assert (row["co-bps"], row["vel R2"], row["psth R2"], row["fp-bps"]) == (0.3862, 0.9095, 0.6693, 0.2686)
    assert row["layout"] == "mc_maze"
    # every row says what it is scored on and what it was selected on; published ones: the hidden test
    assert set(pub["split"]) == {"NLB hidden test"} and set(ours["split"]) == {"val"}
    assert ours.loc[ours["method"] == "Smoothing", "selected on"].tolist() == ["none (fixed settings)"]
    # no published rows for a synthetic dataset, nor for a configured-but-absent dataset (mc_rtt)
    assert set(main.loc[main["dataset"] == "synth", "source"]) == {"ours"}
    assert "mc_rtt" not in set(main["dataset"])
    # tp corr is defined for no row here: no such column
    assert "tp corr" not in main.columns


def test_missing_published_cells_stay_empty(tables):
    from stndt.paper.tables import to_markdown

    main, _ = tables
    medium = main[(main["dataset"] == "mc_maze_medium") & (main["source"] == "published")]
    assert len(medium) == 1 and math.isnan(medium["vel R2"].iloc[0]) and medium["co-bps"].iloc[0] == 0.3142
    line = next(ln for ln in to_markdown(main).splitlines() if "mc_maze_medium | published" in ln)
    # | mc_maze_medium | mc_maze_medium | published | STNDT | ensemble | NLB hidden test | val (authors) | 0.3142 |
    assert line.split("|")[8:12] == [" 0.3142 ", "  ", " 0.6031 ", " 0.2276 "]


def test_scaling_table_is_large_medium_small_with_published_rows(tables):
    _, scaling = tables
    order = list(dict.fromkeys(scaling["layout"]))
    assert order == ["mc_maze_large", "mc_maze_medium", "mc_maze_small"]
    for name, pub_cobps in [("mc_maze_large", 0.3735), ("mc_maze_medium", 0.3142), ("mc_maze_small", 0.2552)]:
        rows = scaling[scaling["layout"] == name]
        pub = rows[rows["source"] == "published"]
        assert pub["co-bps"].tolist() == [pub_cobps]
        assert (rows["source"] == "ours").sum() == 4
    assert "mc_maze" not in set(scaling["layout"])


def test_repo_published_csv_feeds_the_real_dataset_branch():
    from stndt.paper.tables import load_published, main_table

    main = main_table(
        {"mc_maze": ("mc_maze", _baselines(0.35))},
        load_published(REPO / "config" / "published_results.csv"),
        synthetic=set(),
    )
    pub = main[(main["source"] == "published") & (main["method"] == "STNDT")]
    # the paper's Table 1, MC_Maze: STNDT ensemble co-bps 0.3862, single 0.3691
    assert dict(zip(pub["variant"], pub["co-bps"])) == {"ensemble": 0.3862, "single": 0.3691}


# ------------------------------------------------------------------------------- dandisets as NLB publishes
def test_dandiset_ids_are_the_published_ones():
    from stndt.datasets import NLB_DATASETS

    assert {name: d.dandiset for name, d in NLB_DATASETS.items()} == {
        "mc_maze": "000128",
        "mc_rtt": "000129",
        "area2_bump": "000127",
        "dmfc_rsg": "000130",
        "mc_maze_large": "000138",
        "mc_maze_medium": "000139",
        "mc_maze_small": "000140",
    }
