"""The val holdout (evaluation.holdout): trials that no selection step reads, scored as the unbiased
local estimate. The proof is a tiny DAG run twice by Snakemake with everything equal but the spikes of
the holdout trials: no checkpoint, search proposal, ranking or ensemble choice may change, while the
holdout numbers do."""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import BACKGROUND_NICE, TINY, background_scenario, snakemake, write_config

from stndt.datasets import CO_BPS
from stndt.evaluate.holdout import HOLDOUT_KEY, holdout_trials, selection_trials

MEMBERS = ("m000", "m001")


def test_holdout_is_seeded_stratified_and_leaves_trials_to_select_on():
    conds = [np.arange(0, 8), np.arange(8, 16), np.arange(16, 20), np.array([20])]
    idx = holdout_trials(22, 0.25, seed=3, cond_idx=conds)
    assert np.array_equal(idx, holdout_trials(22, 0.25, seed=3, cond_idx=conds))  # seeded
    assert not np.array_equal(idx, holdout_trials(22, 0.25, seed=4, cond_idx=conds))
    per_cond = [np.isin(c, idx).sum() for c in conds]
    assert per_cond == [2, 2, 1, 0]  # a quarter of each condition; a lone trial stays for selection
    assert len(np.intersect1d(idx, selection_trials(22, idx))) == 0
    assert len(idx) + len(selection_trials(22, idx)) == 22
    plain = holdout_trials(40, 0.25, seed=0)  # no conditions (mc_rtt): uniform
    assert len(plain) == 10 and len(np.unique(plain)) == 10
    assert holdout_trials(40, 0.0, seed=0).size == 0
    with pytest.raises(ValueError, match="evaluation.holdout"):
        holdout_trials(40, 1.0, seed=0)


def test_holdout_setting_is_checked_naming_the_key():
    from stndt.config import pipeline_config
    from stndt.errors import ConfigError

    config = yaml.safe_load(TINY.read_text())
    assert pipeline_config({**config, "evaluation": {"holdout": 0.25}}).datasets["tiny"].holdout == 0.25
    own = {**config, "datasets": {"tiny": {**config["datasets"]["tiny"], "evaluation": {"holdout": 0.2}}}}
    assert pipeline_config(own).datasets["tiny"].holdout == 0.2
    with pytest.raises(ConfigError, match="evaluation.holdout: must be a number in"):
        pipeline_config({**config, "evaluation": {"holdout": 0.9}})
    with pytest.raises(ConfigError, match="evaluation.hold: unknown key"):
        pipeline_config({**config, "evaluation": {"hold": 0.2}})


def _perturb_holdout_spikes(val_h5, seed: int = 1) -> np.ndarray:
    """Replace every spike count of the holdout trials (inputs and targets) by fresh Poisson draws."""
    rng = np.random.default_rng(seed)
    with h5py.File(val_h5, "r+") as f:
        idx = f[HOLDOUT_KEY][()]
        names = []
        f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
        for name in names:
            if name.split("/")[-1].startswith("eval_spikes"):
                arr = f[name][()]
                arr[idx] = rng.poisson(1.0 + arr[idx].mean(), arr[idx].shape)
                f[name][...] = arr
    return idx


@background_scenario("twin_runs")
def _twin_runs(base: Path) -> list[Path]:
    """The tiny DAG (2 STNDT members, a Bayesian search in waves of 1, a holdout of 0.25) to the
    baselines, and a copy of it made once the tensors are built, with the holdout trials' spikes then
    replaced, to the ensemble's val score (what the copy is compared on)."""
    config = yaml.safe_load(TINY.read_text())
    config["variants"] = {"stndt": 2}
    config["search"] = {"method": "bayes", "wave_size": 1}
    config["evaluation"] = {"holdout": 0.25}
    a = base / "a"
    a.mkdir()
    cfg = write_config(a / "config.yaml", config)
    snakemake(a, cfg, "results/tiny/tensors/val.h5", "results/tiny/tensors/test.h5", nice=BACKGROUND_NICE)
    # b: the same data (a copy, with Snakemake's records), then the holdout trials' spikes replaced
    b = a.parent / "b"
    shutil.copytree(a, b, symlinks=True)
    _perturb_holdout_spikes(b / "results" / "tiny" / "tensors" / "val.h5")
    # The twins at once (a search in waves of one member keeps one core busy each); b only up to what it
    # is compared on.
    with ThreadPoolExecutor(2) as pool:
        twins = [
            pool.submit(snakemake, a, cfg, "results/tiny/baselines.csv", nice=BACKGROUND_NICE),
            pool.submit(
                snakemake, b, b / "config.yaml", "results/tiny/ensemble/metrics_val.json", nice=BACKGROUND_NICE
            ),
        ]
        for twin in twins:
            twin.result()
    return [a / "results" / "tiny", b / "results" / "tiny"]


@pytest.fixture(scope="module")
def twin_runs(background_scenarios) -> list[Path]:
    return background_scenarios["twin_runs"].result()


def test_no_selection_step_reads_the_holdout_trials(twin_runs):
    a, b = twin_runs
    with h5py.File(a / "tensors" / "val.h5") as f:
        idx, n_eval = f[HOLDOUT_KEY][()], len(f["eval_spikes_heldin"])
    assert 0 < len(idx) < n_eval
    for m in MEMBERS:  # every kept checkpoint: best epoch chosen and training stopped on the other trials
        wa = torch.load(a / "members" / m / "best.pt", map_location="cpu", weights_only=False)
        wb = torch.load(b / "members" / m / "best.pt", map_location="cpu", weights_only=False)
        state_a, state_b = (w.get("model", w) if isinstance(w, dict) else w for w in (wa, wb))
        for k, v in state_a.items():
            if torch.is_tensor(v):
                assert torch.equal(v, state_b[k]), (m, k)
        sa = json.loads((a / "members" / m / "params.json").read_text())
        sb = json.loads((b / "members" / m / "params.json").read_text())
        assert sa["given"] == sb["given"] and sa["training"]["best_epoch"] == sb["training"]["best_epoch"]
    # the search's second wave was proposed from the same objective values
    assert json.loads((a / "search" / "wave001.json").read_text()) == json.loads(
        (b / "search" / "wave001.json").read_text()
    )
    ea, eb = (json.loads((d / "ensemble.json").read_text()) for d in (a, b))
    assert (ea["ranking"], ea["members"], ea["val"], ea["honest"]["metrics"]) == (
        eb["ranking"],
        eb["members"],
        eb["val"],
        eb["honest"]["metrics"],
    )
    assert ea["holdout_trials"] == len(idx)
    # ... while the holdout numbers are real scores of those trials: they moved with their spikes
    ma, mb = (json.loads((d / "ensemble" / "metrics_val.json").read_text()) for d in (a, b))
    assert ma[CO_BPS] == pytest.approx(mb[CO_BPS]) and ma["trials"] == "selection"
    assert ma["holdout"][CO_BPS] != pytest.approx(mb["holdout"][CO_BPS])
    assert ma["n_holdout"] == len(idx)


def test_baselines_label_every_row_with_its_split_and_selection(twin_runs):
    table = pd.read_csv(twin_runs[0] / "baselines.csv")
    ens = table[table["method"] == "stndt_ensemble"].set_index("split")
    assert list(ens.index) == ["val selection trials", "val holdout", "val split-half", "test"]
    assert set(ens["selected on"]) == {"val selection trials", "other val half (best epochs: val selection trials)"}
    smooth = table[table["method"] == "smoothing"]
    assert list(smooth["split"]) == ["val selection trials", "val holdout", "test"]
    assert set(smooth["selected on"]) == {"none (fixed settings)"}
    assert table[CO_BPS].notna().all()


def test_a_run_without_holdout_has_plain_val_rows(tmp_path):
    from stndt.evaluate.baselines import baseline_rows

    metrics = tmp_path / "m.json"
    metrics.write_text(json.dumps({CO_BPS: 0.3}))
    rows = baseline_rows({"smoothing": {"val": metrics}}, ["val"])
    assert rows[["split", "selected on"]].values.tolist() == [["val", "none (fixed settings)"]]
