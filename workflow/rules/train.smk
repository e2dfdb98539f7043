# Stage 2: one training job per member of every model variant (STNDT, NDT, STNDT without contrastive).
# Each rule makes STNDT's member set ({dataset}/, no `variant` wildcard); its `_variant` twin makes the
# same files for another variant ({dataset}/variants/{variant}/) with the same command. With
# training.pack: 1 (the default) a job trains one member and writes its folder (`train`, or
# `train_candidates` when the dataset's ensemble ranks the reference's checkpoint pool); with packs a
# job trains a pack (`train_pack`) and `member` links each member's files out of it. The SLURM profile
# gives the six training rules the same resources.


rule train:
    """Train one member of a dataset and variant (training.pack: 1) as one job on one device: its
    resolved hyperparameters are a params value; it keeps its best checkpoint by val co-bps, writes its
    rates and is scored on val with nlb_tools in the same job."""
    input:
        val=f"{R}/{{dataset}}/tensors/val.h5",
        test=f"{R}/{{dataset}}/tensors/test.h5",
        truth=truth_input,
        wave=wave_file,
    output:
        [f"{R}/{STNDT_SET}/members/{{member}}/{f}" for f in MEMBER_FILES],
    log:
        f"{R}/logs/train/{STNDT_SET}/{{member}}.log",
    benchmark:
        f"{R}/benchmarks/train/{STNDT_SET}/{{member}}.tsv"
    wildcard_constraints:
        dataset=one_of(solo_datasets(BEST_COBPS)),
    conda:
        CONDA_ENV
    threads: TRAIN_RESOURCES["threads"]
    resources:
        mem_mb=TRAIN_RESOURCES["mem_mb"],
        runtime=TRAIN_RESOURCES["runtime"],
        gpu=TRAIN_RESOURCES["gpu"],
    params:
        hparams=pack_hparams,
        out=lambda w: member_dir(w.dataset, variant_in(w), w.member),
        truth=flag("truth"),
    shell:
        "python -m stndt.cli train --val {input.val:q} --test {input.test:q} {params.truth:q} --out {params.out:q}"
        " --params {params.hparams:q} --gpus {resources.gpu} --threads {threads} > {log:q} 2>&1"


use rule train as train_variant with:
    output:
        [f"{R}/{VARIANT_SET}/members/{{member}}/{f}" for f in MEMBER_FILES],
    log:
        f"{R}/logs/train/{VARIANT_SET}/{{member}}.log",
    benchmark:
        f"{R}/benchmarks/train/{VARIANT_SET}/{{member}}.tsv"


use rule train as train_candidates with:
    output:
        [
            f"{R}/{STNDT_SET}/members/{{member}}/{f}"
            for f in MEMBER_FILES + CANDIDATE_FILES
        ],
    wildcard_constraints:
        dataset=one_of(solo_datasets(CHECKPOINTS)),


use rule train_candidates as train_candidates_variant with:
    output:
        [
            f"{R}/{VARIANT_SET}/members/{{member}}/{f}"
            for f in MEMBER_FILES + CANDIDATE_FILES
        ],
    log:
        f"{R}/logs/train/{VARIANT_SET}/{{member}}.log",
    benchmark:
        f"{R}/benchmarks/train/{VARIANT_SET}/{{member}}.tsv"


rule train_pack:
    """Train one pack of members (training.pack > 1) of a dataset and variant as one job on one device,
    each as `train` would; `member` links their files into their member folders."""
    input:
        val=f"{R}/{{dataset}}/tensors/val.h5",
        test=f"{R}/{{dataset}}/tensors/test.h5",
        truth=truth_input,
        wave=wave_file,
    output:
        f"{R}/{STNDT_SET}/packs/{{pack}}/pack.json",
    log:
        f"{R}/logs/train/{STNDT_SET}/{{pack}}.log",
    benchmark:
        f"{R}/benchmarks/train/{STNDT_SET}/{{pack}}.tsv"
    wildcard_constraints:
        dataset=one_of(packed_datasets()),
    conda:
        CONDA_ENV
    threads: TRAIN_RESOURCES["threads"]
    resources:
        mem_mb=TRAIN_RESOURCES["mem_mb"],
        runtime=TRAIN_RESOURCES["runtime"],
        gpu=TRAIN_RESOURCES["gpu"],
    params:
        hparams=pack_hparams,
        out=pack_dirs,
        truth=flag("truth"),
    shell:
        "python -m stndt.cli train --val {input.val:q} --test {input.test:q} {params.truth:q} --out {params.out:q}"
        " --params {params.hparams:q} --gpus {resources.gpu} --threads {threads} --summary {output:q}"
        " > {log:q} 2>&1"


use rule train_pack as train_pack_variant with:
    output:
        f"{R}/{VARIANT_SET}/packs/{{pack}}/pack.json",
    log:
        f"{R}/logs/train/{VARIANT_SET}/{{pack}}.log",
    benchmark:
        f"{R}/benchmarks/train/{VARIANT_SET}/{{pack}}.tsv"


rule member:
    """A member's files, linked from its pack (member files are the DAG's nodes downstream)."""
    input:
        pack_json,
    output:
        [f"{R}/{STNDT_SET}/members/{{member}}/{f}" for f in MEMBER_FILES],
    log:
        f"{R}/logs/member/{STNDT_SET}/{{member}}.log",
    wildcard_constraints:
        dataset=one_of(packed_datasets()),
    params:
        src=lambda w, input: os.path.join(os.path.dirname(input[0]), w.member),
    run:
        link_files(params.src, output, log[0])


use rule member as member_variant with:
    output:
        [f"{R}/{VARIANT_SET}/members/{{member}}/{f}" for f in MEMBER_FILES],
    log:
        f"{R}/logs/member/{VARIANT_SET}/{{member}}.log",


rule member_candidates:
    """A member's extra ensemble candidates (evaluation.candidates: checkpoints), linked from its pack."""
    input:
        pack_json,
    output:
        [f"{R}/{STNDT_SET}/members/{{member}}/{f}" for f in CANDIDATE_FILES],
    log:
        f"{R}/logs/member/{STNDT_SET}/{{member}}_candidates.log",
    wildcard_constraints:
        dataset=one_of(packed_datasets()),
    params:
        src=lambda w, input: os.path.join(
            os.path.dirname(input[0]), w.member, CANDIDATES_DIR
        ),
    run:
        link_files(params.src, output, log[0])


use rule member_candidates as member_candidates_variant with:
    output:
        [f"{R}/{VARIANT_SET}/members/{{member}}/{f}" for f in CANDIDATE_FILES],
    log:
        f"{R}/logs/member/{VARIANT_SET}/{{member}}_candidates.log",


checkpoint propose_wave:
    """Bayesian search: propose the members of wave N from the finished members of waves 0..N-1 (Optuna,
    seeded; a deterministic function of the seed and their val co-bps). Seconds of work: run locally.
    """
    input:
        input_of(wave_args),
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
        members=args_of(wave_args),
        seed=CFG.seed,
        wave_size=lambda w: CFG.datasets[w.dataset].search["wave_size"],
    shell:
        "python -m stndt.cli propose-wave --space {params.space:q} {params.members:q} --seed {params.seed}"
        " --wave {wildcards.wave} --wave-size {params.wave_size} --out {output:q} > {log:q} 2>&1"
