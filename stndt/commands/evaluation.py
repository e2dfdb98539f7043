"""Commands of the evaluation stage: score, members table, ensembles, paired ablation, baselines,
submission and EvalAI."""

from __future__ import annotations

from pathlib import Path

from stndt.candidates import BEST_COBPS, CANDIDATE_MODES
from stndt.commands import command, keyed, member_file_arg
from stndt.datasets import PHASES, SUPPORTED_BIN_WIDTHS_MS


def _score_args(p):
    p.add_argument("--rates", required=True, type=Path, help="rates file (NLB submission layout)")
    p.add_argument("--rates-group", help="group of the rates file holding the phase (truth.h5: val or test)")
    p.add_argument("--tensors", required=True, type=Path, help="the phase's tensors file (targets)")
    p.add_argument("--truth", type=Path, help="truth.h5: also report R2 against the true rates")
    p.add_argument("--out", required=True, type=Path, help="metrics JSON")


@command("score", "score a rates file with nlb_tools' evaluate")(_score_args)
def _score(a):
    from stndt.evaluate.pipeline import score_rates

    score_rates(a.rates, a.tensors, a.out, a.truth, a.rates_group)


def _table_args(p):
    member_file_arg(p, "a member's params.json, train_log.csv and metrics_PHASE.json (rows in member order)")
    p.add_argument(
        "--phases", nargs="+", choices=PHASES, required=True, help="phases whose metrics_PHASE.json each member has"
    )
    p.add_argument("--out", required=True, type=Path)


@command("members-table", "one row per member: hyperparameters and metrics")(_table_args)
def _members_table(a):
    from stndt.evaluate.members_table import members_table

    members_table(keyed(a.member_file, "--member-file"), a.out, a.phases)


def _ensemble_args(p):
    p.add_argument("--table", required=True, type=Path, help="members.csv")
    member_file_arg(p, "a member's rates_PHASE.h5 (and with --candidates checkpoints its candidates/ files)")
    p.add_argument("--val", required=True, type=Path, help="val-phase tensors")
    p.add_argument("--test", required=True, type=Path, help="test-phase tensors")
    p.add_argument("--out-json", required=True, type=Path, help="ensemble.json: the chosen ensemble")
    p.add_argument("--out-curve", required=True, type=Path, help="ensemble_curve.csv: val co-bps against size")
    p.add_argument(
        "--out-rates",
        nargs=2,
        action="append",
        required=True,
        metavar=("PHASE", "H5"),
        help="the ensemble's rates of a phase (val and test)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the honest split of the val trials")
    p.add_argument(
        "--candidates",
        choices=CANDIDATE_MODES,
        default=BEST_COBPS,
        help="evaluation.candidates: each member's best val co-bps checkpoint, or also its extra "
        "best checkpoints (its candidates/ folder; stndt.candidates)",
    )
    p.add_argument("--max-size", type=int, help="evaluation.max_size: the largest ensemble (default: no cap)")


@command("ensemble", "rank members (or candidate checkpoints) by val co-bps and choose the ensemble size")(
    _ensemble_args
)
def _ensemble(a):
    from stndt.evaluate.pipeline import EnsembleFiles, build_ensemble

    out = EnsembleFiles(a.out_json, a.out_curve, {k: Path(v) for k, v in keyed(a.out_rates, "--out-rates").items()})
    members = keyed(a.member_file, "--member-file")
    build_ensemble(a.table, members, a.val, a.test, out, a.seed, candidates=a.candidates, max_size=a.max_size)


def _paired_args(p):
    member_file_arg(
        p,
        "a member's rates_PHASE.h5 and metrics_PHASE.json, by set (stndt: those paired with the variants' members)",
        with_set=True,
    )
    p.add_argument("--val", required=True, type=Path, help="val-phase tensors")
    p.add_argument("--test", required=True, type=Path, help="test-phase tensors")
    p.add_argument("--truth", type=Path, help="truth.h5 of a synthetic dataset")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap and the honest split")
    p.add_argument("--out", required=True, type=Path, help="paired_ablation.csv")


@command("paired-ablation", "STNDT against each variant on equal pools of the same draws")(_paired_args)
def _paired_ablation(a):
    from stndt.evaluate.paired import paired_ablation
    from stndt.io import atomic_path

    sets = keyed(a.member_file, "--member-file")
    if "stndt" not in sets or len(sets) < 2:
        raise ValueError(
            "paired-ablation: give the files of STNDT members (--member-file stndt ...) and of at least one variant"
        )
    stndt = sets.pop("stndt")
    table = paired_ablation(stndt, sets, a.val, a.test, a.seed, a.truth)
    with atomic_path(a.out) as tmp:
        table.to_csv(tmp, index=False)


def _smoothing_args(p):
    p.add_argument("--tensors", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)


@command("smoothing", "NLB spike-smoothing baseline rates for one phase")(_smoothing_args)
def _smoothing(a):
    from stndt.evaluate.pipeline import smoothing_baseline

    smoothing_baseline(a.tensors, a.out)


def _submission_args(p):
    p.add_argument("--rates", required=True, type=Path, help="the ensemble's test-phase rates")
    p.add_argument("--test", required=True, type=Path, help="test-phase tensors")
    p.add_argument("--out", required=True, type=Path)


@command("submission", "write and check the EvalAI test-phase submission")(_submission_args)
def _submission(a):
    from stndt.evaluate.pipeline import submission

    submission(a.rates, a.test, a.out)


def _evalai_args(p):
    p.add_argument("--submission", required=True, type=Path, help="the dataset's submission.h5")
    p.add_argument("--test", required=True, type=Path, help="its test-phase tensors (the file is re-checked first)")
    p.add_argument("--dataset", required=True, help="dataset id (named in errors and in submitted.json)")
    p.add_argument("--source", required=True, help="the dataset's source: synthetic datasets are refused")
    p.add_argument("--layout", required=True, help="NLB layout of the dataset")
    p.add_argument("--bin-width-ms", required=True, type=int, choices=SUPPORTED_BIN_WIDTHS_MS)
    p.add_argument("--challenge", required=True, type=int, help="EvalAI challenge id (NLB'21: 1256)")
    p.add_argument("--phase", required=True, type=int, help="EvalAI phase id (the challenge's Test phase)")
    p.add_argument("--host", required=True, help="EvalAI server, e.g. https://eval.ai")
    p.add_argument("--method-name", required=True, help="method name on the leaderboard")
    p.add_argument("--out", required=True, type=Path, help="submitted.json: where it went and EvalAI's answer")


@command("evalai-submit", "submit a dataset's submission.h5 to EvalAI (token: environment variable EVALAI_TOKEN)")(
    _evalai_args
)
def _evalai_submit(a):
    from stndt.evalai_settings import EvalAISettings
    from stndt.evaluate.evalai import submit

    settings = EvalAISettings(
        phases={a.bin_width_ms: a.phase}, challenge=a.challenge, host=a.host, method_name=a.method_name
    )
    record = submit(
        a.submission,
        a.test,
        a.out,
        dataset=a.dataset,
        source=a.source,
        layout=a.layout,
        bin_width_ms=a.bin_width_ms,
        settings=settings,
    )
    print(
        f"EvalAI submission {record['response'].get('id')} ({record['response'].get('status')}) of {a.submission}; "
        f"see {a.out}"
    )


def _baselines_args(p):
    p.add_argument("--phases", nargs="+", default=["val"], help="phases of every method's rows (default: val)")
    p.add_argument(
        "--ensemble-metrics",
        nargs=3,
        action="append",
        metavar=("SET", "PHASE", "METRICS_JSON"),
        help="row {SET}_ensemble: a member set's (stndt or a variant) ensemble metrics of one phase",
    )
    p.add_argument(
        "--ranking",
        nargs=2,
        action="append",
        metavar=("SET", "ENSEMBLE_JSON"),
        help="row {SET}_single: the set's ensemble.json, whose ranking names its best member",
    )
    p.add_argument(
        "--member-metrics",
        nargs=4,
        action="append",
        metavar=("SET", "MEMBER", "PHASE", "METRICS_JSON"),
        help="a member's metrics of one phase (give every member of a --ranking set: the best is read)",
    )
    p.add_argument(
        "--baseline-metrics",
        nargs=3,
        action="append",
        metavar=("NAME", "PHASE", "METRICS_JSON"),
        help="row NAME (e.g. smoothing, oracle): its metrics of one phase",
    )
    p.add_argument("--out", required=True, type=Path, help="baselines.csv")


@command("baselines", "collect every method's metrics into baselines.csv")(_baselines_args)
def _baselines(a):
    from stndt.evaluate.baselines import baseline_methods, write_baselines

    methods = baseline_methods(
        keyed(a.ensemble_metrics, "--ensemble-metrics"),
        keyed(a.ranking, "--ranking"),
        keyed(a.member_metrics, "--member-metrics"),
        keyed(a.baseline_metrics, "--baseline-metrics"),
    )
    if not methods:
        raise ValueError("baselines: no methods given (--ensemble-metrics, --ranking, --baseline-metrics)")
    write_baselines(methods, a.phases, a.out)
