"""The whole DAG on the tiny config, run by Snakemake itself: the output contract, the report, reruns,
lint, and that the paper config plans."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import pandas as pd
import pytest

from conftest import ROOT, snakemake
from stndt.datasets import CO_BPS, METRICS

TINY = ROOT / "tests" / "data" / "tiny_config.yaml"
FIGURES = ["fig2_member_metrics", "fig3_ensemble", "fig4_attention", "fig5_neuron_dropping", "training_curves"]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("dag")
    snakemake(work, TINY)
    return work


def test_output_contract(run: Path):
    res = run / "results"
    ds = res / "tiny"
    assert sorted(p.name for p in (ds / "raw").glob("*.nwb")) == [
        "sub-Synth_ses-mc_maze_desc-test_ecephys.nwb", "sub-Synth_ses-mc_maze_desc-train_behavior+ecephys.nwb"]
    for phase in ("val", "test"):
        with h5py.File(ds / "tensors" / f"{phase}.h5") as f:
            assert "train_spikes_heldin" in f and "targets/mc_maze_20" in f
    assert (ds / "truth.h5").exists()
    for member in ("m000", "m001"):
        for name in ("params.json", "best.pt", "rates_val.h5", "rates_test.h5", "train_log.csv"):
            assert (ds / "members" / member / name).stat().st_size > 0
    members = pd.read_csv(ds / "members.csv")
    assert list(members["member"]) == ["m000", "m001"] and {CO_BPS, "lr", "masked nll"} <= set(members.columns)
    ens = json.loads((ds / "ensemble.json").read_text())
    assert 1 <= ens["n"] <= 2 and set(ens["members"]) <= {"m000", "m001"} and CO_BPS in ens["honest"]["metrics"]
    curve = pd.read_csv(ds / "ensemble_curve.csv")
    assert list(curve["n"]) == [1, 2]
    baselines = pd.read_csv(ds / "baselines.csv")
    assert set(baselines["method"]) == {"stndt_ensemble", "stndt_single", "ndt_ensemble", "ndt_single",
                                        "no_contrast_ensemble", "no_contrast_single", "smoothing", "oracle"}
    assert set(baselines["phase"]) == {"val", "test"} and set(METRICS[:4]) <= set(baselines.columns)
    oracle = baselines[(baselines["method"] == "oracle") & (baselines["phase"] == "val")].iloc[0]
    assert oracle["rate R2"] == pytest.approx(1.0)
    with h5py.File(ds / "submission.h5") as f:
        assert set(f["mc_maze_20"]) >= {"eval_rates_heldin", "eval_rates_heldout"}
    for table in ("table1_main", "table3_ablation"):
        assert (res / "paper" / "tables" / f"{table}.csv").exists()
        assert (res / "paper" / "tables" / f"{table}.md").read_text().startswith("## Table")
    for fig in FIGURES:
        for ext in ("png", "pdf"):
            assert (res / "paper" / "figures" / f"tiny_{fig}.{ext}").stat().st_size > 5_000
    # nothing half-written is left behind
    assert not [p for p in res.rglob("*.tmp")]


def test_rerun_has_nothing_to_do(run: Path):
    out = snakemake(run, TINY, "-n")
    assert "Nothing to be done" in out.stdout + out.stderr


def test_report_holds_every_figure_and_table(run: Path):
    snakemake(run, TINY, "--report", "report.html")
    html = (run / "report.html").read_text(errors="replace")
    for name in FIGURES + ["table1_main", "data_overview"]:
        assert name in html


def test_removed_member_is_retrained_with_identical_results(run: Path):
    """Every random draw flows from the configured seed: retraining a member reproduces its metrics."""
    ds = run / "results" / "tiny"
    table = pd.read_csv(ds / "members.csv")
    shutil.rmtree(ds / "members" / "m001")
    snakemake(run, TINY, "--forcerun", "members_table")
    again = pd.read_csv(ds / "members.csv")
    pd.testing.assert_frame_equal(again.drop(columns="train_seconds"), table.drop(columns="train_seconds"))


def test_lint_is_clean():
    out = snakemake(ROOT, ROOT / "config" / "config.yaml", "--lint")
    assert "Congratulations" in out.stdout + out.stderr


def test_paper_config_plans_every_training_job(tmp_path: Path):
    out = snakemake(tmp_path, ROOT / "config" / "paper.yaml", "-n", "--quiet", "rules")
    text = out.stdout + out.stderr
    assert "train_member" in text and "840" in text and "1680" in text
