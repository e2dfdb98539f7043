# Stage 4: the paper's tables and figures, with Snakemake report captions.

PAPER = f"{R}/paper"


rule neuron_dropping:
    """Fig. 5 analysis: zero the inputs of the most-attended (layer-1 spatial attention) vs random held-in
    neurons and score STNDT and NDT members with nlb_tools."""
    input:
        files_in(dropping_args),
    output:
        f"{R}/{{dataset}}/analysis/neuron_dropping.csv",
    log:
        f"{R}/logs/neuron_dropping/{{dataset}}.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        runtime=60,
        mem_mb=4000,
    params:
        args=dropping_args,
        seed=CFG.seed,
    shell:
        "OMP_NUM_THREADS={threads} python -m stndt.cli neuron-dropping {params.args:q} --out {output:q}"
        " --seed {params.seed} --threads {threads} > {log:q} 2>&1"


# Each figure: the arguments of its command, i.e. every file it reads (report caption: report/NAME.rst).
FIGURE_ARGS = {
    "fig2_member_metrics": lambda ds: [
        x
        for v, p in dataset_sets(ds)
        for x in ("--members-csv", v, f"{R}/{ds}/{p}members.csv")
    ],
    "fig3_ensemble": lambda ds: [
        "--dataset",
        ds,
        "--curve",
        f"{R}/{ds}/ensemble_curve.csv",
        "--ensemble",
        f"{R}/{ds}/ensemble.json",
        "--rates",
        f"{R}/{ds}/ensemble/rates_val.h5",
        "--tensors",
        f"{R}/{ds}/tensors/val.h5",
    ]
    + [x for t in truth_files(ds) for x in ("--truth", t)],
    "fig4_attention": lambda ds: [
        "--dataset",
        ds,
        "--ensemble",
        f"{R}/{ds}/ensemble.json",
        "--tensors",
        f"{R}/{ds}/tensors/val.h5",
    ]
    + checkpoint_args("--checkpoint", ds, "stndt"),
    "fig5_neuron_dropping": lambda ds: [
        "--table",
        f"{R}/{ds}/analysis/neuron_dropping.csv",
    ],
    "training_curves": lambda ds: ["--dataset", ds]
    + [
        x
        for v, p in dataset_sets(ds)
        for m in member_ids(ds, v)
        for x in ("--train-log", v, m, f"{R}/{ds}/{p}members/{m}/train_log.csv")
    ],
}
FIGURE_NAMES = list(FIGURE_ARGS)


for fig, fig_args in FIGURE_ARGS.items():

    rule:
        name:
            f"figure_{fig}"
        input:
            files_in(lambda w, fig_args=fig_args: fig_args(w.dataset)),
        output:
            png=report(
                f"{PAPER}/figures/{{dataset}}_{fig}.png",
                caption=f"../report/{fig}.rst",
                category="Figures",
                subcategory="{dataset}",
            ),
            pdf=f"{PAPER}/figures/{{dataset}}_{fig}.pdf",
        log:
            f"{R}/logs/figures/{{dataset}}_{fig}.log",
        conda:
            CONDA_ENV
        resources:
            runtime=10,
        params:
            name=fig,
            args=lambda w, fig_args=fig_args: fig_args(w.dataset),
        shell:
            "python -m stndt.cli figure {params.name} {params.args:q} --out {output.png:q} > {log:q} 2>&1"


SCALING_CONFIGURED = any(
    CFG.datasets[d].layout in SCALING_DATASETS for d in ALL_DATASETS
)
TABLES = ["table1_main", "table3_ablation"] + (
    ["table_scaling"] if SCALING_CONFIGURED else []
)


# Results the user downloaded from EvalAI (datasets.<id>.evalai_result): rows "ours (EvalAI test)".
EVALAI_RESULTS = {
    ds: CFG.datasets[ds].evalai_result
    for ds in ALL_DATASETS
    if CFG.datasets[ds].evalai_result
}


rule tables:
    """The paper's tables: ours (every configured dataset, and imported EvalAI results) beside the
    published numbers, CSV + Markdown."""
    input:
        baselines=[f"{R}/{ds}/baselines.csv" for ds in ALL_DATASETS],
        paired=[
            f"{R}/{ds}/paired_ablation.csv" for ds in ALL_DATASETS if has_paired(ds)
        ],
        published=PUBLISHED,
        evalai=list(EVALAI_RESULTS.values()),
    output:
        [
            report(
                f"{PAPER}/tables/{t}.{ext}",
                caption=f"../report/{t}.rst",
                category="Tables",
            )
            for t in TABLES
            for ext in ("csv", "md")
        ],
    log:
        f"{R}/logs/tables.log",
    conda:
        CONDA_ENV
    resources:
        runtime=5,
    params:
        datasets=[
            x
            for ds in ALL_DATASETS
            for x in (
                "--dataset",
                ds,
                CFG.datasets[ds].layout,
                f"{R}/{ds}/baselines.csv",
            )
        ],
        synthetic=["--synthetic", *SYNTHETIC] if SYNTHETIC else [],
        paired=[
            x
            for ds in ALL_DATASETS
            if has_paired(ds)
            for x in ("--paired", ds, f"{R}/{ds}/paired_ablation.csv")
        ],
        evalai=[
            x
            for ds, path in EVALAI_RESULTS.items()
            for x in ("--evalai-result", ds, path)
        ]
        + (["--bin-width-ms", str(CFG.bin_width_ms)] if EVALAI_RESULTS else []),
        out_dir=lambda w, output: os.path.dirname(output[0]),
    shell:
        "python -m stndt.cli tables {params.datasets:q} {params.synthetic:q} {params.paired:q}"
        " {params.evalai:q} --published {input.published:q}"
        " --out-dir {params.out_dir:q} > {log:q} 2>&1"
