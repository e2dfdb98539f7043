# Stage 2: one training job per member of every model variant (STNDT, NDT, STNDT without contrastive).
# ONE rule for every variant: the `vdir` wildcard names the member set ('' for STNDT, variants/{v}/ for
# the others), so a profile's resources for `train` cover all training.


rule train:
    """Train one member (its resolved hyperparameters are a params value), keep the best checkpoint by val
    co-bps, write its rates and score them on val with nlb_tools in the same job."""
    input:
        val=f"{R}/{{dataset}}/tensors/val.h5",
        test=f"{R}/{{dataset}}/tensors/test.h5",
        truth=truth_input,
        wave=wave_file,
    output:
        [f"{R}/{{dataset}}/{{vdir}}members/{{member}}/{f}" for f in MEMBER_FILES],
    log:
        f"{R}/logs/train/{{dataset}}/{{vdir}}{{member}}.log",
    benchmark:
        f"{R}/benchmarks/train/{{dataset}}/{{vdir}}{{member}}.tsv"
    conda:
        CONDA_ENV
    threads: TRAIN_RESOURCES["threads"]
    resources:
        mem_mb=TRAIN_RESOURCES["mem_mb"],
        runtime=TRAIN_RESOURCES["runtime"],
        gpu=TRAIN_RESOURCES["gpu"],
    params:
        hparams=member_hparams,
        out=lambda w: f"{R}/{w.dataset}/{w.vdir}members/{w.member}",
        truth=flag("truth"),
    shell:
        "python -m stndt.cli train --val {input.val:q} --test {input.test:q} {params.truth:q} --out {params.out:q}"
        " --params {params.hparams:q} --gpus {resources.gpu} --threads {threads} > {log:q} 2>&1"


checkpoint propose_wave:
    """Bayesian search: propose the members of wave N from the finished members of waves 0..N-1 (Optuna,
    seeded; a deterministic function of the seed and their val co-bps). Seconds of work: run locally.
    """
    input:
        lambda w: [f"{m}/params.json" for m in earlier_members(w)],
    output:
        f"{R}/{{dataset}}/search/wave{{wave}}.json",
    log:
        f"{R}/logs/propose_wave/{{dataset}}/wave{{wave}}.log",
    wildcard_constraints:
        wave=r"\d\d\d+",
    conda:
        CONDA_ENV
    resources:
        runtime=10,
    params:
        space=lambda w: json.dumps(dataset_space(w.dataset), sort_keys=True),
        members=earlier_members,
        seed=CFG.seed,
        wave_size=lambda w: CFG.datasets[w.dataset].search["wave_size"],
    shell:
        "python -m stndt.cli propose-wave --space {params.space:q} --members {params.members:q} --seed {params.seed}"
        " --wave {wildcards.wave} --wave-size {params.wave_size} --out {output:q} > {log:q} 2>&1"
