"""Tests of stndt.analysis: spatial attention of trained members and the neuron-dropping analysis.

A tiny but real results folder is built once per session with the pipeline's own functions (synthetic
MC_Maze-layout data at 20 ms bins, nlb_tools tensors, true rates, 2 STNDT + 2 NDT + 1 no-contrast
members trained for a few seconds, scored, tabled and ensembled). test_figures.py reuses it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tiny_tensors import ensemble_files, member_files

from stndt.analysis import attention as att
from stndt.analysis import neuron_dropping as nd
from stndt.datasets import CO_BPS, METRICS

LAYOUT, BIN_MS = "mc_maze", 20
N_HELDIN, N_HELDOUT = 12, 4
TINY_TRAINING = dict(
    n_layers=2,
    n_heads=1,
    ff_hidden=16,
    context_forward=-1,
    context_backward=-1,
    dropout=0.05,
    dropout_rates=0.05,
    dropout_embedding=0.05,
    batch_size=8,
    warmup_epochs=2,
    weight_decay=5e-5,
    num_threads=1,
    patience=1000,
    val_every=5,
    max_epochs=30,
    contrast_lambda=0.1,
)
SETS = {
    "": ({}, 2),
    "variants/ndt": ({"spatial": False, "contrastive": False}, 2),
    "variants/no_contrast": ({"contrastive": False}, 1),
}
_BUILT: dict[str, Path] = {}


def build_tiny_results(root: Path) -> Path:
    """A results/<ds> folder in the pipeline's layout, small enough to build in ~15 s on 2 CPU cores."""
    from stndt.data.synthetic import SyntheticConfig, generate, make_truth
    from stndt.data.tensors import build_phase, write_phase
    from stndt.evaluate.members_table import members_table
    from stndt.evaluate.pipeline import build_ensemble, score_rates
    from stndt.io import save_h5
    from stndt.train.solo import train_member

    ds = root / "tiny_synth"
    cfg = SyntheticConfig(
        n_heldin=N_HELDIN,
        n_heldout=N_HELDOUT,
        n_train=32,
        n_val=12,
        n_test=8,
        n_none=0,
        n_conditions=4,
        mean_rate_hz=20.0,
        seed=1,
    )
    _, _, hidden = generate(LAYOUT, ds / "raw", ds / "truth" / "full.nwb", cfg)
    for phase in ("val", "test"):
        data = build_phase(ds / "raw", LAYOUT, phase, BIN_MS, hidden_path=hidden if phase == "test" else None)
        write_phase(ds / "tensors" / f"{phase}.h5", data, LAYOUT, phase, BIN_MS)
    save_h5(ds / "truth.h5", make_truth(hidden, LAYOUT, BIN_MS))
    for sub, (switches, n) in SETS.items():
        set_dir = ds / sub if sub else ds
        dirs = []
        for i in range(n):
            md = set_dir / "members" / f"m{i:03d}"
            params = {**TINY_TRAINING, **switches, "seed": i, "lr": (1e-2, 4e-3)[i]}
            train_member(ds / "tensors" / "val.h5", ds / "tensors" / "test.h5", md, params, progress=False)
            for phase in ("val", "test"):
                score_rates(
                    md / f"rates_{phase}.h5",
                    ds / "tensors" / f"{phase}.h5",
                    md / f"metrics_{phase}.json",
                    ds / "truth.h5",
                )
            dirs.append(md)
        members_table(member_files(*dirs), set_dir / "members.csv", ("val", "test"))
        build_ensemble(
            set_dir / "members.csv",
            member_files(*dirs),
            ds / "tensors" / "val.h5",
            ds / "tensors" / "test.h5",
            ensemble_files(set_dir),
            seed=0,
        )
    return ds


@pytest.fixture(scope="session")
def tiny_ds(tmp_path_factory) -> Path:
    """The tiny results folder (built once, shared with test_figures.py through this module)."""
    if "ds" not in _BUILT:
        _BUILT["ds"] = build_tiny_results(tmp_path_factory.mktemp("tiny_results"))
    return _BUILT["ds"]


def _val(ds: Path) -> Path:
    return ds / "tensors" / "val.h5"


# ------------------------------------------------------------------------------------------ attention
def test_attention_shape_rows_and_trial_independence(tiny_ds):
    member = tiny_ds / "members" / "m000"
    a = att.spatial_attention(member, _val(tiny_ds), [0, 2, 5])
    n = N_HELDIN + N_HELDOUT
    assert a.shape == (TINY_TRAINING["n_layers"], 3, n, n)
    assert a.dtype == np.float32 and (a >= 0).all()
    np.testing.assert_allclose(a.sum(axis=-1), 1.0, atol=1e-5)
    # each trial's attention depends on that trial only (no leakage across the batch)
    single = att.spatial_attention(member, _val(tiny_ds), [2])
    np.testing.assert_allclose(single[:, 0], a[:, 1], atol=1e-6)
    # the attention differs between trials (it is input-dependent, not a fixed matrix)
    assert np.abs(a[:, 0] - a[:, 1]).max() > 1e-4
    assert att.spatial_attention(member, _val(tiny_ds)).shape[1] == 12  # None = every val eval trial
    with pytest.raises(IndexError, match="out of range"):
        att.spatial_attention(member, _val(tiny_ds), [99])


def test_attention_ranking_is_permutation_by_received_attention(tiny_ds):
    member = tiny_ds / "members" / "m000"
    order = att.attention_ranking(member, _val(tiny_ds))
    assert sorted(order.tolist()) == list(range(N_HELDIN))
    received = att.received_attention(att.spatial_attention(member, _val(tiny_ds)), N_HELDIN, layer=0)
    assert np.all(np.diff(received[order]) <= 0)  # most attended first
    assert received.shape == (N_HELDIN,)


def test_rank_by_attention_breaks_ties_by_index():
    assert att.rank_by_attention(np.array([0.1, 0.3, 0.3, 0.2])).tolist() == [1, 2, 3, 0]


def test_ndt_member_has_no_spatial_attention(tiny_ds):
    with pytest.raises(ValueError, match="no spatial attention"):
        att.spatial_attention(tiny_ds / "variants" / "ndt" / "members" / "m000", _val(tiny_ds), [0])


# ------------------------------------------------------------------------------------- neuron dropping
def test_dropping_grid_and_random_orders():
    grid = nd.dropping_grid(40)
    assert grid[0] == 0 and grid[-1] == 40 and grid == sorted(set(grid)) and 7 <= len(grid) <= 8
    assert nd.dropping_grid(3) == [0, 1, 2, 3]
    with pytest.raises(ValueError):
        nd.dropping_grid(0)
    a, b = nd.random_orders(10, 3, seed=5, pair=0), nd.random_orders(10, 3, seed=5, pair=0)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert all(sorted(x.tolist()) == list(range(10)) for x in a)
    assert not np.array_equal(a[0], a[1])
    assert not np.array_equal(a[0], nd.random_orders(10, 1, seed=5, pair=1)[0])


def test_drop_inputs_zeroes_only_those_neurons():
    x = np.random.default_rng(0).poisson(2.0, (3, 5, 6)).astype(np.float32) + 1
    y = nd.drop_inputs(x, [1, 4])
    assert (y[..., [1, 4]] == 0).all() and np.array_equal(y[..., [0, 2, 3, 5]], x[..., [0, 2, 3, 5]])
    assert (x > 0).all()  # the input is not modified in place


def member_set(set_dir: Path) -> nd.MemberSet:
    """A member set's files as the neuron-dropping analysis takes them: ensemble.json and every best.pt."""
    return nd.MemberSet.of(
        set_dir / "ensemble.json", {p.parent.name: p for p in sorted((set_dir / "members").glob("*/best.pt"))}
    )


@pytest.fixture(scope="module")
def dropping(tiny_ds, tmp_path_factory):
    out = tmp_path_factory.mktemp("dropping") / "neuron_dropping.csv"
    table = nd.neuron_dropping(
        _val(tiny_ds),
        member_set(tiny_ds),
        out,
        ndt=member_set(tiny_ds / "variants" / "ndt"),
        n_members=2,
        n_random=2,
        ks=[0, 6, N_HELDIN],
        seed=0,
    )
    return table, out


def test_dropping_table_layout(dropping):
    table, out = dropping
    assert list(table.columns[:6]) == list(nd.ID_COLUMNS)
    assert [c for c in table.columns if c in METRICS] == ["co-bps", "vel R2", "psth R2", "fp-bps"]
    # 2 pairs x 2 models x (attention + 2 random) x 3 k
    assert len(table) == 2 * 2 * 3 * 3
    assert set(table["model"]) == {nd.MODEL_STNDT, nd.MODEL_NDT}
    assert table.loc[table["order"] == nd.ORDER_ATTENTION, "seed"].isna().all()
    assert set(table.loc[table["order"] == nd.ORDER_RANDOM, "seed"]) == {0, 1}
    again = pd.read_csv(out)
    assert len(again) == len(table)
    np.testing.assert_allclose(again[CO_BPS], table[CO_BPS])


def test_dropping_zero_neurons_reproduces_member_metrics(dropping, tiny_ds):
    from stndt.evaluate.metrics import load_rates, load_targets, score

    table, _ = dropping
    targets = load_targets(_val(tiny_ds))
    for (model, member), rows in table[table["k"] == 0].groupby(["model", "member"]):
        folder = tiny_ds / ("members" if model == nd.MODEL_STNDT else "variants/ndt/members") / member
        own = score(targets, load_rates(folder / "rates_val.h5"), LAYOUT, BIN_MS)
        for metric, value in own.items():
            np.testing.assert_allclose(
                rows[metric].to_numpy(), value, atol=1e-6, rtol=0, err_msg=f"{model} {member} {metric}"
            )


def test_dropping_all_neurons_lowers_co_bps(dropping):
    table, _ = dropping
    for (model, member), rows in table.groupby(["model", "member"]):
        k0 = rows.loc[rows["k"] == 0, CO_BPS].iloc[0]
        kall = rows.loc[rows["k"] == N_HELDIN, CO_BPS]
        assert (kall < k0).all(), f"{model} {member}: co-bps {k0} with all inputs, {kall.tolist()} with none"
        assert kall.nunique() == 1  # every order drops the same (all) neurons: one scored input


def test_dropping_orders_and_pairing(dropping, tiny_ds):
    table, _ = dropping
    ranking = json.loads((tiny_ds / "ensemble.json").read_text())["ranking"]
    st = table[table["model"] == nd.MODEL_STNDT]
    assert sorted(st["member"].unique()) == sorted(ranking[:2])
    for member in ranking[:2]:
        order = att.attention_ranking(tiny_ds / "members" / member, _val(tiny_ds))
        row = st[(st["member"] == member) & (st["order"] == nd.ORDER_ATTENTION) & (st["k"] == 6)].iloc[0]
        assert row["dropped"].split() == [str(i) for i in order[:6]]
    # NDT member i is fed exactly the dropped inputs of STNDT member i (same id, same draw)
    keys = ["order_from", "order", "seed", "k"]
    merged = st.merge(table[table["model"] == nd.MODEL_NDT], on=keys, suffixes=("_st", "_ndt"))
    assert len(merged) == len(st)
    assert (merged["dropped_st"].fillna("") == merged["dropped_ndt"].fillna("")).all()
    assert (merged["member_ndt"] == merged["order_from"]).all()
    # random orders are not the attention order
    rnd = st[(st["order"] == nd.ORDER_RANDOM) & (st["k"] == 6)]
    att_rows = st[(st["order"] == nd.ORDER_ATTENTION) & (st["k"] == 6)]
    assert set(rnd["dropped"]) - set(att_rows["dropped"])


def test_dropped_rates_leave_inputs_and_targets_alone(tiny_ds):
    from stndt.train.checkpoint import load_member
    from stndt.train.data import load_phase_tensors

    p = load_phase_tensors(_val(tiny_ds))
    before_in, before_tr = p.eval_heldin.copy(), p.train_heldin.copy()
    model, _ = load_member(tiny_ds / "members" / "m000")
    rates = nd.dropped_rates(model, p, list(range(N_HELDIN)))[p.nlb_key]
    assert np.array_equal(p.eval_heldin, before_in) and np.array_equal(p.train_heldin, before_tr)
    assert rates["train_rates_heldin"].shape == p.train_heldin.shape
    assert rates["eval_rates_heldout"].shape == p.eval_heldout.shape
    # with no input at all every trial gets the same rates
    ev = rates["eval_rates_heldout"]
    np.testing.assert_allclose(ev, np.broadcast_to(ev[:1], ev.shape), rtol=1e-5)


def test_neuron_dropping_rejects_bad_k(tiny_ds, tmp_path):
    with pytest.raises(ValueError, match="every k must be in 0..12"):
        nd.neuron_dropping(_val(tiny_ds), member_set(tiny_ds), tmp_path / "x.csv", n_members=1, n_random=0, ks=[0, 13])
    assert not (tmp_path / "x.csv").exists()


def test_neuron_dropping_without_ndt_has_stndt_rows_only(tiny_ds, dropping, tmp_path):
    """NDT is optional: given no NDT members the analysis makes exactly the STNDT rows of a full run."""
    table = nd.neuron_dropping(
        _val(tiny_ds), member_set(tiny_ds), tmp_path / "st.csv", n_members=1, n_random=0, ks=[0, N_HELDIN], seed=0
    )
    assert set(table["model"]) == {nd.MODEL_STNDT} and len(table) == 2
    best = json.loads((tiny_ds / "ensemble.json").read_text())["ranking"][0]
    full = dropping[0]
    full = full[(full["model"] == nd.MODEL_STNDT) & (full["member"] == best) & (full["order"] == nd.ORDER_ATTENTION)]
    for k in (0, N_HELDIN):
        np.testing.assert_allclose(
            table.loc[table["k"] == k, CO_BPS].to_numpy(),
            full.loc[full["k"] == k, CO_BPS].to_numpy(),
            atol=1e-9,
            rtol=0,
        )


def test_member_selection_reads_the_given_files_only(tiny_ds, tmp_path):
    """Members come from the given ensemble.json's ranking and checkpoints; a ranked member without a
    checkpoint is an error naming it, and an NDT member is paired by id, else by rank."""
    stndt, ndt = member_set(tiny_ds), member_set(tiny_ds / "variants" / "ndt")
    ranking = json.loads((tiny_ds / "ensemble.json").read_text())["ranking"]
    pairs = nd.select_members(stndt, ndt, n_members=2)
    assert [(st.member, st.path) for st, _ in pairs] == [(m, stndt.checkpoints[m]) for m in ranking[:2]]
    assert [(n.member, n.path) for _, n in pairs] == [(m, ndt.checkpoints[m]) for m in ranking[:2]]
    assert all(n is None for _, n in nd.select_members(stndt, None, n_members=2))
    missing = nd.MemberSet.of(stndt.ensemble, {m: p for m, p in stndt.checkpoints.items() if m != ranking[0]})
    with pytest.raises(ValueError, match=f"STNDT member {ranking[0]} .* no checkpoint"):
        nd.select_members(missing, None, n_members=1)
    # NDT checkpoints under other ids: paired by rank in the NDT set's own ranking
    ndt_ranking = json.loads((tiny_ds / "variants/ndt/ensemble.json").read_text())["ranking"]
    renamed = {f"x{m}": p for m, p in ndt.checkpoints.items()}
    (tmp_path / "ensemble.json").write_text(json.dumps({"ranking": [f"x{m}" for m in ndt_ranking], "members": []}))
    by_rank = nd.select_members(stndt, nd.MemberSet.of(tmp_path / "ensemble.json", renamed), n_members=2)
    assert [n.member for _, n in by_rank] == [f"x{m}" for m in ndt_ranking[:2]]


def test_evaluation_commands_read_the_member_files_they_are_handed(tiny_ds, tmp_path, capsys):
    """members-table, ensemble and paired-ablation read every member file from the path they are given
    (`--member-file MEMBER NAME PATH`, as the rules pass them), never from a member folder: copies
    scattered under other names give the tables of the pipeline's own layout."""
    from stndt.cli import main

    def scattered(sub: str, names: list[str], set_key: tuple[str, ...] = ()) -> list[str]:
        args = []
        root = tiny_ds / sub if sub else tiny_ds
        for m in sorted(p.name for p in (root / "members").iterdir()):
            for name in names:
                copy = tmp_path / "scattered" / f"{sub.replace('/', '_')}_{m}_{name}.bin"
                copy.parent.mkdir(exist_ok=True)
                copy.write_bytes((root / "members" / m / name).read_bytes())
                args += ["--member-file", *set_key, m, name, str(copy)]
        return args

    phases = ["val", "test"]
    table_files = ["params.json", "train_log.csv", *(f"metrics_{p}.json" for p in phases)]
    out = tmp_path / "out"
    assert 0 == main(
        ["members-table", *scattered("", table_files), "--phases", *phases, "--out", str(out / "members.csv")]
    )
    pd.testing.assert_frame_equal(pd.read_csv(out / "members.csv"), pd.read_csv(tiny_ds / "members.csv"))

    rates = [f"rates_{p}.h5" for p in phases]
    tensors = ["--val", str(_val(tiny_ds)), "--test", str(tiny_ds / "tensors" / "test.h5")]
    assert 0 == main(
        ["ensemble", "--table", str(out / "members.csv"), *scattered("", rates), *tensors]
        + ["--out-json", str(out / "ensemble.json"), "--out-curve", str(out / "curve.csv"), "--seed", "0"]
        + [x for p in phases for x in ("--out-rates", p, str(out / f"rates_{p}.h5"))]
    )
    assert json.loads((out / "ensemble.json").read_text()) == json.loads((tiny_ds / "ensemble.json").read_text())

    metrics = [f"metrics_{p}.json" for p in phases]
    members = scattered("", rates + metrics, ("stndt",)) + scattered("variants/ndt", rates + metrics, ("ndt",))
    assert 0 == main(["paired-ablation", *members, *tensors, "--seed", "0", "--out", str(out / "paired.csv")])
    paired = pd.read_csv(out / "paired.csv")
    assert set(paired["comparison"]) == {"ndt"} and set(paired["set"]) >= {"stndt", "ndt"}
    assert set(paired["split"]) >= {"test", "val"}
    # a file the rule did not hand over is an error naming the member and the file, never looked up
    partial = scattered("", ["rates_test.h5", "metrics_val.json"], ("stndt",)) + members[len(members) // 2 :]
    capsys.readouterr()
    assert main(["paired-ablation", *partial, *tensors, "--out", str(out / "x.csv")]) == 1
    assert re.search(r"member m00\d: no rates_val.h5 given", capsys.readouterr().err)
    assert not (out / "x.csv").exists()
