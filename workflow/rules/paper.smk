# Stage 4: the paper's tables and figures, with Snakemake report captions.

PAPER = f"{R}/paper"
FIGURE_NAMES = ["fig2_member_metrics", "fig3_ensemble", "fig4_attention", "fig5_neuron_dropping", "training_curves"]


rule neuron_dropping:
    """Fig. 5 analysis: zero the inputs of the most-attended (layer-1 spatial attention) vs random held-in
    neurons and score STNDT and NDT members with nlb_tools."""
    input:
        lambda w: set_files(w.dataset, "ensemble.json") + member_files(w.dataset, "best.pt"),
        f"{R}/{{dataset}}/tensors/val.h5",
    output:
        f"{R}/{{dataset}}/analysis/neuron_dropping.csv",
    params:
        cli=STNDT,
        ds_dir=lambda w: f"{R}/{w.dataset}",
        seed=CFG.seed,
    threads: 1
    resources:
        runtime=60,
        mem_mb=4000,
    log:
        f"{R}/logs/neuron_dropping/{{dataset}}.log",
    conda:
        CONDA_ENV
    shell:
        "OMP_NUM_THREADS={threads} {params.cli} neuron-dropping --dataset-dir {params.ds_dir} --out {output}"
        " --seed {params.seed} --threads {threads} > {log} 2>&1"


FIGURE_INPUTS = {
    "fig2_member_metrics": lambda ds: set_files(ds, "members.csv"),
    "fig3_ensemble": lambda ds: [f"{R}/{ds}/ensemble_curve.csv", f"{R}/{ds}/ensemble.json",
                                 f"{R}/{ds}/ensemble/rates_val.h5", f"{R}/{ds}/tensors/val.h5"]
                                + truth_files(ds),
    "fig4_attention": lambda ds: [f"{R}/{ds}/ensemble.json", f"{R}/{ds}/tensors/val.h5"]
                                 + member_files(ds, "best.pt")[: len(member_ids(ds))],
    "fig5_neuron_dropping": lambda ds: [f"{R}/{ds}/analysis/neuron_dropping.csv"],
    "training_curves": lambda ds: member_files(ds, "train_log.csv"),
}


rule fig2_member_metrics:
    """Fig. 2: every member's metrics against the masked-modeling loss and against each other."""
    input:
        lambda w: FIGURE_INPUTS["fig2_member_metrics"](w.dataset),
    output:
        **figure_outputs("fig2_member_metrics"),
    params:
        cli=STNDT,
        ds_dir=lambda w: f"{R}/{w.dataset}",
    log:
        f"{R}/logs/figures/{{dataset}}_fig2_member_metrics.log",
    resources:
        runtime=10,
    conda:
        CONDA_ENV
    shell:
        "{params.cli} figure fig2_member_metrics --dataset-dir {params.ds_dir} --out {output.png} > {log} 2>&1"


rule fig3_ensemble:
    """Fig. 3: co-bps vs ensemble size, decoded hand trajectories, single-trial rates and PSTHs."""
    input:
        lambda w: FIGURE_INPUTS["fig3_ensemble"](w.dataset),
    output:
        **figure_outputs("fig3_ensemble"),
    params:
        cli=STNDT,
        ds_dir=lambda w: f"{R}/{w.dataset}",
    log:
        f"{R}/logs/figures/{{dataset}}_fig3_ensemble.log",
    resources:
        runtime=10,
    conda:
        CONDA_ENV
    shell:
        "{params.cli} figure fig3_ensemble --dataset-dir {params.ds_dir} --out {output.png} > {log} 2>&1"


rule fig4_attention:
    """Fig. 4: spatial attention matrices of the first and last layer for example trials."""
    input:
        lambda w: FIGURE_INPUTS["fig4_attention"](w.dataset),
    output:
        **figure_outputs("fig4_attention"),
    params:
        cli=STNDT,
        ds_dir=lambda w: f"{R}/{w.dataset}",
    log:
        f"{R}/logs/figures/{{dataset}}_fig4_attention.log",
    resources:
        runtime=10,
    conda:
        CONDA_ENV
    shell:
        "{params.cli} figure fig4_attention --dataset-dir {params.ds_dir} --out {output.png} > {log} 2>&1"


rule fig5_neuron_dropping:
    """Fig. 5: metrics as the most-attended vs random input neurons are dropped, STNDT and NDT."""
    input:
        lambda w: FIGURE_INPUTS["fig5_neuron_dropping"](w.dataset),
    output:
        **figure_outputs("fig5_neuron_dropping"),
    params:
        cli=STNDT,
        ds_dir=lambda w: f"{R}/{w.dataset}",
    log:
        f"{R}/logs/figures/{{dataset}}_fig5_neuron_dropping.log",
    resources:
        runtime=10,
    conda:
        CONDA_ENV
    shell:
        "{params.cli} figure fig5_neuron_dropping --dataset-dir {params.ds_dir} --out {output.png} > {log} 2>&1"


rule training_curves:
    """Training loss and val co-bps of every member against epoch."""
    input:
        lambda w: FIGURE_INPUTS["training_curves"](w.dataset),
    output:
        **figure_outputs("training_curves"),
    params:
        cli=STNDT,
        ds_dir=lambda w: f"{R}/{w.dataset}",
    log:
        f"{R}/logs/figures/{{dataset}}_training_curves.log",
    resources:
        runtime=10,
    conda:
        CONDA_ENV
    shell:
        "{params.cli} figure training_curves --dataset-dir {params.ds_dir} --out {output.png} > {log} 2>&1"


SCALING_CONFIGURED = any(CFG.datasets[d].layout in ("mc_maze_large", "mc_maze_medium", "mc_maze_small")
                         for d in ALL_DATASETS)
TABLES = ["table1_main", "table3_ablation"] + (["table_scaling"] if SCALING_CONFIGURED else [])


rule tables:
    """The paper's tables: ours (every configured dataset) beside the published numbers, CSV + Markdown."""
    input:
        baselines=[f"{R}/{ds}/baselines.csv" for ds in ALL_DATASETS],
        published=PUBLISHED,
    output:
        [
            report(f"{PAPER}/tables/{t}.{ext}", caption=f"../report/{t}.rst", category="Tables")
            for t in TABLES
            for ext in ("csv", "md")
        ],
    params:
        cli=STNDT,
        out_dir=lambda w, output: os.path.dirname(output[0]),
        datasets=" ".join(f"--dataset {ds} {CFG.datasets[ds].layout} {R}/{ds}/baselines.csv" for ds in ALL_DATASETS),
        synthetic=f"--synthetic {' '.join(SYNTHETIC)}" if SYNTHETIC else "",
    log:
        f"{R}/logs/tables.log",
    resources:
        runtime=5,
    conda:
        CONDA_ENV
    shell:
        "{params.cli} tables {params.datasets} {params.synthetic} --published {input.published}"
        " --out-dir {params.out_dir} > {log} 2>&1"

