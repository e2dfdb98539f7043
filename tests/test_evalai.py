"""Closing the loop through EvalAI (stndt.evaluate.evalai): the opt-in submission up to the network call,
the import of a scored result into the paper tables, and the workflow wiring of both.

Results are made by nlb_tools' own `evaluate()` (the code NLB's EvalAI challenge runs) on synthetic test
phases (tests/test_evaluate.py's `make_data`), then wrapped as EvalAI stores them. No test reaches the
network: the submission's one HTTP call goes to a fake session that records it.
"""

from __future__ import annotations

import json
from pathlib import Path

import nlb_tools.evaluation as nlb_evaluation
import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import TINY, snakemake, write_config
from test_evaluate import make_data, noisy
from tiny_tensors import write_tiny_tensors

from stndt.cli import main
from stndt.config import pipeline_config
from stndt.datasets import CO_BPS, FP_BPS, nlb_dataset, nlb_key
from stndt.errors import ConfigError
from stndt.evalai_settings import EvalAISettings
from stndt.evaluate import evalai
from stndt.evaluate.submission import expected_shapes, write_submission
from stndt.io import load_h5
from stndt.paper import ABLATION_TABLE, MAIN_TABLE, SCALING_TABLE

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = ROOT / "config" / "published_results.csv"
TOKEN = "s3cr3t-t0ken-1234567890"
# 4321: a made-up phase id (the NLB Test phase's real id is not documented; the user sets it)
SETTINGS = EvalAISettings(phases={5: 4321, 20: 4321}, challenge=1256, host="https://eval.example")


def scored(layouts: list[str], bin_width_ms: int = 5, seed: int = 0) -> list:
    """nlb_tools' evaluate() on one synthetic test phase per layout (noisy true rates), as one submission."""
    targets, rates = {}, {}
    for i, layout in enumerate(layouts):
        d = make_data(seed=seed + i, key=nlb_key(layout, bin_width_ms), dmfc=layout == "dmfc_rsg")
        if layout == "mc_rtt":  # no conditions, no PSTH: evaluate() scores no psth R2, as for the real data
            d.targets[d.key].pop("psth")
        targets.update(d.targets)
        rates.update(noisy(d.truth, seed + 10 + i, 0.3))
    return nlb_evaluation.evaluate(targets, rates)


def as_evalai(result: list) -> dict:
    """What EvalAI's evaluation script hands EvalAI (docs/source/evaluation_scripts.md): the list under
    "result", one item of it under "submission_result" (EvalAI-Starters' evaluation_script/main.py)."""
    return {"result": result, "submission_result": result[0]}


def write(path: Path, data) -> Path:
    path.write_text(json.dumps(data))
    return path


def table_outs(folder: Path, *extra: str) -> list[str]:
    """The tables command's `--out TABLE CSV MD` arguments for the main and ablation tables (and `extra`)."""
    return [
        x
        for t in (MAIN_TABLE, ABLATION_TABLE, *extra)
        for x in ("--out", t, str(folder / f"{t}.csv"), str(folder / f"{t}.md"))
    ]


def baselines(cobps: float = 0.3) -> pd.DataFrame:
    """A real dataset's baselines.csv: val phase only (the real test split is scored by EvalAI)."""
    return pd.DataFrame(
        {
            "method": ["stndt_ensemble", "stndt_ensemble", "stndt_single", "smoothing"],
            "phase": ["val"] * 4,
            "split": ["val", "val split-half", "val", "val"],
            "selected on": ["val", "other val half (best epochs: val)", "val", "none (fixed settings)"],
            "co-bps": [cobps, cobps - 0.03, cobps - 0.01, 0.2],
            "vel R2": [0.9, 0.85, 0.89, 0.6],
            "psth R2": [0.6, 0.55, 0.59, 0.2],
            "fp-bps": [0.25, 0.2, 0.24, 0.1],
        }
    )


# ------------------------------------------------------------------------------------ importing results
def test_evalai_result_flows_into_the_main_table(tmp_path: Path):
    result = scored(["mc_maze"])
    raw = result[0]["mc_maze_split"]
    assert set(raw) == set(nlb_dataset("mc_maze").metrics)
    path = write(tmp_path / "mc_maze_result.json", as_evalai(result))
    # every accepted wrapping gives the same numbers: evaluate()'s list, EvalAI's output dict, its result file
    for data in (result, as_evalai(result), {"submission_result": result[0]}, result[0]):
        loaded = evalai.load_result(write(tmp_path / "r.json", data), "mc_maze", 5)
        assert loaded == {k: float(v) for k, v in raw.items()}
    csv = tmp_path / "baselines.csv"
    baselines().to_csv(csv, index=False)
    out = tmp_path / "tables"
    assert (
        main(
            [
                "tables",
                "--dataset",
                "maze",
                "mc_maze",
                str(csv),
                "--published",
                str(PUBLISHED),
                "--evalai-result",
                "maze",
                str(path),
                "--bin-width-ms",
                "5",
                *table_outs(out),
            ]
        )
        == 0
    )
    table = pd.read_csv(out / "table1_main.csv")
    rows = table[table["source"] == "ours (EvalAI test)"]
    assert len(rows) == 1
    row = rows.iloc[0]
    assert (row["dataset"], row["layout"], row["method"], row["variant"], row["split"], row["selected on"]) == (
        "maze",
        "mc_maze",
        "STNDT",
        "ensemble",
        "test",
        "val",
    )
    for metric, value in raw.items():
        assert row[metric] == pytest.approx(value, abs=1e-12)
    # it stands between our local rows and the published ones (the only other hidden-test numbers)
    assert list(dict.fromkeys(table["source"])) == ["ours", "ours (EvalAI test)", "published"]
    assert (
        "| maze | mc_maze | ours (EvalAI test) | STNDT | ensemble | test | val |"
        in (out / "table1_main.md").read_text()
    )
    # without the result the table has no such row (the default, and nothing else changes)
    assert (
        main(
            [
                "tables",
                "--dataset",
                "maze",
                "mc_maze",
                str(csv),
                "--published",
                str(PUBLISHED),
                *table_outs(tmp_path / "plain"),
            ]
        )
        == 0
    )
    plain = pd.read_csv(tmp_path / "plain" / "table1_main.csv")
    pd.testing.assert_frame_equal(plain, table[table["source"] != "ours (EvalAI test)"].reset_index(drop=True))


def test_a_combined_scaling_result_feeds_each_size_and_the_scaling_table(tmp_path: Path):
    """NLB scores the three MC_Maze scaling sizes from one file: one result, three dataset entries."""
    sizes = ["mc_maze_large", "mc_maze_medium", "mc_maze_small"]
    result = scored(sizes, seed=3)
    assert list(result[0]) == ["mc_maze_scaling_split"]
    raw = result[0]["mc_maze_scaling_split"]
    path = write(tmp_path / "scaling.json", as_evalai(result))
    args = ["tables", "--published", str(PUBLISHED), "--bin-width-ms", "5", *table_outs(tmp_path / "t", SCALING_TABLE)]
    for i, layout in enumerate(sizes):
        csv = tmp_path / f"{layout}.csv"
        baselines(0.2 + i / 10).to_csv(csv, index=False)
        args += ["--dataset", layout, layout, str(csv), "--evalai-result", layout, str(path)]
    assert main(args) == 0
    scaling = pd.read_csv(tmp_path / "t" / "table_scaling.csv")
    ours = scaling[scaling["source"] == "ours (EvalAI test)"].set_index("layout")
    assert list(ours.index) == sizes  # large, medium, small
    for layout, prefix in [("mc_maze_large", "[500]"), ("mc_maze_medium", "[250]"), ("mc_maze_small", "[100]")]:
        assert ours.loc[layout, CO_BPS] == pytest.approx(raw[f"{prefix} {CO_BPS}"], abs=1e-12)
        assert ours.loc[layout, FP_BPS] == pytest.approx(raw[f"{prefix} {FP_BPS}"], abs=1e-12)
    # the sizes' numbers differ (each size is its own split of the result)
    assert ours[CO_BPS].nunique() == 3


def test_a_20ms_result_is_read_at_20ms(tmp_path: Path):
    result = scored(["mc_rtt"], bin_width_ms=20, seed=5)
    assert list(result[0]) == ["mc_rtt_20_split"]  # nlb_tools' suffix for 20 ms bins
    metrics = evalai.load_result(write(tmp_path / "r.json", as_evalai(result)), "mc_rtt", 20)
    assert set(metrics) == set(nlb_dataset("mc_rtt").metrics)


@pytest.fixture(scope="module")
def maze_result() -> list:
    return scored(["mc_maze"], seed=7)


@pytest.mark.parametrize(
    "content, problem",
    [
        ("{'result': [{'mc_maze_split': {'co-bps': 0.3}}]}", "not valid JSON"),  # a Python repr, not JSON
        ('{"score": 0.3}', "not an EvalAI / nlb_tools result"),
        ('{"result": []}', "empty result"),
        ('{"result": [{"mc_maze_split": 0.3}]}', "entry 0 is not a"),
        ('[{"mc_maze_split": {"co-bps": 0.3}}, {"mc_maze_split": {"co-bps": 0.2}}]', "appears twice"),
        ('[{"mc_maze_split": {"co-bps": "0.3", "vel R2": 0.9, "psth R2": 0.5, "fp-bps": 0.2}}]', "not a number"),
        ('[{"mc_maze_split": {"co-bps": 0.3, "vel R2": 0.9, "psth R2": 0.5, "fp-bps": 0.2, "bps": 1}}]', "unknown"),
        ('[{"mc_maze_split": {"co-bps": NaN, "vel R2": 0.9, "psth R2": 0.5, "fp-bps": 0.2}}]', "not finite"),
    ],
)
def test_a_malformed_result_is_refused_naming_the_file_and_the_problem(tmp_path: Path, content: str, problem: str):
    path = tmp_path / "downloaded.json"
    path.write_text(content)
    with pytest.raises(evalai.EvalAIError, match=problem) as err:
        evalai.load_result(path, "mc_maze", 5, dataset="maze")
    assert str(path) in str(err.value) and "datasets.maze.evalai_result" in str(err.value)


def test_a_result_of_another_dataset_or_bin_width_or_without_a_metric_is_refused(tmp_path: Path, maze_result):
    other = write(tmp_path / "rtt.json", as_evalai(scored(["mc_rtt"], seed=8)))
    with pytest.raises(evalai.EvalAIError, match=r"mc_rtt.*not for layout mc_maze.*another dataset") as err:
        evalai.load_result(other, "mc_maze", 5)
    assert str(other) in str(err.value)
    at20 = write(tmp_path / "maze20.json", as_evalai(scored(["mc_maze"], bin_width_ms=20, seed=9)))
    with pytest.raises(evalai.EvalAIError, match=r"mc_maze_20_split.*20 ms bins.*bins at 5 ms") as err:
        evalai.load_result(at20, "mc_maze", 5)
    assert str(at20) in str(err.value)
    # and the other way round: a 5 ms result for a 20 ms pipeline
    with pytest.raises(evalai.EvalAIError, match=r"5 ms bins.*bins at 20 ms"):
        evalai.load_result(write(tmp_path / "maze5.json", maze_result), "mc_maze", 20)
    # a scaling result without this size
    small_only = write(tmp_path / "small.json", scored(["mc_maze_small"], seed=10))
    with pytest.raises(evalai.EvalAIError, match=r"\[100\].*not \[500\] \(mc_maze_large\)"):
        evalai.load_result(small_only, "mc_maze_large", 5)
    no_fp = [{"mc_maze_split": {k: v for k, v in maze_result[0]["mc_maze_split"].items() if k != FP_BPS}}]
    missing = write(tmp_path / "no_fp.json", as_evalai(no_fp))
    with pytest.raises(evalai.EvalAIError, match=r"\['fp-bps'\] missing for mc_maze") as err:
        evalai.load_result(missing, "mc_maze", 5)
    assert str(missing) in str(err.value)


def test_the_tables_command_names_a_bad_result_file(tmp_path: Path, capsys):
    csv = tmp_path / "baselines.csv"
    baselines().to_csv(csv, index=False)
    bad = write(tmp_path / "rtt.json", scored(["mc_rtt"], seed=11))
    argv = [
        "tables",
        "--dataset",
        "maze",
        "mc_maze",
        str(csv),
        "--published",
        str(PUBLISHED),
        "--evalai-result",
        "maze",
        str(bad),
        *table_outs(tmp_path / "t"),
    ]
    assert main(argv) == 1 and "--bin-width-ms" in capsys.readouterr().err
    assert main([*argv, "--bin-width-ms", "5"]) == 1
    err = capsys.readouterr().err
    assert str(bad) in err and "another dataset" in err and not (tmp_path / "t" / "table1_main.csv").exists()


# ------------------------------------------------------------------------------------------- submitting
class FakeResponse:
    def __init__(self, status_code: int, body: dict):
        self.status_code, self._body = status_code, body
        self.text = json.dumps(body)

    def json(self):
        return self._body


class FakeSession:
    """Records every POST as EvalAI would receive it (the file part read in full) and answers `reply`."""

    def __init__(self, reply: FakeResponse):
        self.reply, self.calls = reply, []

    def post(self, url, headers=None, files=None, data=None, timeout=None):
        name, handle, mime = files["input_file"]
        self.calls.append(
            {
                "url": url,
                "headers": headers,
                "file_name": name,
                "file_bytes": handle.read(),
                "mime": mime,
                "data": data,
                "timeout": timeout,
            }
        )
        return self.reply


# SubmissionSerializer's fields (Cloud-CV/EvalAI apps/jobs/serializers.py), as the server answers a POST
ACCEPTED = {
    "id": 98765,
    "participant_team": 12,
    "participant_team_name": "us",
    "challenge_phase": 4321,
    "created_by": 3,
    "status": "submitted",
    "input_file": "https://bucket.example/x.h5?Signature=abc",
    "method_name": "STNDT ensemble",
    "is_public": False,
    "submitted_at": "2025-01-01T00:00:00Z",
    "stdout_file": None,
    "submission_result_file": None,
}


@pytest.fixture
def submission_files(tmp_path: Path) -> tuple[Path, Path]:
    """A valid submission.h5 for tiny mc_maze test tensors (5 ms)."""
    _, test = write_tiny_tensors(tmp_path / "tensors", 10, 4, 14, 5)
    rng = np.random.default_rng(0)
    rates = {k: rng.uniform(0.05, 1.0, s) for k, s in expected_shapes(load_h5(test)).items()}
    sub = tmp_path / "submission.h5"
    write_submission(rates, sub, test, "mc_maze", 5)
    return sub, test


def submit(sub: Path, test: Path, out: Path, session: FakeSession, **kw):
    args = {
        "dataset": "maze",
        "source": "dandi",
        "layout": "mc_maze",
        "bin_width_ms": 5,
        "settings": SETTINGS,
        "post": session.post,
        "environ": {"EVALAI_TOKEN": TOKEN},
        **kw,
    }
    return evalai.submit(sub, test, out, **args)


def test_submission_posts_the_file_with_the_token_and_records_no_token(submission_files, tmp_path: Path):
    sub, test = submission_files
    session = FakeSession(FakeResponse(201, ACCEPTED))
    out = tmp_path / "evalai" / "submitted.json"
    submit(sub, test, out, session)
    (call,) = session.calls
    assert call["url"] == "https://eval.example/api/jobs/challenge/1256/challenge_phase/4321/submission/"
    assert call["headers"] == {"Authorization": f"Bearer {TOKEN}"}
    assert call["file_name"] == "submission.h5" and call["file_bytes"] == sub.read_bytes()
    assert call["data"] == {"status": "submitting", "method_name": "STNDT ensemble"} and call["timeout"]
    text = out.read_text()
    assert TOKEN not in text and "Signature" not in text  # nor the storage link of the uploaded file
    record = json.loads(text)
    assert record["response"] == {k: ACCEPTED[k] for k in evalai.RESPONSE_KEYS}
    assert (record["challenge"], record["phase"], record["dataset"]) == (1256, 4321, "maze")
    assert record["sha256"] and record["submission"] == str(sub)
    assert not list(out.parent.glob("*.tmp"))  # written atomically


def test_nothing_is_sent_without_a_token_for_synthetic_or_scaling_data_or_for_a_bad_file(
    submission_files, tmp_path: Path
):
    sub, test = submission_files
    session = FakeSession(FakeResponse(201, ACCEPTED))
    out = tmp_path / "submitted.json"
    for kw, problem in [
        ({"environ": {}}, "EVALAI_TOKEN is not set"),
        ({"environ": {"EVALAI_TOKEN": "  "}}, "EVALAI_TOKEN is not set"),
        ({"source": "synthetic"}, "datasets.maze is synthetic.*nothing to submit"),
        ({"layout": "mc_maze_small"}, "scaling size.*same file"),
        ({"bin_width_ms": 20}, "mc_maze_20"),
    ]:  # the file holds mc_maze (5 ms), not mc_maze_20
        with pytest.raises((evalai.EvalAIError, ValueError), match=problem):
            submit(sub, test, out, session, **kw)
    assert session.calls == [] and not out.exists()


def test_a_refusal_by_evalai_is_reported_without_the_token(submission_files, tmp_path: Path):
    sub, test = submission_files
    out = tmp_path / "submitted.json"
    session = FakeSession(FakeResponse(401, {"detail": "Invalid token"}))
    with pytest.raises(evalai.EvalAIError, match=r"HTTP 401: Invalid token.*EVALAI_TOKEN") as err:
        submit(sub, test, out, session)
    assert TOKEN not in str(err.value) and not out.exists()
    session = FakeSession(FakeResponse(400, {"error": "Challenge Phase does not exist"}))
    with pytest.raises(evalai.EvalAIError, match="HTTP 400: Challenge Phase does not exist"):
        submit(sub, test, out, session)


def test_the_command_reads_the_token_from_the_environment_only(submission_files, tmp_path: Path, monkeypatch, capsys):
    import requests

    sub, test = submission_files
    out = tmp_path / "submitted.json"
    argv = [
        "evalai-submit",
        "--submission",
        str(sub),
        "--test",
        str(test),
        "--dataset",
        "maze",
        "--source",
        "dandi",
        "--layout",
        "mc_maze",
        "--bin-width-ms",
        "5",
        "--challenge",
        "1256",
        "--phase",
        "4321",
        "--host",
        "https://eval.example",
        "--method-name",
        "STNDT ensemble",
        "--out",
        str(out),
    ]
    session = FakeSession(FakeResponse(201, ACCEPTED))
    monkeypatch.setattr(requests, "post", session.post)  # the command's one network call
    monkeypatch.delenv("EVALAI_TOKEN", raising=False)
    assert main(argv) == 1 and "EVALAI_TOKEN is not set" in capsys.readouterr().err
    assert session.calls == [] and not out.exists()
    monkeypatch.setenv("EVALAI_TOKEN", TOKEN)
    assert main(argv) == 0 and "98765" in capsys.readouterr().out
    assert session.calls[0]["headers"]["Authorization"] == f"Bearer {TOKEN}" and TOKEN not in out.read_text()


# ----------------------------------------------------------------------------------------------- config
def _cfg(tmp_path: Path, **extra) -> dict:
    return {"datasets": {"rtt": {"source": "dandi", "layout": "mc_rtt", **extra}}}


def test_config_keys(tmp_path: Path):
    result = write(tmp_path / "r.json", [])
    cfg = pipeline_config({**_cfg(tmp_path, evalai_result=str(result)), "evalai": {"phase": 7}})
    assert cfg.datasets["rtt"].evalai_result == str(result)
    assert cfg.evalai == EvalAISettings(phases={5: 7, 20: 7})  # challenge 1256, https://eval.ai by default
    assert pipeline_config({**_cfg(tmp_path), "bin_width_ms": 20, "evalai": {"phase": {"20": 9}}}).evalai.phases == {
        20: 9
    }
    assert pipeline_config(_cfg(tmp_path)).evalai is None
    for config, key in [
        (_cfg(tmp_path, evalai_result=str(tmp_path / "none.json")), "datasets.rtt.evalai_result"),
        (
            {"datasets": {"s": {"source": "synthetic", "layout": "mc_maze", "evalai_result": str(result)}}},
            "datasets.s.evalai_result",
        ),
        ({**_cfg(tmp_path), "evalai": {"challenge": 1256}}, "evalai.phase"),
        ({**_cfg(tmp_path), "evalai": {"phase": {20: 9}}}, "evalai.phase"),  # no phase for the 5 ms pipeline
        ({**_cfg(tmp_path), "evalai": {"phase": {7: 9}}}, "evalai.phase.7"),
        ({**_cfg(tmp_path), "evalai": {"phase": 0}}, "evalai.phase"),
        ({**_cfg(tmp_path), "evalai": {"phase": 1, "token": "x"}}, "evalai.token"),  # never in the config
        ({**_cfg(tmp_path), "evalai": {"phase": 1, "host": "eval.ai"}}, "evalai.host"),
    ]:
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            pipeline_config(config)


# --------------------------------------------------------------------------------------------- workflow
def test_workflow_imports_the_result_and_submits_only_on_request(tmp_path: Path):
    """Dry runs: `evalai_result` is an input of the tables rule and reaches its command; the submission is
    in no default target, and is planned (without a token) when asked for."""
    base = yaml.safe_load(TINY.read_text())
    result = write(tmp_path / "downloaded result.json", as_evalai([{"mc_rtt_20_split": {}}]))
    base["datasets"]["rtt"] = {
        "source": "dandi",
        "layout": "mc_rtt",
        "variants": {"stndt": 1, "ndt": 0, "no_contrast": 0},
        "evalai_result": str(result),
    }
    base["evalai"] = {"phase": 4321}
    cfg = write_config(tmp_path / "config.yaml", base)
    out = snakemake(tmp_path, cfg, "-n", "--printshellcmds").stdout
    tables = out[out.index("rule tables:") :]
    tables = tables[: tables.index("\n\n")]
    assert str(result) in tables.split("input:")[1].split("\n")[0]  # the rule's input
    assert f"--evalai-result rtt '{result}'" in out and "--bin-width-ms 20" in out  # the command's arguments
    assert "evalai_submission" not in out and "submitted.json" not in out
    # asked for: one job for the real dataset, the synthetic one skipped with the reason
    proc = snakemake(tmp_path, cfg, "-n", "--printshellcmds", "evalai_submit")
    assert "rule evalai_submission:" in proc.stdout and "results/rtt/evalai/submitted.json" in proc.stdout
    assert "evalai-submit" in proc.stdout and "--phase 4321" in proc.stdout and "EVALAI_TOKEN" not in proc.stdout
    assert "skipping tiny: datasets.tiny is synthetic" in proc.stderr
    # a synthetic dataset asked for by path fails the plan with the reason
    proc = snakemake(tmp_path, cfg, "-n", "results/tiny/evalai/submitted.json", check=False)
    assert proc.returncode != 0 and "datasets.tiny is synthetic" in proc.stdout + proc.stderr
