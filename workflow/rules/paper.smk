# Stage 4: the paper's tables and figures, with Snakemake report captions.

PAPER = f"{R}/paper"


rule neuron_dropping:
    """Fig. 5 analysis: zero the inputs of the most-attended (layer-1 spatial attention) vs random held-in
    neurons and score STNDT and NDT members with nlb_tools."""
    input:
        lambda w: set_files(w.dataset, "ensemble.json")
        + member_files(w.dataset, "best.pt", ("stndt", "ndt")),
        f"{R}/{{dataset}}/tensors/val.h5",
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
        ds_dir=lambda w: f"{R}/{w.dataset}",
        seed=CFG.seed,
    shell:
        "OMP_NUM_THREADS={threads} python -m stndt.cli neuron-dropping --dataset-dir {params.ds_dir:q} --out {output:q}"
        " --seed {params.seed} --threads {threads} > {log:q} 2>&1"


# Each figure: what it plots (the files its command reads) and its report caption (report/NAME.rst).
FIGURE_INPUTS = {
    "fig2_member_metrics": lambda ds: set_files(ds, "members.csv"),
    "fig3_ensemble": lambda ds: [
        f"{R}/{ds}/ensemble_curve.csv",
        f"{R}/{ds}/ensemble.json",
        f"{R}/{ds}/ensemble/rates_val.h5",
        f"{R}/{ds}/tensors/val.h5",
    ]
    + truth_files(ds),
    "fig4_attention": lambda ds: [f"{R}/{ds}/ensemble.json", f"{R}/{ds}/tensors/val.h5"]
    + member_files(ds, "best.pt", ("stndt",)),
    "fig5_neuron_dropping": lambda ds: [f"{R}/{ds}/analysis/neuron_dropping.csv"],
    "training_curves": lambda ds: member_files(ds, "train_log.csv"),
}
FIGURE_NAMES = list(FIGURE_INPUTS)


for fig, fig_inputs in FIGURE_INPUTS.items():

    rule:
        name:
            f"figure_{fig}"
        input:
            lambda w, fig_inputs=fig_inputs: fig_inputs(w.dataset),
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
            ds_dir=lambda w: f"{R}/{w.dataset}",
        shell:
            "python -m stndt.cli figure {params.name} --dataset-dir {params.ds_dir:q} --out {output.png:q} > {log:q} 2>&1"


SCALING_CONFIGURED = any(
    CFG.datasets[d].layout in ("mc_maze_large", "mc_maze_medium", "mc_maze_small")
    for d in ALL_DATASETS
)
TABLES = ["table1_main", "table3_ablation"] + (
    ["table_scaling"] if SCALING_CONFIGURED else []
)


rule tables:
    """The paper's tables: ours (every configured dataset) beside the published numbers, CSV + Markdown."""
    input:
        baselines=[f"{R}/{ds}/baselines.csv" for ds in ALL_DATASETS],
        published=PUBLISHED,
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
        out_dir=f"{PAPER}/tables",
    shell:
        "python -m stndt.cli tables {params.datasets:q} {params.synthetic:q} --published {input.published:q}"
        " --out-dir {params.out_dir:q} > {log:q} 2>&1"
