"""Tests of stndt.figures: every figure is made from the files it is given, and what it plots equals
those files (scatter points, curves and images read back from the returned matplotlib Figure, not just
"a PNG exists"); the trajectory decoder reproduces nlb_tools' vel R2; bad inputs fail with clear errors.
The results folder is the one built by test_analysis.py (shared, built once per session).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_analysis import N_HELDIN, TINY_TRAINING, tiny_ds  # noqa: F401  (session fixture shared with test_analysis)

from stndt.analysis.neuron_dropping import MODEL_NDT, MODEL_STNDT, ORDER_ATTENTION, ORDER_RANDOM
from stndt.datasets import CO_BPS, VEL_R2
from stndt.figures.common import SET_COLORS, set_label
from stndt.figures.fig2_member_metrics import fig2_member_metrics
from stndt.figures.fig3_ensemble import decode_velocity, fig3_ensemble
from stndt.figures.fig4_attention import fig4_attention
from stndt.figures.fig5_neuron_dropping import fig5_neuron_dropping
from stndt.figures.training_curves import fig_training_curves, read_member_logs
from stndt.members import MASKED_NLL

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SETS = {"stndt": "", "ndt": "variants/ndt", "no_contrast": "variants/no_contrast"}


def assert_figure(png: Path) -> None:
    pdf = png.with_suffix(".pdf")
    assert png.exists() and pdf.exists(), f"{png} / {pdf} missing"
    assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 10_000
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 2_000
    assert not list(png.parent.glob(".*.tmp")), "temporary files left behind"


def _set_dir(ds: Path, name: str) -> Path:
    return ds / SETS[name] if SETS[name] else ds


def _members_csv(ds: Path) -> dict[str, Path]:
    return {name: _set_dir(ds, name) / "members.csv" for name in SETS}


def _val(ds: Path) -> Path:
    return ds / "tensors" / "val.h5"


# ------------------------------------------------------------------------------------------ Fig. 2
def test_fig2_scatter_points_are_the_members_tables(tiny_ds, tmp_path):
    tables = {name: pd.read_csv(path) for name, path in _members_csv(tiny_ds).items()}
    loss = MASKED_NLL
    fig = fig2_member_metrics(_members_csv(tiny_ds), tmp_path / "fig2.png", loss_column=loss)
    assert_figure(tmp_path / "fig2.png")
    metrics = [m for m in ("co-bps", "vel R2", "psth R2", "fp-bps") if tables["stndt"][m].notna().any()]
    axes_a = fig.subfigs[0].axes
    assert len(axes_a) == len(metrics) == 4
    for ax, metric in zip(axes_a, metrics):
        assert ax.get_ylabel().startswith(metric.split()[0])
        assert len(ax.collections) == len(SETS)  # one scatter per member set, in VARIANTS order
        for coll, (name, table) in zip(ax.collections, tables.items()):
            assert coll.get_label() == f"{set_label(name)} ({len(table)})"
            np.testing.assert_array_equal(coll.get_offsets(), table[[loss, metric]].to_numpy(float))
    # panel B, lower triangle: metric[1] against metric[0]
    ax_b = [ax for ax in fig.subfigs[1].axes if ax.collections][0]
    for coll, table in zip(ax_b.collections, tables.values()):
        np.testing.assert_array_equal(coll.get_offsets(), table[[metrics[0], metrics[1]]].to_numpy(float))


def test_fig2_stndt_only_and_errors_name_the_file(tiny_ds, tmp_path):
    fig = fig2_member_metrics({"stndt": tiny_ds / "members.csv"}, tmp_path / "fig2_stndt_only.png")
    assert_figure(tmp_path / "fig2_stndt_only.png")
    assert all(len(ax.collections) == 1 for ax in fig.subfigs[0].axes)
    table = pd.read_csv(tiny_ds / "members.csv").drop(columns=["val nll"])
    bad = tmp_path / "members.csv"
    table.to_csv(bad, index=False)
    with pytest.raises(KeyError, match="val nll"):
        fig2_member_metrics({"stndt": bad}, tmp_path / "x.png")
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        fig2_member_metrics({"stndt": tmp_path / "nope.csv"}, tmp_path / "x.png")
    with pytest.raises(ValueError, match="'stndt' member set is required"):
        fig2_member_metrics({"ndt": tiny_ds / "variants/ndt/members.csv"}, tmp_path / "x.png")
    with pytest.raises(ValueError, match="unknown member set.*'ndtt'"):
        fig2_member_metrics({"stndt": tiny_ds / "members.csv", "ndtt": bad}, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


# ------------------------------------------------------------------------------------------ Fig. 3
def _fig3(ds: Path, out: Path, tensors: Path | None = None, truth: bool = True):
    return fig3_ensemble(
        ds / "ensemble_curve.csv",
        ds / "ensemble.json",
        ds / "ensemble" / "rates_val.h5",
        tensors or _val(ds),
        out,
        truth=ds / "truth.h5" if truth else None,
        dataset=ds.name,
    )


def test_fig3_curve_is_the_ensemble_curve(tiny_ds, tmp_path):
    fig = _fig3(tiny_ds, tmp_path / "fig3.png")
    assert_figure(tmp_path / "fig3.png")
    curve = pd.read_csv(tiny_ds / "ensemble_curve.csv")
    n = json.loads((tiny_ds / "ensemble.json").read_text())["n"]
    ax_a = fig.subfigs[0].axes[0]
    line, star = ax_a.get_lines()[:2]
    np.testing.assert_array_equal(line.get_xydata(), curve[["n", CO_BPS]].to_numpy(float))
    np.testing.assert_array_equal(star.get_xydata(), curve.loc[curve["n"] == n, ["n", CO_BPS]].to_numpy(float))
    assert fig._suptitle.get_text().startswith(f"{tiny_ds.name}: STNDT ensemble")


def test_fig3_without_truth_uses_empirical_psth(tiny_ds, tmp_path):
    _fig3(tiny_ds, tmp_path / "fig3_real.png", truth=False)
    assert_figure(tmp_path / "fig3_real.png")


def test_fig3_without_velocity_or_conditions(tiny_ds, tmp_path):
    """Layouts without hand velocity (dmfc_rsg) or conditions (mc_rtt): panel B becomes a note, panel C
    shows example trials and the all-trial mean."""
    import h5py

    tensors = tmp_path / "val.h5"
    shutil.copy(_val(tiny_ds), tensors)
    with h5py.File(tensors, "a") as f:
        for k in ("train_behavior", "eval_cond_idx", "psth"):
            del f[f"targets/mc_maze_20/{k}"]
    _fig3(tiny_ds, tmp_path / "fig3_nobeh.png", tensors=tensors, truth=False)
    assert_figure(tmp_path / "fig3_nobeh.png")


def test_decoder_reproduces_nlb_vel_r2(tiny_ds):
    """The trajectories of Fig. 3B come from the same decoder nlb_tools scores vel R2 with."""
    from stndt.evaluate.metrics import load_rates, load_targets

    key = "mc_maze_20"
    targets = load_targets(_val(tiny_ds))[key]
    rates = load_rates(tiny_ds / "ensemble" / "rates_val.h5")[key]
    pred, r2 = decode_velocity(rates, targets)
    ens = json.loads((tiny_ds / "ensemble.json").read_text())
    assert r2 == pytest.approx(ens["val"][VEL_R2], abs=1e-6)
    assert pred.shape == np.asarray(targets["eval_behavior"]).shape and np.isfinite(pred).all()


# ------------------------------------------------------------------------------------------ Fig. 4
def _checkpoints(ds: Path) -> dict[str, Path]:
    return {p.parent.name: p for p in sorted((ds / "members").glob("*/best.pt"))}


def test_fig4_images_are_the_best_members_attention(tiny_ds, tmp_path):
    """Each image is the head-averaged spatial attention of the best-ranked member on one val trial (the
    first trial of each condition), layer 1 in the top row and the last layer below."""
    from stndt.analysis.attention import spatial_attention
    from stndt.evaluate.metrics import load_targets

    fig = fig4_attention(
        tiny_ds / "ensemble.json", _val(tiny_ds), _checkpoints(tiny_ds), tmp_path / "fig4.png", dataset=tiny_ds.name
    )
    assert_figure(tmp_path / "fig4.png")
    best = json.loads((tiny_ds / "ensemble.json").read_text())["ranking"][0]
    cond = load_targets(_val(tiny_ds))["mc_maze_20"]["eval_cond_idx"]
    trials = sorted(int(np.min(g)) for g in cond)
    assert len(trials) == 4
    expected = spatial_attention(tiny_ds / "members" / best / "best.pt", _val(tiny_ds), trials)
    layers = [0, TINY_TRAINING["n_layers"] - 1]
    image_axes = [ax for ax in fig.axes if ax.get_images()]
    assert len(image_axes) == len(layers) * len(trials)
    for i, ax in enumerate(image_axes):
        r, c = divmod(i, len(trials))
        np.testing.assert_allclose(ax.get_images()[0].get_array(), expected[layers[r], c], rtol=0, atol=1e-6)
        if r == 0:
            assert ax.get_title() == f"val trial {trials[c]}"
    assert f"member {best}" in fig._suptitle.get_text()


def test_fig4_needs_the_best_members_checkpoint(tiny_ds, tmp_path):
    best = json.loads((tiny_ds / "ensemble.json").read_text())["ranking"][0]
    others = {m: p for m, p in _checkpoints(tiny_ds).items() if m != best}
    with pytest.raises(ValueError, match=f"best member is {best}, but no checkpoint"):
        fig4_attention(tiny_ds / "ensemble.json", _val(tiny_ds), others, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


# ------------------------------------------------------------------------------------------ Fig. 5
# hand-chosen means at k = 0, 6, 12 per (model, order); members and seeds scatter symmetrically around them
MEANS = {
    (MODEL_STNDT, ORDER_ATTENTION): [0.30, 0.18, 0.02],
    (MODEL_STNDT, ORDER_RANDOM): [0.30, 0.24, 0.04],
    (MODEL_NDT, ORDER_ATTENTION): [0.28, 0.20, 0.01],
    (MODEL_NDT, ORDER_RANDOM): [0.28, 0.22, 0.03],
}
KS = [0, 6, N_HELDIN]


def _dropping_table(models=(MODEL_STNDT, MODEL_NDT)) -> pd.DataFrame:
    """A table in neuron_dropping's format whose means over members (and seeds) are MEANS: member m000
    is +0.02 and m001 -0.02 off the mean, random seed 0 +0.01 and seed 1 -0.01."""
    rows = []
    for model in models:
        for member, dm in (("m000", 0.02), ("m001", -0.02)):
            for order, seeds in ((ORDER_ATTENTION, [(None, 0.0)]), (ORDER_RANDOM, [(0, 0.01), (1, -0.01)])):
                for seed, ds in seeds:
                    for k, mean in zip(KS, MEANS[model, order]):
                        v = mean + dm + ds
                        rows.append(
                            {
                                "model": model,
                                "order": order,
                                "member": member,
                                "order_from": member,
                                "seed": seed,
                                "k": k,
                                "dropped": "",
                                "co-bps": v,
                                "vel R2": v + 0.5,
                                "psth R2": v + 0.2,
                                "fp-bps": v - 0.1,
                            }
                        )
    return pd.DataFrame(rows)


def test_fig5_curves_are_the_tables_means(tmp_path):
    csv = tmp_path / "neuron_dropping.csv"
    _dropping_table().to_csv(csv, index=False)
    fig = fig5_neuron_dropping(csv, tmp_path / "fig5.png")
    assert_figure(tmp_path / "fig5.png")
    axes = [ax for ax in fig.axes if ax.get_lines()]
    assert [ax.get_ylabel().split()[0] for ax in axes] == ["co-bps", "vel", "psth", "fp-bps"]
    for ax, offset in zip(axes, (0.0, 0.5, 0.2, -0.1)):
        lines = ax.get_lines()
        assert len(lines) == len(MEANS)
        for line, ((model, order), means) in zip(lines, MEANS.items()):
            assert line.get_label().startswith(f"{model}, {order} order")
            np.testing.assert_allclose(line.get_xydata(), np.c_[KS, np.add(means, offset)], rtol=0, atol=1e-12)


def test_fig5_without_ndt_and_errors(tmp_path):
    csv = tmp_path / "neuron_dropping.csv"
    _dropping_table(models=(MODEL_STNDT,)).to_csv(csv, index=False)
    fig = fig5_neuron_dropping(csv, tmp_path / "fig5.png")
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert len(labels) == 2 and all(label.startswith(MODEL_STNDT) for label in labels)
    _dropping_table().drop(columns=["model"]).to_csv(csv, index=False)
    with pytest.raises(KeyError, match="model"):
        fig5_neuron_dropping(csv, tmp_path / "bad.png")


# ------------------------------------------------------------------------------------------ training curves
def _train_logs(ds: Path) -> dict[str, dict[str, Path]]:
    return {
        name: {p.parent.name: p for p in sorted((_set_dir(ds, name) / "members").glob("*/train_log.csv"))}
        for name in SETS
    }


def test_training_curves_are_the_train_logs(tiny_ds, tmp_path):
    logs = _train_logs(tiny_ds)
    sets = read_member_logs(logs)
    assert list(sets) == ["stndt", "ndt", "no_contrast"] and len(sets["stndt"]) == 2
    fig = fig_training_curves(logs, tmp_path / "training.png", dataset=tiny_ds.name)
    assert_figure(tmp_path / "training.png")
    ax_loss, ax_val = fig.axes[:2]
    loss_lines = ax_loss.get_lines()
    val_lines = [line for line in ax_val.get_lines() if len(line.get_xdata()) > 1]  # not the best-epoch dots
    pairs = [(name, member, path) for name, members in logs.items() for member, path in members.items()]
    assert len(loss_lines) == len(pairs)
    for line, (name, member, path) in zip(loss_lines, pairs):
        log = pd.read_csv(path).dropna(subset=["loss"])
        np.testing.assert_array_equal(line.get_xydata(), log[["epoch", "loss"]].to_numpy(float), err_msg=member)
        assert line.get_color() == SET_COLORS[name]
    for line, (_name, _member, path) in zip(val_lines, pairs):
        log = pd.read_csv(path).dropna(subset=[f"val {CO_BPS}"])
        np.testing.assert_array_equal(line.get_xydata(), log[["epoch", f"val {CO_BPS}"]].to_numpy(float))


def test_training_curves_mark_the_rule_and_dash_unconverged_members(tiny_ds, tmp_path):
    """With params.json: a cross where the stopping rule fired, dashed lines for a member stopped at the cap
    (the tiny members all are), solid for one that converged."""
    logs = {"stndt": _train_logs(tiny_ds)["stndt"]}
    params = {"stndt": {m: p.parent / "params.json" for m, p in logs["stndt"].items()}}
    first, second = sorted(params["stndt"])
    assert json.loads(params["stndt"][first].read_text())["training"]["stop_reason"] == "max_epochs"
    converged = json.loads(params["stndt"][second].read_text())
    converged["training"].update(stop_reason="early_stopping", converged=True, rule_fired_at=2)
    params["stndt"][second] = tmp_path / "params.json"
    params["stndt"][second].write_text(json.dumps(converged))
    fig = fig_training_curves(logs, tmp_path / "training.png", dataset=tiny_ds.name, params=params)
    assert_figure(tmp_path / "training.png")
    ax_loss, ax_val = fig.axes[:2]
    assert [line.get_linestyle() for line in ax_loss.get_lines()] == ["--", "-"]
    crosses = [line for line in ax_val.get_lines() if line.get_marker() == "X"]
    assert len(crosses) == 1 and crosses[0].get_xdata()[0] == 2
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "stopping rule fired" in labels and "stopped at the epoch cap: NOT converged" in labels
    with pytest.raises(FileNotFoundError, match="params.json of stndt member m000"):
        fig_training_curves(logs, tmp_path / "x.png", params={"stndt": {"m000": tmp_path / "nope.json"}})
    (tmp_path / "half.json").write_text('{"training": {"stop')
    with pytest.raises(ValueError, match=r"params.json of stndt member m000 \(.*half.json\): unreadable"):
        fig_training_curves(logs, tmp_path / "x.png", params={"stndt": {"m000": tmp_path / "half.json"}})


def test_training_curves_errors(tmp_path):
    with pytest.raises(ValueError, match="no train_log.csv given"):
        fig_training_curves({}, tmp_path / "none.png")
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        fig_training_curves({"stndt": {"m000": tmp_path / "nope.csv"}}, tmp_path / "none.png")
    with pytest.raises(ValueError, match="unknown member set"):
        fig_training_curves({"bogus": {"m000": tmp_path / "nope.csv"}}, tmp_path / "none.png")


# ------------------------------------------------------------------------------------------ command line
def test_figure_command_takes_each_input_file(tiny_ds, tmp_path):
    """The figure subcommands read exactly the files named on the command line (here Fig. 2 with the NDT
    table only as a variant, and Fig. 5): a dataset folder is not an argument any more."""
    from stndt.cli import main

    out = tmp_path / "fig2.png"
    assert (
        main(
            [
                "figure",
                "fig2_member_metrics",
                "--out",
                str(out),
                "--members-csv",
                "stndt",
                str(tiny_ds / "members.csv"),
                "--members-csv",
                "ndt",
                str(tiny_ds / "variants/ndt/members.csv"),
            ]
        )
        == 0
    )
    assert_figure(out)
    csv = tmp_path / "nd.csv"
    _dropping_table().to_csv(csv, index=False)
    assert main(["figure", "fig5_neuron_dropping", "--out", str(tmp_path / "fig5.png"), "--table", str(csv)]) == 0
    assert_figure(tmp_path / "fig5.png")
    with pytest.raises(SystemExit):
        main(["figure", "fig2_member_metrics", "--dataset-dir", str(tiny_ds), "--out", str(out)])
