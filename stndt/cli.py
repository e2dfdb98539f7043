"""`stndt` command line: every Snakemake rule is one of these subcommands, so the whole pipeline can
also be run by hand or from another workflow engine.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Callable

COMMANDS: dict[str, tuple[Callable[[argparse.Namespace], None], Callable[[argparse.ArgumentParser], None], str]] = {}


def command(name: str, help: str):
    """Register a subcommand: the decorated function takes parsed args; `add_args` declares them."""
    def wrap(add_args):
        def register(run):
            COMMANDS[name] = (run, add_args, help)
            return run
        return register
    return wrap


# ---------------------------------------------------------------- data
def _download_args(p):
    p.add_argument("--layout", required=True, help="NLB dataset name (selects the dandiset)")
    p.add_argument("--out", required=True, type=Path, help="folder receiving the train and test NWB files")
    p.add_argument("--cache", type=Path, help="download cache (kept across runs; files are hard-linked from it)")
    p.add_argument("--version", default="", help="dandiset version (default: most recent published)")


@command("download", "fetch an NLB dataset's NWB files from DANDI")(_download_args)
def _download(a):
    from stndt.data.dandi import DownloadConfig, download_dataset
    from stndt.data.staging import stage_files

    cache = a.cache or a.out.with_name(a.out.name + ".cache")
    files = download_dataset(a.layout, cache / a.layout, DownloadConfig(version=a.version or None))
    stage_files(files, a.out, a.layout)


def _synth_args(p):
    p.add_argument("--layout", required=True)
    p.add_argument("--raw", required=True, type=Path, help="folder for the public train and test NWB files")
    p.add_argument("--hidden", required=True, type=Path, help="complete recording incl. test targets and true rates")
    p.add_argument("--params", default="{}", help="JSON object of SyntheticConfig overrides")
    p.add_argument("--seed", type=int, default=0)


@command("synthesize", "generate a synthetic dataset in an NLB layout")(_synth_args)
def _synthesize(a):
    from dataclasses import replace

    from stndt.data.synthetic import SyntheticConfig, generate
    from stndt.data.staging import staged_dir

    overrides = json.loads(a.params)
    cfg = replace(SyntheticConfig(), **{"seed": a.seed, **overrides})
    with staged_dir(a.raw) as tmp_raw:
        generate(a.layout, tmp_raw, a.hidden, cfg)


def _local_args(p):
    p.add_argument("--src", required=True, type=Path, help="folder with the user's train and test NWB files")
    p.add_argument("--layout", required=True)
    p.add_argument("--out", required=True, type=Path)


@command("link-local", "check a user's NLB-format NWB files and link them into the results")(_local_args)
def _link_local(a):
    from stndt.data.nwb_checks import check_raw_dir
    from stndt.data.staging import stage_files

    files = check_raw_dir(a.src, a.layout)
    stage_files(files, a.out, a.layout, link=True)


def _tensor_args(p):
    p.add_argument("--raw", required=True, type=Path)
    p.add_argument("--layout", required=True)
    p.add_argument("--phase", required=True, choices=("val", "test"))
    p.add_argument("--bin-width", type=int, default=5, help="bin width in ms (5 or 20)")
    p.add_argument("--hidden", type=Path, help="complete recording with test targets (synthetic data)")
    p.add_argument("--holdout", type=float, default=0.0,
                   help="val phase: share of the eval trials set aside from every selection (evaluation.holdout)")
    p.add_argument("--seed", type=int, default=0, help="seed of the holdout draw")
    p.add_argument("--out", required=True, type=Path)


@command("tensors", "bin a dataset with nlb_tools and write one phase's tensors")(_tensor_args)
def _tensors(a):
    from stndt.data.tensors import add_holdout, build_phase, write_phase

    data = build_phase(a.raw, a.layout, a.phase, a.bin_width, a.hidden)
    if a.phase == "val":
        add_holdout(data, a.layout, a.bin_width, a.holdout, a.seed)
    write_phase(a.out, data, a.layout, a.phase, a.bin_width)


def _truth_args(p):
    p.add_argument("--hidden", required=True, type=Path)
    p.add_argument("--layout", required=True)
    p.add_argument("--bin-width", type=int, default=5)
    p.add_argument("--out", required=True, type=Path)


@command("truth", "true rates of a synthetic dataset in the submission format")(_truth_args)
def _truth(a):
    from stndt.data.synthetic import make_truth
    from stndt.io import save_h5

    save_h5(a.out, make_truth(a.hidden, a.layout, a.bin_width),
            attrs={"layout": a.layout, "bin_width_ms": a.bin_width})


def _overview_args(p):
    p.add_argument("--tensors", required=True, type=Path, help="val-phase tensors file")
    p.add_argument("--truth", type=Path, help="truth.h5 of a synthetic dataset")
    p.add_argument("--out", required=True, type=Path)


@command("overview", "figure: rasters and PSTHs of a few neurons")(_overview_args)
def _overview(a):
    from stndt.figures.data_overview import plot_data_overview

    plot_data_overview(a.tensors, a.truth, a.out)


# ---------------------------------------------------------------- training
def _train_args(p):
    p.add_argument("--val", required=True, type=Path, help="val-phase tensors (training and validation)")
    p.add_argument("--test", type=Path, help="test-phase tensors (rates for the submission)")
    p.add_argument("--out", required=True, nargs="+", type=Path,
                   help="member folder(s): several members are trained together as one pack on one device")
    p.add_argument("--params", required=True,
                   help="JSON: the member's resolved hyperparameters and training settings (incl. its seed), "
                        "as the workflow resolves them (stndt.train.members.resolve_member); a list of them, "
                        "one per --out folder, for a pack")
    p.add_argument("--truth", type=Path, help="truth.h5 of a synthetic dataset (adds rate R2 to the scores)")
    p.add_argument("--gpus", type=int, default=0,
                   help="GPUs this job was given: > 0 requires CUDA and fails at once without it")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--summary", type=Path, help="JSON written last: every member's training summary")


@command("train", "train members (one, or a pack on one device), resuming from their saved state; score each on val")(_train_args)
def _train(a):
    from stndt.evaluate.pipeline import score_rates
    from stndt.train.device import require_cuda
    from stndt.train.pack import train_pack

    given = json.loads(a.params)
    params_list = given if isinstance(given, list) else [given]
    if len(params_list) != len(a.out):
        raise ValueError(f"--params holds {len(params_list)} member(s) for {len(a.out)} --out folder(s)")
    if a.gpus > 0:
        require_cuda(a.gpus)
    for params in params_list:
        if a.gpus > 0:
            params["device"] = "cuda"
        if a.threads:
            params["num_threads"] = a.threads
    summaries = train_pack(a.val, a.test, a.out, params_list, progress=True)
    for out, summary in zip(a.out, summaries):
        # Scored here, on the node that already holds the rates, not by a job of its own.
        score_rates(out / "rates_val.h5", a.val, out / "metrics_val.json", a.truth)
        logging.getLogger("stndt").info("member %s done: %s", out, json.dumps(summary, default=str))
    if a.summary:
        from stndt.io import write_json

        write_json(a.summary, {"members": [str(o) for o in a.out], "training": summaries})


def _wave_args(p):
    p.add_argument("--space", required=True, help="JSON: the dataset's resolved search space")
    p.add_argument("--members", nargs="*", default=[], type=Path,
                   help="folders of the finished members of the earlier waves")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--wave", type=int, required=True)
    p.add_argument("--wave-size", type=int, required=True)
    p.add_argument("--method", default="bayes", choices=("bayes", "random"))
    p.add_argument("--out", required=True, type=Path, help="JSON: the wave's members and their sampled values")


@command("propose-wave", "propose the next wave of members from the finished ones' val co-bps")(_wave_args)
def _propose_wave(a):
    from stndt.io import write_json
    from stndt.train.members import member_id
    from stndt.train.search import completed_members, propose_wave, wave_indices

    space = json.loads(a.space)
    completed = completed_members(a.members, space)
    proposals = propose_wave(space, a.seed, a.wave, a.wave_size, completed, a.method)
    members = {member_id(i): p for i, p in zip(wave_indices(a.wave, a.wave_size), proposals)}
    write_json(a.out, {"wave": a.wave, "method": a.method, "seed": a.seed, "completed": len(completed),
                       "members": members})


# ---------------------------------------------------------------- evaluation
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
    p.add_argument("--members", required=True, nargs="+", type=Path, help="member folders")
    p.add_argument("--out", required=True, type=Path)


@command("members-table", "one row per member: hyperparameters and metrics")(_table_args)
def _members_table(a):
    from stndt.evaluate.pipeline import members_table

    members_table(a.members, a.out)


def _ensemble_args(p):
    p.add_argument("--table", required=True, type=Path, help="members.csv")
    p.add_argument("--members", required=True, nargs="+", type=Path, help="member folders")
    p.add_argument("--val", required=True, type=Path, help="val-phase tensors")
    p.add_argument("--test", required=True, type=Path, help="test-phase tensors")
    p.add_argument("--out-dir", required=True, type=Path)
    p.add_argument("--seed", type=int, default=0, help="seed of the honest split of the val trials")


@command("ensemble", "rank members by val co-bps and choose the ensemble size")(_ensemble_args)
def _ensemble(a):
    from stndt.evaluate.pipeline import build_ensemble

    build_ensemble(a.table, a.members, a.val, a.test, a.out_dir, a.seed)


def _paired_args(p):
    p.add_argument("--member", nargs=2, action="append", required=True, metavar=("SET", "DIR"),
                   help="a member folder of a set (stndt: those paired with the variants' members)")
    p.add_argument("--val", required=True, type=Path, help="val-phase tensors")
    p.add_argument("--test", required=True, type=Path, help="test-phase tensors")
    p.add_argument("--truth", type=Path, help="truth.h5 of a synthetic dataset")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap and the honest split")
    p.add_argument("--out", required=True, type=Path, help="paired_ablation.csv")


@command("paired-ablation", "STNDT against each variant on equal pools of the same draws")(_paired_args)
def _paired_ablation(a):
    from stndt.evaluate.paired import paired_ablation
    from stndt.io import atomic_path

    sets: dict[str, list[Path]] = {}
    for name, d in a.member:
        sets.setdefault(name, []).append(Path(d))
    if "stndt" not in sets or len(sets) < 2:
        raise ValueError("paired-ablation: give --member stndt DIR and the members of at least one variant")
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


def _keyed(rows: list[list[str]] | None, what: str) -> dict:
    """Repeated `--opt KEY [KEY ...] PATH` values as a nested dict {KEY: ... {KEY: Path}}, in the given
    order; a key path given twice is an error (two files for one slot). Used by the commands whose
    every input file is an argument (baselines, neuron-dropping, figure)."""
    out: dict = {}
    for *keys, path in rows or []:
        node = out
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        if keys[-1] in node:
            raise ValueError(f"{what}: {' '.join(keys)} given twice")
        node[keys[-1]] = Path(path)
    return out


def _baselines_args(p):
    p.add_argument("--phases", nargs="+", default=["val"], help="phases of every method's rows (default: val)")
    p.add_argument("--ensemble-metrics", nargs=3, action="append", metavar=("SET", "PHASE", "METRICS_JSON"),
                   help="row {SET}_ensemble: a member set's (stndt or a variant) ensemble metrics of one phase")
    p.add_argument("--ranking", nargs=2, action="append", metavar=("SET", "ENSEMBLE_JSON"),
                   help="row {SET}_single: the set's ensemble.json, whose ranking names its best member")
    p.add_argument("--member-metrics", nargs=4, action="append", metavar=("SET", "MEMBER", "PHASE", "METRICS_JSON"),
                   help="a member's metrics of one phase (give every member of a --ranking set: the best is read)")
    p.add_argument("--baseline-metrics", nargs=3, action="append", metavar=("NAME", "PHASE", "METRICS_JSON"),
                   help="row NAME (e.g. smoothing, oracle): its metrics of one phase")
    p.add_argument("--out", required=True, type=Path, help="baselines.csv")


@command("baselines", "collect every method's metrics into baselines.csv")(_baselines_args)
def _baselines(a):
    from stndt.evaluate.pipeline import baseline_methods, write_baselines

    methods = baseline_methods(_keyed(a.ensemble_metrics, "--ensemble-metrics"), _keyed(a.ranking, "--ranking"),
                               _keyed(a.member_metrics, "--member-metrics"),
                               _keyed(a.baseline_metrics, "--baseline-metrics"))
    if not methods:
        raise ValueError("baselines: no methods given (--ensemble-metrics, --ranking, --baseline-metrics)")
    write_baselines(methods, a.phases, a.out)


# ---------------------------------------------------------------- paper
def _tables_args(p):
    p.add_argument("--dataset", nargs=3, action="append", required=True, metavar=("ID", "LAYOUT", "BASELINES_CSV"),
                   help="one per dataset: its id, NLB layout and baselines.csv")
    p.add_argument("--synthetic", nargs="*", default=[], help="ids of synthetic datasets (no published rows)")
    p.add_argument("--paired", nargs=2, action="append", metavar=("ID", "PAIRED_CSV"),
                   help="a dataset's paired_ablation.csv (Table 3/4 on equal pools)")
    p.add_argument("--published", type=Path, default=Path("config/published_results.csv"))
    p.add_argument("--out-dir", required=True, type=Path)


@command("tables", "the paper's tables (ours beside the published numbers), CSV + Markdown")(_tables_args)
def _tables(a):
    import pandas as pd

    from stndt.paper.tables import PAIRED_NOTE
    from stndt.paper.tables import READING_NOTE as cite
    from stndt.paper.tables import ablation_table, load_published, main_table, scaling_table, write_table

    results = {ds: (layout, pd.read_csv(path)) for ds, layout, path in a.dataset}
    main = main_table(results, load_published(a.published), set(a.synthetic))
    write_table(main, a.out_dir / "table1_main.csv", "Table 1/2: STNDT and baselines", cite)
    paired = {ds: pd.read_csv(path) for ds, path in a.paired or []}
    write_table(ablation_table(main, paired), a.out_dir / "table3_ablation.csv",
                "Table 3/4: ablations on equal pools of the same draws", f"{cite} {PAIRED_NOTE}")
    scaling = scaling_table(main)
    if len(scaling):
        write_table(scaling, a.out_dir / "table_scaling.csv", "MC_Maze scaling (large / medium / small)", cite)


def _dropping_args(p):
    p.add_argument("--tensors", required=True, type=Path, help="val-phase tensors file")
    p.add_argument("--stndt-ensemble", required=True, type=Path, help="ensemble.json of the STNDT members (ranking)")
    p.add_argument("--stndt-checkpoint", nargs=2, action="append", required=True, metavar=("MEMBER", "BEST_PT"),
                   help="an STNDT member's best.pt (give every member: the top --members by val co-bps are used)")
    p.add_argument("--ndt-ensemble", type=Path, help="ensemble.json of the NDT members (optional: no NDT rows without)")
    p.add_argument("--ndt-checkpoint", nargs=2, action="append", metavar=("MEMBER", "BEST_PT"),
                   help="an NDT member's best.pt (paired with the STNDT member of the same id, else of the same rank)")
    p.add_argument("--out", required=True, type=Path, help="tidy CSV")
    p.add_argument("--members", type=int, default=3, help="STNDT (and as many NDT) members analysed")
    p.add_argument("--random", type=int, default=2, help="random drop orders per member")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)


@command("neuron-dropping", "Fig. 5 analysis: drop most-attended vs random input neurons")(_dropping_args)
def _neuron_dropping(a):
    from stndt.analysis.neuron_dropping import MemberSet, neuron_dropping

    if (a.ndt_ensemble is None) != (a.ndt_checkpoint is None):
        raise ValueError("neuron-dropping: give both --ndt-ensemble and --ndt-checkpoint, or neither (STNDT only)")
    stndt = MemberSet.of(a.stndt_ensemble, _keyed(a.stndt_checkpoint, "--stndt-checkpoint"))
    ndt = MemberSet.of(a.ndt_ensemble, _keyed(a.ndt_checkpoint, "--ndt-checkpoint")) if a.ndt_ensemble else None
    neuron_dropping(a.tensors, stndt, a.out, ndt=ndt, n_members=a.members, n_random=a.random, seed=a.seed,
                    threads=a.threads)


FIGURES = ("fig2_member_metrics", "fig3_ensemble", "fig4_attention", "fig5_neuron_dropping", "training_curves")


def _figure_args(p):
    figs = p.add_subparsers(dest="name", required=True, metavar="FIGURE", help=", ".join(FIGURES))

    def figure(name: str, help: str, dataset: bool = True) -> argparse.ArgumentParser:
        f = figs.add_parser(name, help=help, description=help)
        f.add_argument("--out", required=True, type=Path, help="PNG (a PDF is written beside it)")
        if dataset:
            f.add_argument("--dataset", required=True, help="dataset id, named in the figure's title")
        return f

    f = figure("fig2_member_metrics", "Fig. 2: every member's metrics against its loss and each other", False)
    f.add_argument("--members-csv", nargs=2, action="append", required=True, metavar=("SET", "MEMBERS_CSV"),
                   help="a member set's members.csv (set: stndt, required, or a variant)")
    f.add_argument("--loss-column", default="masked nll", help="members.csv column on the x-axis of panel A")
    f = figure("fig3_ensemble", "Fig. 3: ensemble size curve, decoded trajectories, rates and PSTHs")
    f.add_argument("--curve", required=True, type=Path, help="ensemble_curve.csv of the STNDT members")
    f.add_argument("--ensemble", required=True, type=Path, help="ensemble.json of the STNDT members")
    f.add_argument("--rates", required=True, type=Path, help="the chosen ensemble's val rates (ensemble/rates_val.h5)")
    f.add_argument("--tensors", required=True, type=Path, help="val-phase tensors file")
    f.add_argument("--truth", type=Path, help="truth.h5 of a synthetic dataset (true rates dotted)")
    f = figure("fig4_attention", "Fig. 4: spatial attention of the best STNDT member")
    f.add_argument("--ensemble", required=True, type=Path, help="ensemble.json of the STNDT members (ranking)")
    f.add_argument("--tensors", required=True, type=Path, help="val-phase tensors file")
    f.add_argument("--checkpoint", nargs=2, action="append", required=True, metavar=("MEMBER", "BEST_PT"),
                   help="an STNDT member's best.pt (the best-ranked one is shown)")
    f = figure("fig5_neuron_dropping", "Fig. 5: metrics as attended vs random input neurons are dropped", False)
    f.add_argument("--table", required=True, type=Path, help="neuron_dropping.csv")
    f = figure("training_curves", "training loss and val co-bps of every member against epoch")
    f.add_argument("--train-log", nargs=3, action="append", required=True, metavar=("SET", "MEMBER", "TRAIN_LOG_CSV"),
                   help="a member's train_log.csv (set: stndt or a variant)")


@command("figure", "one of the paper's figures for one dataset (PNG + PDF)")(_figure_args)
def _figure(a):
    if a.name == "fig2_member_metrics":
        from stndt.figures.fig2_member_metrics import fig2_member_metrics

        fig2_member_metrics(_keyed(a.members_csv, "--members-csv"), a.out, loss_column=a.loss_column)
    elif a.name == "fig3_ensemble":
        from stndt.figures.fig3_ensemble import fig3_ensemble

        fig3_ensemble(a.curve, a.ensemble, a.rates, a.tensors, a.out, truth=a.truth, dataset=a.dataset)
    elif a.name == "fig4_attention":
        from stndt.figures.fig4_attention import fig4_attention

        fig4_attention(a.ensemble, a.tensors, _keyed(a.checkpoint, "--checkpoint"), a.out, dataset=a.dataset)
    elif a.name == "fig5_neuron_dropping":
        from stndt.figures.fig5_neuron_dropping import fig5_neuron_dropping

        fig5_neuron_dropping(a.table, a.out)
    else:
        from stndt.figures.training_curves import fig_training_curves

        fig_training_curves(_keyed(a.train_log, "--train-log"), a.out, dataset=a.dataset)


# ---------------------------------------------------------------- cost plan
def _plan_args(p):
    p.add_argument("--configfile", required=True, type=Path, help="the workflow config to plan")
    p.add_argument("--step-ms", type=float, help="milliseconds per training step (measured elsewhere)")
    p.add_argument("--measure", action="store_true", help="time a few real training steps per dataset and variant")
    p.add_argument("--device", default="cpu", help="device for --measure (cuda on a GPU node)")
    p.add_argument("--directory", type=Path, help="plan what is left of the run in this folder (default: a fresh run)")
    p.add_argument("--pack-speedup", type=float, default=None,
                   help="also project packed training: member-steps/s of a pack over one member alone, as "
                        "benchmarks/pack.py measured it on the target device for the config's training.pack")


@command("plan", "cost plan of a config: jobs per rule and projected device-hours of training")(_plan_args)
def _plan(a):
    import yaml

    from stndt.config import pipeline_config
    from stndt.plan import format_plan, job_counts, training_plan

    config = yaml.safe_load(a.configfile.read_text())
    cfg = pipeline_config(config, root=Path(__file__).resolve().parents[1])
    jobs = job_counts(a.configfile, a.directory)
    step_s = None if a.step_ms is None else a.step_ms / 1000
    rows = training_plan(cfg, step_s=step_s, measure_device=a.device if a.measure else None)
    device = (f"{a.device}, measured" if a.measure else f"{a.step_ms:g} ms/step given" if step_s else "no step time")
    bayes = any(d.search["method"] == "bayes" for d in cfg.datasets.values())
    print(format_plan(jobs, rows, device, bayes))
    if a.pack_speedup:
        import pandas as pd

        solo = pd.DataFrame(rows)
        if solo["hours min"].notna().all():
            print(f"\nPacked ({a.pack_speedup:g}x the member-steps per device-second of one member alone): "
                  f"{solo['hours min'].sum() / a.pack_speedup:,.0f} - {solo['hours max'].sum() / a.pack_speedup:,.0f} "
                  f"device-hours, vs {solo['hours min'].sum():,.0f} - {solo['hours max'].sum():,.0f} one member per device")


# ---------------------------------------------------------------- entry point
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stndt", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (run, add_args, help) in COMMANDS.items():
        p = sub.add_parser(name, help=help, description=help)
        add_args(p)
        p.set_defaults(run=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        args.run(args)
    except (ValueError, FileNotFoundError, OSError, RuntimeError) as e:
        logging.getLogger("stndt").error("%s", e)
        print(f"stndt {args.command}: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
