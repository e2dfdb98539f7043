"""Commands of the paper stage and the cost plan: tables, neuron dropping, figures, plan."""

from __future__ import annotations

import argparse
from pathlib import Path

from stndt.commands import command, keyed
from stndt.datasets import SUPPORTED_BIN_WIDTHS_MS
from stndt.figures import FIGURES
from stndt.members import MASKED_NLL


def _tables_args(p):
    p.add_argument(
        "--dataset",
        nargs=3,
        action="append",
        required=True,
        metavar=("ID", "LAYOUT", "BASELINES_CSV"),
        help="one per dataset: its id, NLB layout and baselines.csv",
    )
    p.add_argument("--synthetic", nargs="*", default=[], help="ids of synthetic datasets (no published rows)")
    p.add_argument(
        "--paired",
        nargs=2,
        action="append",
        metavar=("ID", "PAIRED_CSV"),
        help="a dataset's paired_ablation.csv (Table 3/4 on equal pools)",
    )
    p.add_argument("--published", type=Path, default=Path("config/published_results.csv"))
    p.add_argument(
        "--evalai-result",
        nargs=2,
        action="append",
        metavar=("ID", "RESULT_JSON"),
        help="a dataset's result downloaded from EvalAI (NLB hidden test split): rows 'ours (EvalAI test)'",
    )
    p.add_argument(
        "--bin-width-ms",
        type=int,
        choices=SUPPORTED_BIN_WIDTHS_MS,
        help="the pipeline's bin width (required with --evalai-result: a result of another is refused)",
    )
    p.add_argument(
        "--out",
        nargs=3,
        action="append",
        required=True,
        metavar=("TABLE", "CSV", "MD"),
        help="a table to write (table1_main, table3_ablation, table_scaling) and its two files",
    )


@command("tables", "the paper's tables (ours beside the published numbers), CSV + Markdown")(_tables_args)
def _tables(a):
    import pandas as pd

    from stndt.paper import ABLATION_TABLE, MAIN_TABLE, SCALING_TABLE, TABLE_TITLES
    from stndt.paper.tables import (
        PAIRED_NOTE,
        ablation_table,
        load_published,
        main_table,
        scaling_table,
        write_table,
    )
    from stndt.paper.tables import READING_NOTE as cite

    outs = {name: (csv, md) for name, csv, md in a.out}
    unknown = sorted(set(outs) - set(TABLE_TITLES))
    if unknown:
        raise ValueError(f"tables: --out {', '.join(unknown)}: no such table (one of {', '.join(TABLE_TITLES)})")
    results = {ds: (layout, pd.read_csv(path)) for ds, layout, path in a.dataset}
    evalai = {}
    if a.evalai_result:
        from stndt.evaluate.evalai import load_result

        if a.bin_width_ms is None:
            raise ValueError("tables: --evalai-result needs --bin-width-ms (the pipeline's bin_width_ms)")
        for ds, path in keyed([[ds, p] for ds, p in a.evalai_result], "--evalai-result").items():
            if ds not in results:
                raise ValueError(f"tables: --evalai-result {ds}: no --dataset {ds}")
            evalai[ds] = load_result(path, results[ds][0], a.bin_width_ms, dataset=ds)
    main = main_table(results, load_published(a.published), set(a.synthetic), evalai)
    paired = {ds: pd.read_csv(path) for ds, path in a.paired or []}
    tables = {
        MAIN_TABLE: (main, cite),
        ABLATION_TABLE: (ablation_table(main, paired), f"{cite} {PAIRED_NOTE}"),
        SCALING_TABLE: (scaling_table(main), cite),
    }
    for name, (csv, md) in outs.items():
        table, note = tables[name]
        write_table(table, csv, md, TABLE_TITLES[name], note)


def _dropping_args(p):
    p.add_argument("--tensors", required=True, type=Path, help="val-phase tensors file")
    p.add_argument("--stndt-ensemble", required=True, type=Path, help="ensemble.json of the STNDT members (ranking)")
    p.add_argument(
        "--stndt-checkpoint",
        nargs=2,
        action="append",
        required=True,
        metavar=("MEMBER", "BEST_PT"),
        help="an STNDT member's best.pt (give every member: the top --members by val co-bps are used)",
    )
    p.add_argument("--ndt-ensemble", type=Path, help="ensemble.json of the NDT members (optional: no NDT rows without)")
    p.add_argument(
        "--ndt-checkpoint",
        nargs=2,
        action="append",
        metavar=("MEMBER", "BEST_PT"),
        help="an NDT member's best.pt (paired with the STNDT member of the same id, else of the same rank)",
    )
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
    stndt = MemberSet.of(a.stndt_ensemble, keyed(a.stndt_checkpoint, "--stndt-checkpoint"))
    ndt = MemberSet.of(a.ndt_ensemble, keyed(a.ndt_checkpoint, "--ndt-checkpoint")) if a.ndt_ensemble else None
    neuron_dropping(
        a.tensors, stndt, a.out, ndt=ndt, n_members=a.members, n_random=a.random, seed=a.seed, threads=a.threads
    )


def _figure_args(p):
    figs = p.add_subparsers(dest="name", required=True, metavar="FIGURE", help=", ".join(FIGURES))

    def figure(name: str, help: str, dataset: bool = True) -> argparse.ArgumentParser:
        f = figs.add_parser(name, help=help, description=help)
        f.add_argument("--out", required=True, type=Path, help="PNG (a PDF is written beside it)")
        if dataset:
            f.add_argument("--dataset", required=True, help="dataset id, named in the figure's title")
        return f

    f = figure("fig2_member_metrics", "Fig. 2: every member's metrics against its loss and each other", False)
    f.add_argument(
        "--members-csv",
        nargs=2,
        action="append",
        required=True,
        metavar=("SET", "MEMBERS_CSV"),
        help="a member set's members.csv (set: stndt, required, or a variant)",
    )
    f.add_argument("--loss-column", default=MASKED_NLL, help="members.csv column on the x-axis of panel A")
    f = figure("fig3_ensemble", "Fig. 3: ensemble size curve, decoded trajectories, rates and PSTHs")
    f.add_argument("--curve", required=True, type=Path, help="ensemble_curve.csv of the STNDT members")
    f.add_argument("--ensemble", required=True, type=Path, help="ensemble.json of the STNDT members")
    f.add_argument("--rates", required=True, type=Path, help="the chosen ensemble's val rates (ensemble/rates_val.h5)")
    f.add_argument("--tensors", required=True, type=Path, help="val-phase tensors file")
    f.add_argument("--truth", type=Path, help="truth.h5 of a synthetic dataset (true rates dotted)")
    f = figure("fig4_attention", "Fig. 4: spatial attention of the best STNDT member")
    f.add_argument("--ensemble", required=True, type=Path, help="ensemble.json of the STNDT members (ranking)")
    f.add_argument("--tensors", required=True, type=Path, help="val-phase tensors file")
    f.add_argument(
        "--checkpoint",
        nargs=2,
        action="append",
        required=True,
        metavar=("MEMBER", "BEST_PT"),
        help="an STNDT member's best.pt (the best-ranked one is shown)",
    )
    f = figure("fig5_neuron_dropping", "Fig. 5: metrics as attended vs random input neurons are dropped", False)
    f.add_argument("--table", required=True, type=Path, help="neuron_dropping.csv")
    f = figure("training_curves", "training loss and val co-bps of every member against epoch")
    f.add_argument(
        "--train-log",
        nargs=3,
        action="append",
        required=True,
        metavar=("SET", "MEMBER", "TRAIN_LOG_CSV"),
        help="a member's train_log.csv (set: stndt or a variant)",
    )
    f.add_argument(
        "--params",
        nargs=3,
        action="append",
        default=[],
        metavar=("SET", "MEMBER", "PARAMS_JSON"),
        help="a member's params.json: marks where its stopping rule fired, and dashes it if it stopped at the cap",
    )


@command("figure", "one of the paper's figures for one dataset (PNG + PDF)")(_figure_args)
def _figure(a):
    if a.name == "fig2_member_metrics":
        from stndt.figures.fig2_member_metrics import fig2_member_metrics

        fig2_member_metrics(keyed(a.members_csv, "--members-csv"), a.out, loss_column=a.loss_column)
    elif a.name == "fig3_ensemble":
        from stndt.figures.fig3_ensemble import fig3_ensemble

        fig3_ensemble(a.curve, a.ensemble, a.rates, a.tensors, a.out, truth=a.truth, dataset=a.dataset)
    elif a.name == "fig4_attention":
        from stndt.figures.fig4_attention import fig4_attention

        fig4_attention(a.ensemble, a.tensors, keyed(a.checkpoint, "--checkpoint"), a.out, dataset=a.dataset)
    elif a.name == "fig5_neuron_dropping":
        from stndt.figures.fig5_neuron_dropping import fig5_neuron_dropping

        fig5_neuron_dropping(a.table, a.out)
    else:
        from stndt.figures.training_curves import fig_training_curves

        fig_training_curves(
            keyed(a.train_log, "--train-log"), a.out, dataset=a.dataset, params=keyed(a.params, "--params")
        )


# ---------------------------------------------------------------- cost plan
def _plan_args(p):
    p.add_argument("--configfile", required=True, type=Path, help="the workflow config to plan")
    p.add_argument("--step-ms", type=float, help="milliseconds per training step (measured elsewhere)")
    p.add_argument("--measure", action="store_true", help="time a few real training steps per dataset and variant")
    p.add_argument("--device", default="cpu", help="device for --measure (cuda on a GPU node)")
    p.add_argument("--directory", type=Path, help="plan what is left of the run in this folder (default: a fresh run)")
    p.add_argument(
        "--pack-speedup",
        type=float,
        default=None,
        help="also project packed training: member-steps/s of a pack over one member alone, as "
        "benchmarks/pack.py measured it on the target device for the config's training.pack",
    )


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
    device = f"{a.device}, measured" if a.measure else f"{a.step_ms:g} ms/step given" if step_s else "no step time"
    bayes = any(d.search["method"] == "bayes" for d in cfg.datasets.values())
    print(format_plan(jobs, rows, device, bayes))
    if a.pack_speedup:
        import pandas as pd

        solo = pd.DataFrame(rows)
        if solo["hours min"].notna().all():
            print(
                f"\nPacked ({a.pack_speedup:g}x the member-steps per device-second of one member alone): "
                f"{solo['hours min'].sum() / a.pack_speedup:,.0f} - {solo['hours max'].sum() / a.pack_speedup:,.0f} "
                f"device-hours, vs {solo['hours min'].sum():,.0f} - {solo['hours max'].sum():,.0f} "
                "one member per device"
            )
