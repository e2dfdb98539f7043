"""Ensemble candidates (evaluation.candidates, stndt.candidates): members keep the reference's extra best
checkpoints (best val masked loss, unmasked loss, contrastive loss) only when asked; duplicates collapse;
a resumed or packed member decides and writes exactly what an uninterrupted solo one does; the ensemble
ranks the whole pool on the selection trials only and honours max_size; bad settings name their key; the
tiny DAG runs with the setting.

Training data: tiny tensors from tests/tiny_tensors.py; ensemble data: latent-driven Poisson data from
tests/test_evaluate.py's generator, with hand-made candidates whose quality differs between the
selection and the holdout trials.
"""

from __future__ import annotations

import json
import math
import shutil
import textwrap
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import BACKGROUND_NICE, background_scenario, nothing_to_do, snakemake, write_config
from conftest import TINY as TINY_CONFIG
from test_evaluate import BW, KEY, LAYOUT, make_data, mean_rates, noisy
from tiny_tensors import (
    TINY_MEMBER,
    assert_same_member_outputs,
    ensemble_files,
    h5_arrays,
    kill_when,
    member_files,
    start_runner,
    write_tiny_tensors,
)

from stndt.candidates import (
    CANDIDATES_DIR,
    CANDIDATES_FORMAT,
    CANDIDATES_JSON,
    CONTRAST_LOSS,
    EXTRA_CRITERIA,
    MASKED_LOSS,
    UNMASKED_LOSS,
    CandidateRates,
    rates_name,
    read_candidates,
)
from stndt.datasets import CO_BPS
from stndt.evaluate.holdout import HOLDOUT_KEY, holdout_trials, selection_trials
from stndt.evaluate.metrics import co_bps, load_rates, normalize_cond_idx
from stndt.evaluate.pipeline import build_ensemble
from stndt.evaluate.subsets import subset_eval_trials
from stndt.io import save_h5, write_json
from stndt.train.candidates import VAL_UNMASKED_NLL, candidate_summary, track
from stndt.train.checkpoint import STATE_FILE
from stndt.train.inference import VAL_MASKED_NLL
from stndt.train.pack.train import train_pack
from stndt.train.solo import train_member

TINY = {**TINY_MEMBER, "max_epochs": 60, "keep_state": True}


@pytest.fixture(scope="module")
def tensors(tmp_path_factory):
    return write_tiny_tensors(tmp_path_factory.mktemp("cand_tensors"), 96, 32, 64, 16)


@pytest.fixture(scope="module")
def runs(tensors, tmp_path_factory):
    """The same member trained without and with candidate_checkpoints."""
    root = tmp_path_factory.mktemp("cand_runs")
    out = {}
    for flag in (False, True):
        out[flag] = root / f"m_{flag}"
        train_member(*tensors, out[flag], {**TINY, "candidate_checkpoints": flag}, progress=False)
    return out


def assert_same_candidates(a: Path, b: Path) -> None:
    a, b = Path(a) / CANDIDATES_DIR, Path(b) / CANDIDATES_DIR
    assert json.loads((a / CANDIDATES_JSON).read_text()) == json.loads((b / CANDIDATES_JSON).read_text())
    for phase in ("val", "test"):
        ra, rb = h5_arrays(a / rates_name(phase)), h5_arrays(b / rates_name(phase))
        assert ra.keys() == rb.keys() and all(np.array_equal(ra[k], rb[k]) for k in ra), phase


# ------------------------------------------------------------------------------------------ training
def test_candidates_are_kept_and_written_only_when_asked(runs, tensors):
    plain, cand = runs[False], runs[True]
    assert not (plain / CANDIDATES_DIR).exists()
    assert "candidates" not in torch.load(plain / STATE_FILE, weights_only=False)  # no extra weights kept
    # the setting changes nothing about training or the member's own outputs
    a, b = (torch.load(d / "best.pt", weights_only=True) for d in (plain, cand))
    assert a["epoch"] == b["epoch"] and all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    for name in ("rates_val.h5", "rates_test.h5"):
        ra, rb = h5_arrays(plain / name), h5_arrays(cand / name)
        assert ra.keys() == rb.keys() and all(np.array_equal(ra[k], rb[k]) for k in ra), name
    log_a, log_b = (pd.read_csv(d / "train_log.csv").drop(columns="time_s") for d in (plain, cand))
    pd.testing.assert_frame_equal(log_a, log_b)

    info = json.loads((cand / CANDIDATES_DIR / CANDIDATES_JSON).read_text())
    assert info["format"] == CANDIDATES_FORMAT and info["cobps_epoch"] == b["epoch"]
    assert set(info["criteria"]) == set(EXTRA_CRITERIA) and info["not_tracked"] == {}
    # the masked-loss candidate is the epoch of the log's lowest val masked loss (first one: strict)
    val_rows = log_b.dropna(subset=[VAL_MASKED_NLL])
    masked = info["criteria"][MASKED_LOSS]
    assert masked["epoch"] == int(val_rows.loc[val_rows[VAL_MASKED_NLL].idxmin(), "epoch"])
    assert masked["value"] == pytest.approx(val_rows[VAL_MASKED_NLL].min())
    # on this run the criteria peak at distinct epochs: every one is its own candidate
    epochs = [info["cobps_epoch"], *(info["criteria"][c]["epoch"] for c in info["written"])]
    assert info["written"] == list(EXTRA_CRITERIA) and len(set(epochs)) == len(epochs)
    # each written group holds its own checkpoint's rates: they reproduce its val unmasked loss
    with h5py.File(tensors[0]) as f:
        heldin = f["eval_spikes_heldin"][()].astype(np.float64)
    rates = CandidateRates(cand / CANDIDATES_DIR / rates_name("val"), UNMASKED_LOSS).load()
    r = np.log(rates["mc_maze"]["eval_rates_heldin"].astype(np.float64))
    assert np.mean(np.exp(r) - heldin * r) == pytest.approx(info["criteria"][UNMASKED_LOSS]["value"], rel=1e-5)
    member = load_rates(cand / "rates_val.h5")["mc_maze"]["eval_rates_heldout"]
    for c in info["written"]:
        other = CandidateRates(cand / CANDIDATES_DIR / rates_name("val"), c).load()["mc_maze"]["eval_rates_heldout"]
        assert not np.array_equal(other, member)
    test_rates = h5_arrays(cand / CANDIDATES_DIR / rates_name("test"))
    assert {k.split("/")[0] for k in test_rates} == set(info["written"])
    assert test_rates[f"{MASKED_LOSS}/mc_maze/train_rates_heldin"].shape[0] == 64
    assert [c["id"] for c in read_candidates(cand.name, member_files(cand)[cand.name])] == [
        f"{cand.name}@{c}" for c in info["written"]
    ]


def test_duplicate_checkpoints_collapse_and_improvements_are_strict():
    contrastive = SimpleNamespace(obj_cfg=SimpleNamespace(contrastive=True, contrast_lambda=0.1))
    st = {
        "best": {"epoch": 10},
        "candidates": {
            MASKED_LOSS: {"epoch": 10, "value": 1.0},
            UNMASKED_LOSS: {"epoch": 20, "value": 2.0},
            CONTRAST_LOSS: {"epoch": 20, "value": 3.0},
        },
    }
    s = candidate_summary(contrastive, st)
    assert [s["criteria"][c]["same_as"] for c in EXTRA_CRITERIA] == ["cobps", None, UNMASKED_LOSS]
    assert s["written"] == [UNMASKED_LOSS]
    plain = SimpleNamespace(obj_cfg=SimpleNamespace(contrastive=False, contrast_lambda=0.1))
    s = candidate_summary(plain, {"best": {"epoch": 5}, "candidates": {MASKED_LOSS: {"epoch": 5, "value": 1.0}}})
    assert s["written"] == [] and set(s["not_tracked"]) == {UNMASKED_LOSS, CONTRAST_LOSS}

    m = SimpleNamespace(model=torch.nn.Linear(2, 2))
    best_weights = {"w": torch.zeros(1)}
    st = {"best": {"epoch": 5, "weights": best_weights}}
    track(m, st, {VAL_MASKED_NLL: 1.0, VAL_UNMASKED_NLL: 2.0}, 5)
    kept = st["candidates"]
    assert kept[MASKED_LOSS]["weights"] is best_weights and kept[UNMASKED_LOSS]["weights"] is best_weights
    track(m, st, {VAL_MASKED_NLL: 1.0, VAL_UNMASKED_NLL: 1.5}, 10)  # equal is no improvement
    assert (kept[MASKED_LOSS]["epoch"], kept[UNMASKED_LOSS]["epoch"]) == (5, 10)
    assert set(kept[UNMASKED_LOSS]["weights"]) == {"weight", "bias"}
    track(m, st, {VAL_MASKED_NLL: math.nan, VAL_UNMASKED_NLL: math.inf}, 15)
    assert (kept[MASKED_LOSS]["epoch"], kept[UNMASKED_LOSS]["epoch"]) == (5, 10)


RUNNER = textwrap.dedent("""
    import json, sys
    from stndt.train.solo import train_member
    val, test, out, params = sys.argv[1:5]
    train_member(val, test, out, json.loads(params), progress=False)
""")


def test_killed_and_resumed_member_writes_the_uninterrupted_candidates(tensors, runs, tmp_path):
    params = {**TINY, "candidate_checkpoints": True, "checkpoint_every_epochs": 7, "keep_state": False}
    run_dir = tmp_path / "killed"

    def start():
        return start_runner(RUNNER, str(tensors[0]), str(tensors[1]), str(run_dir), json.dumps(params))

    proc = start()
    kill_when(proc, (run_dir / STATE_FILE).exists)
    first = (run_dir / STATE_FILE).stat().st_mtime_ns
    proc = start()
    kill_when(proc, lambda: (run_dir / STATE_FILE).stat().st_mtime_ns != first)
    saved = torch.load(run_dir / STATE_FILE, weights_only=False)
    assert 0 < saved["epoch"] < 60 and saved["candidates"]  # the extra best weights live in the state
    assert not (run_dir / CANDIDATES_DIR / CANDIDATES_JSON).exists()
    proc = start()
    assert proc.wait() == 0, proc.stderr.read()[-3000:]
    assert "resumed from" in (run_dir / "train.log").read_text()
    ref = runs[True]
    assert_same_candidates(ref, run_dir)
    for name in ("rates_val.h5", "rates_test.h5"):
        ra, rb = h5_arrays(ref / name), h5_arrays(run_dir / name)
        assert all(np.array_equal(ra[k], rb[k]) for k in ra)


def test_packed_members_write_their_solo_candidates(tensors, runs, tmp_path):
    """A pack keeps every member's extra checkpoints as train_member does (and none for a member of it
    without a contrastive term)."""
    params = [
        {**TINY, "candidate_checkpoints": True},
        {**TINY, "candidate_checkpoints": True, "contrastive": False, "seed": 5},
    ]
    solo = tmp_path / "solo"
    train_member(*tensors, solo, params[1], progress=False)
    dirs = [tmp_path / "p0", tmp_path / "p1"]
    train_pack(*tensors, dirs, params, progress=False)
    assert_same_candidates(runs[True], dirs[0])
    assert_same_candidates(solo, dirs[1])
    assert_same_member_outputs(solo, dirs[1])
    info = json.loads((dirs[1] / CANDIDATES_DIR / CANDIDATES_JSON).read_text())
    assert CONTRAST_LOSS not in info["criteria"] and CONTRAST_LOSS in info["not_tracked"]


# ------------------------------------------------------------------------------------------ ensemble
def _with_trials(good: dict, bad: dict, idx: np.ndarray) -> dict:
    """`bad`'s rates with the eval trials `idx` taken from `good`."""
    out = {KEY: {k: np.array(v, dtype=np.float64) for k, v in bad[KEY].items()}}
    for k, v in out[KEY].items():
        if k.startswith("eval_"):
            v[idx] = np.asarray(good[KEY][k])[idx]
    return out


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    """Two members with extra candidates whose quality differs between selection and holdout trials: m000's
    masked-loss checkpoint is right on the selection trials only, m001's unmasked-loss one on the holdout
    trials only (the best of all on every val trial, the worst on the selection trials)."""
    root = tmp_path_factory.mktemp("pool")
    d, t = make_data(seed=0, n_eval=40), make_data(seed=21, n_eval=40)
    conds = normalize_cond_idx(d.targets[KEY]["eval_cond_idx"], "eval_cond_idx")
    holdout = holdout_trials(40, 0.3, 0, conds)
    select = selection_trials(40, holdout)
    save_h5(
        root / "val.h5",
        {**d.tensors, "targets": d.targets, HOLDOUT_KEY: holdout},
        attrs={"layout": LAYOUT, "bin_width_ms": BW, "phase": "val"},
    )
    save_h5(
        root / "test.h5",
        {**t.tensors, "targets": t.targets},
        attrs={"layout": LAYOUT, "bin_width_ms": BW, "phase": "test"},
    )
    base = mean_rates(d)
    val = {
        "m000": noisy(d.truth, 1, 0.3),
        "m000@masked_loss": _with_trials(d.truth, base, select),
        "m001": noisy(d.truth, 2, 0.3),
        "m001@unmasked_loss": _with_trials(d.truth, base, holdout),
        "m001@contrast_loss": noisy(d.truth, 3, 0.6),
    }
    test = {c: noisy(t.truth, i, 0.2) for i, c in enumerate(val)}
    sel_targets = subset_eval_trials(d.targets, None, select, KEY)[0]
    bps = {c: co_bps(sel_targets, subset_eval_trials(None, r, select, KEY)[1], LAYOUT, BW) for c, r in val.items()}
    epochs = {"m000": 40, "m000@masked_loss": 30, "m001": 20, "m001@unmasked_loss": 50, "m001@contrast_loss": 10}
    dirs = []
    for m in ("m000", "m001"):
        md = root / "members" / m
        dirs.append(md)
        save_h5(md / "rates_val.h5", val[m])
        save_h5(md / "rates_test.h5", test[m])
        extra = [c for c in val if c.startswith(f"{m}@")]
        crit = [c.split("@")[1] for c in extra]
        for phase, rates in (("val", val), ("test", test)):
            save_h5(md / CANDIDATES_DIR / rates_name(phase), {c.split("@")[1]: rates[c] for c in extra})
        write_json(
            md / CANDIDATES_DIR / CANDIDATES_JSON,
            {
                "format": CANDIDATES_FORMAT,
                "cobps_epoch": epochs[m],
                "written": crit,
                "not_tracked": {},
                "criteria": {c.split("@")[1]: {"epoch": epochs[c], "value": 0.0, "same_as": None} for c in extra},
            },
        )
    table = pd.DataFrame({"member": ["m000", "m001"], CO_BPS: [bps["m000"], bps["m001"]], "best_epoch": [40, 20]})
    table.to_csv(root / "members.csv", index=False)
    return SimpleNamespace(root=root, dirs=dirs, bps=bps, holdout=holdout, val=val, test=test, epochs=epochs)


def _build(pool, out: Path, **kw) -> dict:
    r = pool.root
    return build_ensemble(
        r / "members.csv", member_files(*pool.dirs), r / "val.h5", r / "test.h5", ensemble_files(out), seed=0, **kw
    )


@pytest.fixture(scope="module")
def capped(pool, tmp_path_factory):
    """The pool's ensemble of at most 2 checkpoints (the reference's setting): (ensemble.json, folder)."""
    out = tmp_path_factory.mktemp("capped")
    return _build(pool, out, candidates="checkpoints", max_size=2), out


def test_ensemble_ranks_every_candidate_on_the_selection_trials_and_honours_max_size(pool, capped, tmp_path):
    ens, out = capped
    order = sorted(pool.bps, key=lambda c: -pool.bps[c])
    assert [p["id"] for p in ens["pool"]] == order and order[0] == "m000@masked_loss"
    assert order[-1] == "m001@unmasked_loss"  # best on every val trial, worst on the selection trials
    assert [p[CO_BPS] for p in ens["pool"]] == pytest.approx([pool.bps[c] for c in order])
    assert [p["epoch"] for p in ens["pool"]] == [pool.epochs[c] for c in order]
    assert 1 <= ens["n"] <= 2 and ens["checkpoints"] == order[: ens["n"]]
    assert ens["members"] == list(dict.fromkeys(c.split("@")[0] for c in ens["checkpoints"]))
    assert ens["ranking"] == sorted(["m000", "m001"], key=lambda m: -pool.bps[m])  # members: best co-bps checkpoints
    assert (ens["candidates"], ens["max_size"], ens["holdout_trials"]) == ("checkpoints", 2, len(pool.holdout))
    assert json.loads((out / "ensemble.json").read_text())["checkpoints"] == ens["checkpoints"]
    assert list(pd.read_csv(out / "ensemble_curve.csv")["member"]) == order[:2]
    # the ensemble's rates are the mean of the chosen checkpoints' rates
    got = load_rates(out / "ensemble" / "rates_test.h5")[KEY]["eval_rates_heldout"]
    want = np.mean([pool.test[c][KEY]["eval_rates_heldout"] for c in ens["checkpoints"]], axis=0)
    np.testing.assert_allclose(got, want, rtol=1e-6)

    one = _build(pool, tmp_path / "b", candidates="checkpoints", max_size=1)
    assert (one["n"], one["checkpoints"], one["members"]) == (1, ["m000@masked_loss"], ["m000"])
    assert len(one["honest"]["halves"]) == 2 and all(h["n"] == 1 for h in one["honest"]["halves"])


def test_the_pool_choice_never_reads_the_holdout_trials(pool, capped, tmp_path):
    """Every candidate's val rates on the holdout trials replaced: no ranking, choice or selection number
    may change."""
    copy = tmp_path / "copy"
    shutil.copytree(pool.root, copy)
    rng = np.random.default_rng(5)
    for path in copy.rglob("rates_val.h5"):
        with h5py.File(path, "r+") as f:
            names = []
            f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)  # noqa: B023
            for n in names:
                if n.split("/")[-1].startswith("eval_"):
                    a = f[n][()]
                    a[pool.holdout] = rng.uniform(0.01, 3.0, a[pool.holdout].shape)
                    f[n][...] = a
    moved = SimpleNamespace(**{**vars(pool), "root": copy, "dirs": [copy / "members" / d.name for d in pool.dirs]})
    a = capped[0]
    b = _build(moved, tmp_path / "b", candidates="checkpoints", max_size=2)
    for key in ("pool", "checkpoints", "members", "ranking", "n", "val", "honest"):
        assert a[key] == b[key], key


def test_default_pool_is_each_members_best_checkpoint(pool, tmp_path):
    ens = _build(pool, tmp_path / "d")
    assert ens["candidates"] == "best_cobps" and ens["max_size"] is None and "pool" not in ens
    assert len(pd.read_csv(tmp_path / "d" / "ensemble_curve.csv")) == 2  # no cap: every size
    assert ens["checkpoints"] == ens["members"] == ens["ranking"][: ens["n"]]
    assert set(ens["checkpoints"]) <= {"m000", "m001"}


def test_a_member_without_candidates_is_named(pool, tmp_path):
    bare = tmp_path / "m000"
    shutil.copytree(pool.dirs[0], bare)
    shutil.rmtree(bare / CANDIDATES_DIR)
    r = pool.root
    files = member_files(bare, pool.dirs[1])  # the rule names the file; the member never wrote it
    files["m000"][f"{CANDIDATES_DIR}/{CANDIDATES_JSON}"] = bare / CANDIDATES_DIR / CANDIDATES_JSON
    with pytest.raises(FileNotFoundError, match="candidates.json: missing"):
        build_ensemble(
            r / "members.csv",
            files,
            r / "val.h5",
            r / "test.h5",
            ensemble_files(tmp_path / "o"),
            seed=0,
            candidates="checkpoints",
        )


# ------------------------------------------------------------------------------------------ config
def test_settings_are_checked_naming_the_key():
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    from stndt.config import pipeline_config
    from stndt.errors import ConfigError

    config = yaml.safe_load(TINY_CONFIG.read_text())
    ds = pipeline_config(config).datasets["tiny"]
    assert (ds.candidates, ds.max_size) == ("best_cobps", None)
    ds = pipeline_config({**config, "evaluation": {"candidates": "checkpoints", "max_size": 2}}).datasets["tiny"]
    assert (ds.candidates, ds.max_size, ds.holdout) == ("checkpoints", 2, 0.0)
    own = {
        **config,
        "evaluation": {"candidates": "checkpoints", "max_size": 2},
        "datasets": {"tiny": {**config["datasets"]["tiny"], "evaluation": {"max_size": None}}},
    }
    ds = pipeline_config(own).datasets["tiny"]
    assert (ds.candidates, ds.max_size) == ("checkpoints", None)
    for evaluation, key in (
        ({"candidates": "all"}, "evaluation.candidates"),
        ({"max_size": 0}, "evaluation.max_size"),
        ({"max_size": "2"}, "evaluation.max_size"),
        ({"max_size": True}, "evaluation.max_size"),
    ):
        with pytest.raises(ConfigError, match=f"^{key}: "):
            pipeline_config({**config, "evaluation": evaluation})
    bad_own = {**config, "datasets": {"tiny": {**config["datasets"]["tiny"], "evaluation": {"candidates": 2}}}}
    with pytest.raises(ConfigError, match=r"^datasets\.tiny\.evaluation\.candidates: "):
        pipeline_config(bad_own)
    with pytest.raises(ConfigError, match=r"^training\.candidate_checkpoints: .*evaluation: \{candidates: checkpoints"):
        pipeline_config({**config, "training": {**config["training"], "candidate_checkpoints": True}})
    schema = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"
    validate({**config, "evaluation": {"candidates": "checkpoints", "max_size": None}}, str(schema))
    for evaluation in ({"candidates": "all"}, {"max_size": 0}, {"max_size": "2"}):
        with pytest.raises(WorkflowError):
            validate({**config, "evaluation": evaluation}, str(schema))


# ------------------------------------------------------------------------------------------ workflow
POOL_TARGETS = ("results/tiny/baselines.csv", "results/tiny/paired_ablation.csv", "results/tiny/submission.h5")


@background_scenario("reference_pool_run")
def _reference_pool_run(work: Path) -> Path:
    """The tiny DAG (2 STNDT members, 1 NDT) with candidates: checkpoints and max_size 2, through the
    ensembles, baselines, paired ablation and submission."""
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["variants"] = {"stndt": 2, "ndt": 1}
    config["evaluation"] = {"candidates": "checkpoints", "max_size": 2}
    config["training"] = {**config["training"], "max_epochs": 12, "val_every": 1}  # room for distinct bests
    snakemake(work, write_config(work / "config.yaml", config), *POOL_TARGETS, nice=BACKGROUND_NICE)
    return work


@pytest.fixture(scope="module")
def reference_pool_run(background_scenarios) -> Path:
    return background_scenarios["reference_pool_run"].result()


def test_tiny_dag_with_the_reference_pool(reference_pool_run: Path):
    """Members write candidates/, ensemble.json lists the checkpoint ids it chose from, and a rerun has
    nothing to do."""
    ds = reference_pool_run / "results" / "tiny"
    for m in ("m000", "m001"):
        info = json.loads((ds / "members" / m / CANDIDATES_DIR / CANDIDATES_JSON).read_text())
        assert set(info["criteria"]) <= set(EXTRA_CRITERIA) and info["format"] == CANDIDATES_FORMAT
        params = json.loads((ds / "members" / m / "params.json").read_text())
        assert params["hyperparameters"]["candidate_checkpoints"] is True
    ndt = json.loads((ds / "variants/ndt/members/m000" / CANDIDATES_DIR / CANDIDATES_JSON).read_text())
    assert CONTRAST_LOSS in ndt["not_tracked"]
    ens = json.loads((ds / "ensemble.json").read_text())
    ids = [p["id"] for p in ens["pool"]]
    assert set(ids) >= {"m000", "m001"} and all(i.split("@")[0] in ("m000", "m001") for i in ids)
    extra = sum(len(read_candidates(m, member_files(ds / "members" / m)[m])) for m in ("m000", "m001"))
    assert extra > 0 and len(ids) == 2 + extra  # (on this data some criteria peak at other epochs)
    assert 1 <= ens["n"] <= 2 and ens["checkpoints"] == ids[: ens["n"]] and ens["candidates"] == "checkpoints"
    assert set(ens["ranking"]) == {"m000", "m001"}
    assert len(pd.read_csv(ds / "ensemble_curve.csv")) == 2
    baselines = pd.read_csv(ds / "baselines.csv")
    assert {"stndt_ensemble", "stndt_single", "ndt_ensemble"} <= set(baselines["method"])
    assert nothing_to_do(snakemake(reference_pool_run, reference_pool_run / "config.yaml", *POOL_TARGETS, "-n"))
