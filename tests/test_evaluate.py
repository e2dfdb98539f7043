"""Tests of stndt.evaluate: scoring through nlb_tools, ensembles, the smoothing baseline, submissions.

All data are built here in memory (no NWB files): Poisson spikes from known latent-driven rates,
behaviour linear in the latents, condition PSTHs + eval_cond_idx, forward-prediction bins.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import h5py
import nlb_tools.evaluation as nlb_evaluation
import numpy as np
import pandas as pd
import pytest
from nlb_tools.make_tensors import h5_to_dict, save_to_h5

from stndt.datasets import CO_BPS, FP_BPS, PSTH_R2, TP_CORR, VEL_R2, nlb_dataset, nlb_key
from stndt.evaluate import ensemble as ens
from stndt.evaluate import metrics as met
from stndt.evaluate import subsets
from stndt.evaluate.smoothing import gaussian_window, smoothing_rates
from stndt.evaluate.submission import SubmissionError, check_rates, check_submission, write_submission
from stndt.io import save_h5

LAYOUT, BW = "mc_maze", 5
KEY = nlb_key(LAYOUT, BW)


@dataclass
class Synthetic:
    tensors: dict  # model inputs, nlb_tools key names
    targets: dict  # {key: make_eval_target_tensors-like dict}
    truth: dict  # {key: six true-rate arrays} (submission layout)
    cond_eval: np.ndarray
    key: str


def make_data(
    seed: int = 0,
    key: str = KEY,
    n_train: int = 60,
    n_eval: int = 40,
    t_len: int = 30,
    t_fp: int = 8,
    n_in: int = 16,
    n_out: int = 8,
    n_cond: int = 4,
    dmfc: bool = False,
    extras: bool = False,
) -> Synthetic:
    """Latent-driven Poisson data. `extras`: decode masks + non-zero eval jitter (psth NaN where jittered)."""
    rng = np.random.default_rng(seed)
    n = n_train + n_eval
    cond = np.arange(n) % n_cond
    rng.shuffle(cond)
    t = np.arange(t_len + t_fp)
    w = 2 * np.pi / (t_len + t_fp)
    ph = 2 * np.pi * cond / n_cond
    lat = np.stack(
        [np.sin(w * t[None] + ph[:, None]), np.cos(w * t[None] + ph[:, None]), np.sin(2 * w * t[None] + ph[:, None])],
        axis=-1,
    )
    gain = 1 + 0.25 * rng.standard_normal(n)
    lat = lat * gain[:, None, None]
    c = rng.normal(0, 0.9, (3, n_in + n_out))
    b = np.log(rng.uniform(0.1, 0.4, n_in + n_out))
    rates = np.exp(lat @ c + b)
    spikes = rng.poisson(rates).astype(np.float64)
    tr, ev = slice(0, n_train), slice(n_train, n)
    if dmfc:  # is_eye, theta, is_short, ts, tp: tp grows with the latent speed (the gain)
        cols = np.stack(
            [cond % 2, cond // 2, np.zeros(n), np.full(n, 800.0), 800 * np.abs(gain) + 20 * rng.standard_normal(n)],
            axis=1,
        )
        behaviour = cols.astype(float)
    else:
        behaviour = lat[:, :t_len, :2] @ rng.normal(0, 1, (2, 2)) + 0.05 * rng.standard_normal((n, t_len, 2))
    psth = np.stack([rates[cond == k, :t_len].mean(axis=0) for k in range(n_cond)])

    def cond_idx(cnd):
        out = np.empty(n_cond, dtype=object)
        for k in range(n_cond):
            out[k] = np.where(cnd == k)[0]
        return out

    tgt = {
        "eval_spikes_heldout": spikes[ev, :t_len, n_in:].copy(),
        "train_behavior": behaviour[tr],
        "eval_behavior": behaviour[ev],
        "eval_spikes_heldin_forward": spikes[ev, t_len:, :n_in],
        "eval_spikes_heldout_forward": spikes[ev, t_len:, n_in:],
        "psth": psth,
        "eval_cond_idx": cond_idx(cond[ev]),
        "train_cond_idx": cond_idx(cond[tr]),
    }
    if dmfc:  # bins outside the set-go period are NaN in the held-out targets
        tgt["eval_spikes_heldout"][::3, :4] = np.nan
    if extras:
        bump = rng.random(n) < 0.5
        tgt["train_decode_mask"] = np.stack([bump[tr], ~bump[tr]], axis=1)
        tgt["eval_decode_mask"] = np.stack([bump[ev], ~bump[ev]], axis=1)
        tgt["eval_jitter"] = rng.integers(0, 3, n_eval)
        tgt["psth"][:, :2] = np.nan
    tensors = {
        "train_spikes_heldin": spikes[tr, :t_len, :n_in],
        "train_spikes_heldout": spikes[tr, :t_len, n_in:],
        "train_spikes_heldin_forward": spikes[tr, t_len:, :n_in],
        "train_spikes_heldout_forward": spikes[tr, t_len:, n_in:],
        "eval_spikes_heldin": spikes[ev, :t_len, :n_in],
    }
    truth = {
        key: {
            "train_rates_heldin": rates[tr, :t_len, :n_in],
            "train_rates_heldout": rates[tr, :t_len, n_in:],
            "eval_rates_heldin": rates[ev, :t_len, :n_in],
            "eval_rates_heldout": rates[ev, :t_len, n_in:],
            "eval_rates_heldin_forward": rates[ev, t_len:, :n_in],
            "eval_rates_heldout_forward": rates[ev, t_len:, n_in:],
        }
    }
    return Synthetic(tensors, {key: tgt}, truth, cond[ev], key)


def mean_rates(d: Synthetic) -> dict:
    """Each neuron's mean train rate everywhere: the null-ish prediction."""
    t = d.tensors
    m_in = t["train_spikes_heldin"].mean(axis=(0, 1))
    m_out = t["train_spikes_heldout"].mean(axis=(0, 1))
    n_ev = len(t["eval_spikes_heldin"])
    shapes = {
        "train_rates_heldin": (t["train_spikes_heldin"].shape, m_in),
        "train_rates_heldout": (t["train_spikes_heldout"].shape, m_out),
        "eval_rates_heldin": (t["eval_spikes_heldin"].shape, m_in),
        "eval_rates_heldout": (t["eval_spikes_heldin"].shape[:2] + m_out.shape, m_out),
        "eval_rates_heldin_forward": ((n_ev,) + t["train_spikes_heldin_forward"].shape[1:], m_in),
        "eval_rates_heldout_forward": ((n_ev,) + t["train_spikes_heldout_forward"].shape[1:], m_out),
    }
    return {d.key: {k: np.broadcast_to(m, s).astype(np.float64) + 1e-3 for k, (s, m) in shapes.items()}}


def noisy(rates: dict, seed: int, sd: float) -> dict:
    rng = np.random.default_rng(seed)
    return {k: {a: v * np.exp(sd * rng.standard_normal(v.shape)) for a, v in g.items()} for k, g in rates.items()}


@pytest.fixture(scope="module")
def data() -> Synthetic:
    return make_data()


# ----------------------------------------------------------------------------------------------------
# metrics
# ----------------------------------------------------------------------------------------------------
def test_score_equals_nlb_evaluate(data):
    pred = noisy(data.truth, 1, 0.3)
    direct = nlb_evaluation.evaluate(data.targets, pred)
    ours = met.score(data.targets, pred, LAYOUT, BW)
    assert ours == {k: float(v) for k, v in direct[0][f"{KEY}_split"].items()}
    assert set(ours) == set(nlb_dataset(LAYOUT).metrics)
    # the inner dicts are accepted too, with the same numbers
    assert met.score(data.targets[KEY], pred[KEY], LAYOUT, BW) == ours
    # true rates beat noisy ones on co-bps
    assert met.score(data.targets, data.truth, LAYOUT, BW)[CO_BPS] > ours[CO_BPS]


@pytest.mark.parametrize("bw", [5, 20])
def test_score_strips_scaling_prefix(bw):
    key = nlb_key("mc_maze_small", bw)
    d = make_data(seed=2, key=key)
    direct = nlb_evaluation.evaluate(d.targets, d.truth)
    assert list(direct[0]) == ["mc_maze_scaling_split" if bw == 5 else "mc_maze_scaling_20_split"]
    raw = next(iter(direct[0].values()))
    ours = met.score(d.targets, d.truth, "mc_maze_small", bw)
    assert ours[CO_BPS] == raw["[100] co-bps"] and ours[PSTH_R2] == raw["[100] psth R2"]
    assert set(ours) == set(nlb_dataset("mc_maze_small").metrics)


def test_score_dmfc_reports_tp_corr():
    key = nlb_key("dmfc_rsg", BW)
    d = make_data(seed=3, key=key, dmfc=True)
    ours = met.score(d.targets, d.truth, "dmfc_rsg", BW)
    assert set(ours) == {CO_BPS, TP_CORR, PSTH_R2, FP_BPS}
    assert ours[TP_CORR] == nlb_evaluation.evaluate(d.targets, d.truth)[0][f"{key}_split"][TP_CORR]


def test_empty_or_incomplete_evaluation_raises(data, monkeypatch):
    # wrong bin width: the group is not there -> clear KeyError before evaluate() can return []
    with pytest.raises(KeyError, match="mc_maze_20"):
        met.score(data.targets, data.truth, LAYOUT, 20)
    # no forward rates -> evaluate() silently omits fp-bps; we must not
    no_fp = {KEY: {k: v for k, v in data.truth[KEY].items() if "forward" not in k}}
    with pytest.raises(met.EvaluationError, match="fp-bps"):
        met.score(data.targets, no_fp, LAYOUT, BW)
    assert FP_BPS not in met.score(data.targets, no_fp, LAYOUT, BW, required=[CO_BPS])
    monkeypatch.setattr(nlb_evaluation, "evaluate", lambda *a, **k: [])
    with pytest.raises(met.EvaluationError, match="empty"):
        met.score(data.targets, data.truth, LAYOUT, BW)


def test_co_bps_fast_path_equals_evaluate(data):
    pred = noisy(data.truth, 4, 0.4)
    assert met.co_bps(data.targets, pred, LAYOUT, BW) == met.score(data.targets, pred, LAYOUT, BW)[CO_BPS]


def test_rate_r2(data):
    assert met.rate_r2(data.truth, data.truth) == pytest.approx(1.0)
    pred = noisy(data.truth, 5, 0.5)
    g = pred[KEY], data.truth[KEY]
    p, t = (np.concatenate([x["eval_rates_heldin"], x["eval_rates_heldout"]], -1).reshape(-1, 24) for x in g)
    pooled = 1 - ((p - t) ** 2).sum() / ((t - t.mean(axis=0)) ** 2).sum()
    assert met.rate_r2(pred, data.truth) == pytest.approx(pooled)
    assert met.rate_r2(pred, data.truth) < met.rate_r2(noisy(data.truth, 5, 0.1), data.truth)


def test_load_targets_and_rates_from_files(data, tmp_path):
    tensors_file = tmp_path / "val.h5"
    save_to_h5({**data.tensors, "targets": data.targets}, str(tensors_file))  # vlen eval_cond_idx
    loaded = met.load_targets(tensors_file)
    assert met.has_targets(tensors_file)
    for a, b in zip(loaded[KEY]["eval_cond_idx"], data.targets[KEY]["eval_cond_idx"]):
        np.testing.assert_array_equal(a, b)
    s_mem, s_file = met.score(data.targets, data.truth, LAYOUT, BW), met.score(loaded, data.truth, LAYOUT, BW)
    assert s_file == pytest.approx(s_mem, abs=1e-5)
    no_targets = tmp_path / "test.h5"
    save_to_h5(dict(data.tensors), str(no_targets))
    assert not met.has_targets(no_targets)
    with pytest.raises(KeyError, match="no 'targets' group"):
        met.load_targets(no_targets)
    truth_file = tmp_path / "truth.h5"
    save_h5(truth_file, {"val": data.truth})
    assert met.rate_r2(met.load_rates(truth_file, phase="val"), data.truth) == pytest.approx(1.0)
    with pytest.raises(KeyError, match="'test'"):
        met.load_rates(truth_file, phase="test")


def test_normalize_cond_idx_forms():
    want = [np.array([0, 2]), np.array([1, 3])]
    for form in (np.array([[0, 2], [1, 3]]), {"1": [1, 3], "0": [0, 2]}, np.array(want + [], dtype=object)):
        got = met.normalize_cond_idx(form, "x")
        assert got.dtype == object and [list(g) for g in got] == [list(w) for w in want]
    padded = met.normalize_cond_idx(np.array([[0, 2, -1], [1, 3, 4]]), "x")
    assert [list(g) for g in padded] == [[0, 2], [1, 3, 4]]


# ----------------------------------------------------------------------------------------------------
# ensembles
# ----------------------------------------------------------------------------------------------------
def test_rank_members_ties_nan_and_direction():
    table = pd.DataFrame(
        {"member": ["c", "a", "b", "d"], CO_BPS: [0.2, 0.3, 0.2, np.nan], TP_CORR: [-0.1, 0.5, -0.9, 0.0]}
    )
    assert ens.rank_members(table) == ["a", "b", "c"]  # tie 0.2 -> by id; NaN dropped
    assert ens.rank_members(table, TP_CORR) == ["b", "c", "d", "a"]  # lower is better
    with pytest.raises(KeyError, match="nope"):
        ens.rank_members(table, "nope")


def test_average_rates():
    a = {KEY: {"x": np.full((2, 3), 1.0), "y": np.zeros(4)}}
    b = {KEY: {"x": np.full((2, 3), 3.0), "y": np.ones(4)}}
    avg = ens.average_rates([a, b])
    np.testing.assert_allclose(avg[KEY]["x"], 2.0)
    np.testing.assert_allclose(avg[KEY]["y"], 0.5)
    assert avg[KEY]["x"].dtype == np.float32
    with pytest.raises(ValueError, match="x"):
        ens.average_rates([a, {KEY: {"x": np.ones((3, 3)), "y": np.ones(4)}}])
    with pytest.raises(KeyError, match="y"):
        ens.average_rates([a, {KEY: {"x": np.ones((2, 3))}}])


def test_choose_size_ties_go_to_smaller_n():
    curve = pd.DataFrame({"n": [1, 2, 3, 4, 5], CO_BPS: [0.1, 0.3, 0.25, 0.3, np.nan]})
    assert ens.choose_size(curve) == 2
    assert ens.choose_size(curve.iloc[::-1]) == 2  # order of rows does not matter
    assert ens.choose_size(pd.DataFrame({"n": [1, 2, 3], TP_CORR: [0.0, -0.4, -0.2]}), TP_CORR) == 2


def test_ensemble_curve_picks_the_good_members(data):
    # four noisy copies of the truth (averaging helps) followed by two flat members (averaging hurts)
    members = {f"good{i}": noisy(data.truth, 10 + i, 0.6) for i in range(4)}
    members |= {f"flat{i}": mean_rates(data) for i in range(2)}
    table = pd.DataFrame(
        {"member": list(members), CO_BPS: [met.co_bps(data.targets, r, LAYOUT, BW) for r in members.values()]}
    )
    ranking = ens.rank_members(table)
    assert set(ranking[:4]) == {f"good{i}" for i in range(4)}
    curve = ens.ensemble_curve(members, ranking, data.targets, LAYOUT, BW)
    assert list(curve["n"]) == [1, 2, 3, 4, 5, 6] and list(curve["member"]) == ranking
    assert ens.choose_size(curve) == 4
    # the curve's N=2 row is exactly score() of the average of the top two
    two = met.score(data.targets, ens.average_rates([members[m] for m in ranking[:2]]), LAYOUT, BW)
    assert curve.iloc[1][CO_BPS] == pytest.approx(two[CO_BPS], abs=1e-12)


# ----------------------------------------------------------------------------------------------------
# trial subsets
# ----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def rich() -> Synthetic:
    return make_data(seed=6, extras=True)


def test_subset_all_trials_in_any_order_scores_the_same(rich):
    pred = noisy(rich.truth, 7, 0.3)
    full = met.score(rich.targets, pred, LAYOUT, BW)
    n = len(rich.cond_eval)
    ident = subsets.subset_eval_trials(rich.targets, pred, np.arange(n))
    assert met.score(*ident, LAYOUT, BW) == full
    perm = np.random.default_rng(0).permutation(n)
    t_p, r_p = subsets.subset_eval_trials(rich.targets, pred, perm)
    # every metric is invariant to trial order only if conditions, jitter, masks follow the trials
    assert met.score(t_p, r_p, LAYOUT, BW) == pytest.approx(full, abs=1e-10)
    # a wrong remapping (condition lists left as they were) changes psth R2: the test can fail
    broken = dict(t_p[KEY], eval_cond_idx=rich.targets[KEY]["eval_cond_idx"])
    assert met.score({KEY: broken}, r_p, LAYOUT, BW)[PSTH_R2] != pytest.approx(full[PSTH_R2], abs=1e-6)


def test_subset_matches_manual_slices(rich):
    pred = noisy(rich.truth, 8, 0.3)
    idx = np.array([5, 0, 17, 3, 22, 9, 31, 12])
    t_s, r_s = subsets.subset_eval_trials(rich.targets, pred, idx)
    tg, rt = rich.targets[KEY], pred[KEY]
    for k in ("eval_spikes_heldout", "eval_behavior", "eval_spikes_heldin_forward", "eval_decode_mask", "eval_jitter"):
        np.testing.assert_array_equal(t_s[KEY][k], tg[k][idx])
    for k in ("psth", "train_behavior", "train_decode_mask"):
        assert t_s[KEY][k] is tg[k]
    assert r_s[KEY]["train_rates_heldout"] is rt["train_rates_heldout"]
    np.testing.assert_array_equal(r_s[KEY]["eval_rates_heldin_forward"], rt["eval_rates_heldin_forward"][idx])
    for c, got in enumerate(t_s[KEY]["eval_cond_idx"]):
        assert list(got) == [p for p in range(len(idx)) if rich.cond_eval[idx[p]] == c]
    manual = nlb_evaluation.bits_per_spike(
        rt["eval_rates_heldout"][idx].astype(float), tg["eval_spikes_heldout"][idx].astype(float)
    )
    assert met.score(t_s, r_s, LAYOUT, BW)[CO_BPS] == pytest.approx(manual, abs=1e-12)
    # one condition only: the others become empty and evaluate() skips them
    only0 = np.where(rich.cond_eval == 0)[0]
    t0, _ = subsets.subset_eval_trials(rich.targets, None, only0)
    assert [len(c) for c in t0[KEY]["eval_cond_idx"]] == [len(only0), 0, 0, 0]


def test_subset_rejects_bad_input(rich):
    with pytest.raises(ValueError, match="repeated"):
        subsets.subset_eval_trials(rich.targets, None, np.array([1, 1]))
    with pytest.raises(IndexError, match="eval_spikes_heldout"):
        subsets.subset_eval_trials(rich.targets, None, np.array([0, 999]))
    odd = {KEY: dict(rich.targets[KEY], eval_mystery=np.zeros(3))}
    with pytest.raises(KeyError, match="eval_mystery"):
        subsets.subset_eval_trials(odd, None, np.array([0]))


# ----------------------------------------------------------------------------------------------------
# honest estimate and the whole selection
# ----------------------------------------------------------------------------------------------------
def leaky_members(d: Synthetic, n_members: int = 5) -> dict:
    """Members that 'memorised' the held-out spikes of a random half of the val trials each.

    In-sample ranking and size choice reward such leaks; a split-half estimate must not.
    """
    base = mean_rates(d)
    spikes = d.targets[KEY]["eval_spikes_heldout"]
    rng = np.random.default_rng(11)
    out = {}
    for j in range(n_members):
        r = {KEY: {k: v.copy() for k, v in base[KEY].items()}}
        leak = rng.random(len(spikes)) < 0.5
        r[KEY]["eval_rates_heldout"][leak] = 0.8 * spikes[leak] + 0.2 * r[KEY]["eval_rates_heldout"][leak]
        out[f"m{j}"] = r
    return out


def test_split_halves_disjoint_and_complete():
    a, b = subsets.split_halves(41, seed=3)
    assert len(a) == 20 and len(b) == 21 and not set(a) & set(b) and set(a) | set(b) == set(range(41))
    np.testing.assert_array_equal(subsets.split_halves(41, seed=3)[0], a)
    assert not np.array_equal(subsets.split_halves(41, seed=4)[0], a)


def test_select_ensemble_honest_is_lower_on_overfit_case(data, tmp_path):
    members = leaky_members(data)
    # members given as files: the lazy path used for real runs
    paths = {}
    for m, r in members.items():
        paths[m] = tmp_path / f"{m}.h5"
        save_h5(paths[m], r)
    table = pd.DataFrame(
        {"member": list(members), CO_BPS: [met.score(data.targets, r, LAYOUT, BW)[CO_BPS] for r in members.values()]}
    )
    test_d = make_data(seed=21)
    result = ens.select_ensemble(
        paths,
        table,
        data.targets,
        LAYOUT,
        BW,
        seed=0,
        member_rates_test={m: test_d.truth for m in members},
        targets_test=test_d.targets,
    )
    assert result["members"] == ens.rank_members(table)[: result["n"]]
    assert set(result["val"]) == set(nlb_dataset(LAYOUT).metrics)
    assert result["honest"]["metrics"][CO_BPS] < result["val"][CO_BPS]
    assert result["test"] == pytest.approx(met.score(test_d.targets, test_d.truth, LAYOUT, BW), abs=1e-6)
    halves = ens.honest_estimate(members, data.targets, LAYOUT, BW, seed=0)["halves"]
    for h in halves:
        assert not set(h["fit_trials"]) & set(h["score_trials"])
        assert sorted(h["fit_trials"] + h["score_trials"]) == list(range(len(data.cond_eval)))
    assert halves[0]["fit_trials"] == halves[1]["score_trials"]


# ----------------------------------------------------------------------------------------------------
# smoothing baseline
# ----------------------------------------------------------------------------------------------------
def test_gaussian_window_is_centred_and_normalised():
    w = gaussian_window(50, 5)
    assert len(w) % 2 == 1 and w.sum() == pytest.approx(1.0) and np.argmax(w) == len(w) // 2
    assert len(gaussian_window(50, 20)) < len(w)  # bin-width aware


def test_smoothing_beats_mean_rate_and_is_scored_by_nlb_tools(monkeypatch):
    d = make_data(seed=9, n_train=100, n_in=30, t_len=40)
    rates = smoothing_rates(d.tensors, LAYOUT, BW, kern_sd_ms=30, alpha=0.01)
    assert set(rates[KEY]) == set(met.RATE_KEYS)
    calls = []
    real = nlb_evaluation.evaluate

    def spy(t, r):
        calls.append(r)
        return real(t, r)

    monkeypatch.setattr(nlb_evaluation, "evaluate", spy)
    smooth = met.score(d.targets, rates, LAYOUT, BW)
    assert len(calls) == 1 and calls[0][KEY] is rates[KEY]
    base = met.score(d.targets, mean_rates(d), LAYOUT, BW)
    assert smooth[CO_BPS] > base[CO_BPS] + 0.05
    assert smooth[VEL_R2] > base[VEL_R2]
    check_rates(rates, d.tensors, KEY)  # shapes, finite, positive
    # the forward GLM uses each trial's recent activity: better than the trial-averaged forward PSTH
    psth_fwd = smoothing_rates(d.tensors, LAYOUT, BW, kern_sd_ms=30, alpha=0.01, forward="psth")
    check_rates(psth_fwd, d.tensors, KEY)
    assert smooth[FP_BPS] > met.score(d.targets, psth_fwd, LAYOUT, BW)[FP_BPS]


# ----------------------------------------------------------------------------------------------------
# submission
# ----------------------------------------------------------------------------------------------------
def test_submission_round_trip(data, tmp_path):
    path = tmp_path / "submission.h5"
    write_submission(data.truth, path, data.tensors, LAYOUT, BW)
    check_submission(path, data.tensors, LAYOUT, BW)
    check_submission(path, data.tensors)  # group name inferred
    tensors_file = tmp_path / "test.h5"
    save_h5(tensors_file, data.tensors, attrs={"layout": LAYOUT, "bin_width_ms": BW, "phase": "test"})
    check_submission(path, tensors_file)  # tensors (and the group name) from the tensors file
    with h5py.File(path, "r") as f:
        back = h5_to_dict(f)
    assert list(back) == [KEY]
    for k, v in data.truth[KEY].items():
        assert back[KEY][k].dtype == np.float32
        np.testing.assert_allclose(back[KEY][k], v, rtol=1e-6)
    targets_file = tmp_path / "targets.h5"
    save_to_h5(data.targets, str(targets_file))
    from_files = nlb_evaluation.evaluate(str(targets_file), str(path))[0][f"{KEY}_split"]
    assert from_files == pytest.approx(met.score(data.targets, data.truth, LAYOUT, BW), abs=1e-5)


@pytest.mark.parametrize(
    "bad, match",
    [
        ("nan", "eval_rates_heldout"),
        ("shape", "train_rates_heldin"),
        ("missing", "eval_rates_heldin_forward"),
        ("zero", "eval_rates_heldout_forward"),
        ("extra", "bonus"),
    ],
)
def test_bad_submissions_raise_naming_the_key(data, tmp_path, bad, match):
    r = {KEY: {k: v.copy() for k, v in data.truth[KEY].items()}}
    if bad == "nan":
        r[KEY]["eval_rates_heldout"][0, 0, 0] = np.nan
    elif bad == "shape":
        r[KEY]["train_rates_heldin"] = r[KEY]["train_rates_heldin"][:-1]
    elif bad == "missing":
        del r[KEY]["eval_rates_heldin_forward"]
    elif bad == "zero":
        r[KEY]["eval_rates_heldout_forward"][1, 2, 3] = 0.0
    else:
        r[KEY]["bonus"] = np.ones(3)
    path = tmp_path / "submission.h5"
    with pytest.raises(SubmissionError, match=match):
        write_submission(r, path, data.tensors, LAYOUT, BW)
    assert not path.exists()  # nothing half-written
    save_h5(path, r)  # a bad file written by someone else is caught on re-reading
    with pytest.raises(SubmissionError, match=match):
        check_submission(path, data.tensors, LAYOUT, BW)


# ------------------------------------------------------------------------------------------------
# baselines.csv: every row comes from its own metrics file
def _metrics_file(path, co_bps: float, rate_r2: float | None = None):
    """A metrics JSON as `score` writes it, with hand-chosen values (distinct per file)."""
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"phase": path.stem.split("_")[-1], "layout": LAYOUT, CO_BPS: co_bps, VEL_R2: co_bps + 0.5}
    if rate_r2 is not None:
        body["rate R2"] = rate_r2
    path.write_text(json.dumps(body))
    return path


@pytest.fixture
def baseline_files(tmp_path):
    """Hand-made metrics of every method and phase. co-bps: set ensemble 0.1 x set number (+0.01 for test),
    member m00i 0.2 + 0.1 x i (+0.01 for test) + set number / 1000, smoothing 0.05, oracle 0.9. The STNDT
    ranking puts m001 first, the NDT ranking m000, so a best-member pick by name or by folder order fails."""
    import json

    sets = {"stndt": (1, ["m001", "m000"]), "ndt": (2, ["m000", "m001"])}
    files = {"ensembles": {}, "rankings": {}, "members": {}, "baselines": {}}
    for name, (num, ranking) in sets.items():
        root = tmp_path / name
        files["ensembles"][name] = {
            ph: _metrics_file(root / "ensemble" / f"metrics_{ph}.json", 0.1 * num + dt)
            for ph, dt in (("val", 0.0), ("test", 0.01))
        }
        (root / "ensemble.json").write_text(json.dumps({"ranking": ranking, "members": ranking[:1]}))
        files["rankings"][name] = root / "ensemble.json"
        files["members"][name] = {
            m: {
                ph: _metrics_file(root / "members" / m / f"metrics_{ph}.json", 0.2 + 0.1 * i + dt + num / 1000)
                for ph, dt in (("val", 0.0), ("test", 0.01))
            }
            for i, m in enumerate(["m000", "m001"])
        }
    for name, value, r2 in (("smoothing", 0.05, 0.4), ("oracle", 0.9, 1.0)):
        files["baselines"][name] = {
            ph: _metrics_file(tmp_path / name / f"metrics_{ph}.json", value + dt, r2)
            for ph, dt in (("val", 0.0), ("test", 0.01))
        }
    return files


# (method, phase) -> co-bps of the file that row must come from (see baseline_files)
EXPECTED_BASELINES = {
    ("stndt_ensemble", "val"): 0.1,
    ("stndt_ensemble", "test"): 0.11,
    ("stndt_single", "val"): 0.301,
    ("stndt_single", "test"): 0.311,  # m001 (ranked first)
    ("ndt_ensemble", "val"): 0.2,
    ("ndt_ensemble", "test"): 0.21,
    ("ndt_single", "val"): 0.202,
    ("ndt_single", "test"): 0.212,  # m000 (ranked first)
    ("smoothing", "val"): 0.05,
    ("smoothing", "test"): 0.06,
    ("oracle", "val"): 0.9,
    ("oracle", "test"): 0.91,
}


def _check_baselines(table: pd.DataFrame) -> None:
    assert list(zip(table["method"], table["phase"])) == list(EXPECTED_BASELINES)
    for (method, phase), co in EXPECTED_BASELINES.items():
        row = table[(table["method"] == method) & (table["phase"] == phase)].iloc[0]
        assert row[CO_BPS] == pytest.approx(co, abs=1e-12), f"{method} {phase}"
        assert row[VEL_R2] == pytest.approx(co + 0.5, abs=1e-12), f"{method} {phase}"
    # rate R2 only where the source file has it (the baselines here), empty elsewhere
    assert table.set_index(["method", "phase"])["rate R2"].dropna().to_dict() == {
        ("smoothing", "val"): 0.4,
        ("smoothing", "test"): 0.4,
        ("oracle", "val"): 1.0,
        ("oracle", "test"): 1.0,
    }


def test_baselines_rows_equal_their_own_metrics_files(baseline_files, tmp_path):
    from stndt.evaluate.baselines import baseline_methods, write_baselines

    f = baseline_files
    # sets given in another order than VARIANTS' still come out STNDT first
    methods = baseline_methods(
        {"ndt": f["ensembles"]["ndt"], "stndt": f["ensembles"]["stndt"]}, f["rankings"], f["members"], f["baselines"]
    )
    table = write_baselines(methods, ["val", "test"], tmp_path / "baselines.csv")
    _check_baselines(table)
    _check_baselines(pd.read_csv(tmp_path / "baselines.csv"))


def test_baselines_cli_maps_each_argument_to_its_row(baseline_files, tmp_path):
    from stndt.cli import main

    f = baseline_files
    args = ["baselines", "--phases", "val", "test", "--out", str(tmp_path / "b.csv")]
    for name in ("stndt", "ndt"):
        args += ["--ranking", name, str(f["rankings"][name])]
        for ph in ("val", "test"):
            args += ["--ensemble-metrics", name, ph, str(f["ensembles"][name][ph])]
            for m, files in f["members"][name].items():
                args += ["--member-metrics", name, m, ph, str(files[ph])]
    for name in ("smoothing", "oracle"):
        for ph in ("val", "test"):
            args += ["--baseline-metrics", name, ph, str(f["baselines"][name][ph])]
    assert main(args) == 0
    _check_baselines(pd.read_csv(tmp_path / "b.csv"))


def test_baselines_refuse_incomplete_or_unknown_inputs(baseline_files, tmp_path):
    from stndt.cli import main
    from stndt.evaluate.baselines import baseline_methods, baseline_rows

    f = baseline_files
    no_test = {"smoothing": {"val": f["baselines"]["smoothing"]["val"]}}
    with pytest.raises(ValueError, match="'smoothing' has metrics for phases \\['val'\\], expected exactly"):
        baseline_rows(baseline_methods({}, {}, {}, no_test), ["val", "test"])
    with pytest.raises(ValueError, match="unknown member set.*'ndtt'"):
        baseline_methods({"ndtt": f["ensembles"]["ndt"]}, {}, {}, {})
    only_m000 = {"stndt": {"m000": f["members"]["stndt"]["m000"]}}
    with pytest.raises(ValueError, match="best member is m001, but no metrics files were given"):
        baseline_methods({}, {"stndt": f["rankings"]["stndt"]}, only_m000, {})
    twice = [
        "baselines",
        "--out",
        str(tmp_path / "x.csv"),
        "--baseline-metrics",
        "smoothing",
        "val",
        "a.json",
        "--baseline-metrics",
        "smoothing",
        "val",
        "b.json",
    ]
    assert main(twice) == 1 and not (tmp_path / "x.csv").exists()


def test_paired_difference_is_the_mean_of_pairs_with_a_bootstrap_interval():
    from stndt.evaluate.paired import paired_difference

    a, b = [0.30, 0.32, 0.31, 0.29], [0.31, 0.34, 0.31, 0.30]
    d = paired_difference(a, b, seed=0)
    assert d["value"] == pytest.approx(0.01) and d["n_pairs"] == 4
    assert d["ci_low"] <= d["value"] <= d["ci_high"] and d["ci_low"] >= 0.0  # every pair >= 0
    assert paired_difference(a, b, seed=0) == d  # seeded
    one = paired_difference([0.3], [0.35], seed=0)
    assert one["value"] == pytest.approx(0.05) and math.isnan(one["ci_low"])  # no interval from one pair


def test_a_dmfc_subset_too_small_for_tp_corr_still_gets_bits_per_spike():
    """A holdout of one trial per condition: nlb_tools cannot compute tp corr (it correlates within a
    condition), so score() fails; the bits-per-spike metrics are still defined and equal evaluate()'s."""
    key = nlb_key("dmfc_rsg", BW)
    d = make_data(seed=3, key=key, dmfc=True)
    one_per_cond = np.array([int(np.flatnonzero(d.cond_eval == c)[0]) for c in np.unique(d.cond_eval)])
    t, r = subsets.subset_eval_trials(d.targets, d.truth, one_per_cond, key)
    with pytest.raises(ValueError):
        met.score(t, r, "dmfc_rsg", BW)
    got = met.bps_metrics(t, r, "dmfc_rsg", BW)
    full = met.score(d.targets, d.truth, "dmfc_rsg", BW)
    assert set(got) == {CO_BPS, FP_BPS}
    assert met.bps_metrics(d.targets, d.truth, "dmfc_rsg", BW) == {
        CO_BPS: pytest.approx(full[CO_BPS]),
        FP_BPS: pytest.approx(full[FP_BPS]),
    }
