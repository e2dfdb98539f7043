"""The benchmark scripts whose numbers the docs quote, checked on the tiny DAG's results."""

from __future__ import annotations

import importlib.util
import json

import pytest
from conftest import ROOT, TinyRun

from stndt.datasets import PSTH_R2


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_psth_check_scores_like_nlb_tools_and_the_truth_best_against_its_own_psth(tiny_run: TinyRun, capsys):
    ds = tiny_run.results / "tiny"
    _load("psth_check").main([str(ds), "smoothing=baselines/smoothing/rates_test.h5"])
    rows = {
        line.split("|")[1].strip(): [[float(x) for x in cell.split(" / ")] for cell in line.split("|")[2:4]]
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("| ") and not line.startswith("| method")
    }
    for name, folder in (("oracle (true rates)", "oracle"), ("smoothing", "smoothing")):
        reported = json.loads((ds / "baselines" / folder / "metrics_test.json").read_text())[PSTH_R2]
        assert rows[name][0][0] == pytest.approx(reported, abs=5e-4)  # nlb_tools' own psth R2, all units
    spike_target, true_target = rows["oracle (true rates)"]
    assert true_target[0] > spike_target[0]  # the truth matches its own condition averages better
    assert true_target[0] > rows["smoothing"][1][0]
