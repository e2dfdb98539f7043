# Stage 4: the paper's tables and figures, with Snakemake report captions.

PAPER = f"{R}/paper"


rule neuron_dropping:
    """Fig. 5 analysis: zero the inputs of the most-attended (layer-1 spatial attention) vs random held-in
    neurons and score STNDT and NDT members with nlb_tools."""
    input:
        input_of(dropping_args),
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
        args=args_of(dropping_args),
        seed=CFG.seed,
    shell:
        "OMP_NUM_THREADS={threads} python -m stndt.cli neuron-dropping {params.args:q} --out {output:q}"
        " --seed {params.seed} --threads {threads} > {log:q} 2>&1"


# Each figure: the arguments of its command, every file it reads marked (common.smk; report caption:
# report/NAME.rst).
FIGURE_ARGS = {
    "fig2_member_metrics": fig2_args,
    "fig3_ensemble": fig3_args,
    "fig4_attention": fig4_args,
    "fig5_neuron_dropping": fig5_args,
    "training_curves": training_curves_args,
}
if tuple(FIGURE_ARGS) != FIGURES:
    raise WorkflowError(
        f"paper.smk: FIGURE_ARGS has {list(FIGURE_ARGS)}, stndt.figures.FIGURES {list(FIGURES)}"
    )
FIGURE_NAMES = list(FIGURES)


for fig, fig_args in FIGURE_ARGS.items():

    rule:
        name:
            f"figure_{fig}"
        input:
            lambda w, fig_args=fig_args: fig_args(w.dataset).files,
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
            args=lambda w, fig_args=fig_args: fig_args(w.dataset).args,
        shell:
            "python -m stndt.cli figure {params.name} {params.args:q} --out {output.png:q} > {log:q} 2>&1"


SCALING_CONFIGURED = any(
    CFG.datasets[d].layout in SCALING_DATASETS for d in ALL_DATASETS
)
TABLES = [MAIN_TABLE, ABLATION_TABLE] + ([SCALING_TABLE] if SCALING_CONFIGURED else [])


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
        # the declared outputs, csv then md per table in TABLES order
        out=lambda w, output: [
            x
            for t, csv, md in zip(TABLES, output[::2], output[1::2])
            for x in ("--out", t, csv, md)
        ],
    shell:
        "python -m stndt.cli tables {params.datasets:q} {params.synthetic:q} {params.paired:q}"
        " {params.evalai:q} --published {input.published:q} {params.out:q} > {log:q} 2>&1"
