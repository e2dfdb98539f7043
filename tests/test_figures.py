"""Tests of stndt.figures.paper_figures: every figure writes a real PNG and PDF from a real (tiny)
results folder; the trajectory decoder reproduces nlb_tools' vel R2; bad inputs fail with clear errors.
The results folder is the one built by test_analysis.py (shared, built once per session).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stndt.analysis.neuron_dropping import MODEL_NDT, MODEL_STNDT, ORDER_ATTENTION, ORDER_RANDOM
from stndt.datasets import VEL_R2
from stndt.figures import paper_figures as pf
from test_analysis import N_HELDIN, tiny_ds  # noqa: F401  (session fixture shared with test_analysis)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_figure(png: Path) -> None:
    pdf = png.with_suffix(".pdf")
    assert png.exists() and pdf.exists(), f"{png} / {pdf} missing"
    assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 10_000
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 2_000
    assert not list(png.parent.glob(".*.tmp")), "temporary files left behind"


def test_fig2_member_metrics(tiny_ds, tmp_path):
    variants = {v: tiny_ds / "variants" / v / "members.csv" for v in ("ndt", "no_contrast")}
    columns = pd.read_csv(tiny_ds / "members.csv").columns
    loss = "masked nll" if "masked nll" in columns else "val nll"  # the masked loss where members.csv has it
    pf.fig2_member_metrics(tiny_ds / "members.csv", tmp_path / "fig2.png", variants, loss_column=loss)
    assert_figure(tmp_path / "fig2.png")
    pf.fig2_member_metrics(tiny_ds / "members.csv", tmp_path / "fig2_stndt_only.png")
    assert_figure(tmp_path / "fig2_stndt_only.png")


def test_fig2_errors_name_the_file(tiny_ds, tmp_path):
    table = pd.read_csv(tiny_ds / "members.csv").drop(columns=["val nll"])
    bad = tmp_path / "members.csv"
    table.to_csv(bad, index=False)
    with pytest.raises(KeyError, match="val nll"):
        pf.fig2_member_metrics(bad, tmp_path / "x.png")
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        pf.fig2_member_metrics(tmp_path / "nope.csv", tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_fig3_ensemble(tiny_ds, tmp_path):
    pf.fig3_ensemble(tiny_ds, tmp_path / "fig3.png")
    assert_figure(tmp_path / "fig3.png")


def test_fig3_without_truth_uses_empirical_psth(tiny_ds, tmp_path):
    ds = tmp_path / "real_like"
    shutil.copytree(tiny_ds, ds, ignore=shutil.ignore_patterns("raw", "truth", "truth.h5", "variants", "*.pt"))
    pf.fig3_ensemble(ds, tmp_path / "fig3_real.png")
    assert_figure(tmp_path / "fig3_real.png")


def test_fig3_without_velocity_or_conditions(tiny_ds, tmp_path):
    """Layouts without hand velocity (dmfc_rsg) or conditions (mc_rtt): panel B becomes a note, panel C
    shows example trials and the all-trial mean."""
    import h5py

    ds = tmp_path / "no_behaviour"
    shutil.copytree(tiny_ds, ds, ignore=shutil.ignore_patterns("raw", "truth", "variants", "*.pt"))
    with h5py.File(ds / "tensors" / "val.h5", "a") as f:
        for k in ("train_behavior", "eval_cond_idx", "psth"):
            del f[f"targets/mc_maze_20/{k}"]
    pf.fig3_ensemble(ds, tmp_path / "fig3_nobeh.png")
    assert_figure(tmp_path / "fig3_nobeh.png")


def test_decoder_reproduces_nlb_vel_r2(tiny_ds):
    """The trajectories of Fig. 3B come from the same decoder nlb_tools scores vel R2 with."""
    from stndt.evaluate.metrics import load_rates, load_targets

    key = "mc_maze_20"
    targets = load_targets(tiny_ds / "tensors" / "val.h5")[key]
    rates = load_rates(tiny_ds / "ensemble" / "rates_val.h5")[key]
    pred, r2 = pf.decode_velocity(rates, targets)
    ens = json.loads((tiny_ds / "ensemble.json").read_text())
    assert r2 == pytest.approx(ens["val"][VEL_R2], abs=1e-6)
    assert pred.shape == np.asarray(targets["eval_behavior"]).shape and np.isfinite(pred).all()


def test_fig4_attention(tiny_ds, tmp_path):
    pf.fig4_attention(tiny_ds, tmp_path / "fig4.png")
    assert_figure(tmp_path / "fig4.png")


def _dropping_table() -> pd.DataFrame:
    """A table in neuron_dropping's format (values made up: the plot, not the analysis, is tested)."""
    rng = np.random.default_rng(0)
    rows = []
    for model in (MODEL_STNDT, MODEL_NDT):
        for member in ("m000", "m001"):
            for order, seeds in ((ORDER_ATTENTION, [None]), (ORDER_RANDOM, [0, 1])):
                for seed in seeds:
                    for k in (0, 6, N_HELDIN):
                        slope = 0.02 if order == ORDER_ATTENTION else 0.01
                        rows.append({"model": model, "order": order, "member": member, "order_from": member,
                                     "seed": seed, "k": k, "dropped": "",
                                     "co-bps": 0.3 - slope * k + rng.normal(0, 0.01),
                                     "vel R2": 0.8 - slope * k, "psth R2": 0.5 - slope * k,
                                     "fp-bps": 0.2 - slope * k})
    return pd.DataFrame(rows)


def test_fig5_neuron_dropping(tmp_path):
    csv = tmp_path / "neuron_dropping.csv"
    _dropping_table().to_csv(csv, index=False)
    pf.fig5_neuron_dropping(csv, tmp_path / "fig5.png")
    assert_figure(tmp_path / "fig5.png")
    _dropping_table().drop(columns=["model"]).to_csv(csv, index=False)
    with pytest.raises(KeyError, match="model"):
        pf.fig5_neuron_dropping(csv, tmp_path / "bad.png")


def test_fig_training_curves(tiny_ds, tmp_path):
    sets = pf.member_logs(tiny_ds)
    assert set(sets) == {"stndt", "ndt", "no_contrast"} and len(sets["stndt"]) == 2
    pf.fig_training_curves(tiny_ds, tmp_path / "training.png")
    assert_figure(tmp_path / "training.png")
    with pytest.raises(FileNotFoundError, match="train_log.csv"):
        pf.fig_training_curves(tmp_path, tmp_path / "none.png")
