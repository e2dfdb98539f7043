# Stage 2: one training job per ensemble member (and per member of the NDT / no-contrast variants).


MEMBER_FILES = ["params.json", "best.pt", "rates_val.h5", "rates_test.h5", "train_log.csv"]
VARIANT_MEMBERS = ["ndt", "no_contrast"]  # trained with the same hyperparameter draws as the STNDT members


TRAIN_SHELL = (
    "{params.cli} train --val {input.val} --test {input.test} --out {params.out} --member {wildcards.member}"
    " --layout {params.layout} {params.space} --spaces {input.spaces} --overrides {params.overrides}"
    " --training {params.training} --variant {params.variant} --seed {params.seed} --threads {threads}"
    " > {log} 2>&1"
)
TRAIN_INPUT = dict(
    val=f"{R}/{{dataset}}/tensors/val.h5",
    test=f"{R}/{{dataset}}/tensors/test.h5",
    spaces=SEARCH_SPACES,
)


rule train_member:
    """Train one STNDT ensemble member: sampled hyperparameters, best checkpoint by val co-bps, rates."""
    input:
        **TRAIN_INPUT,
    output:
        [f"{R}/{{dataset}}/members/{{member}}/{f}" for f in MEMBER_FILES],
    params:
        out=lambda w: f"{R}/{w.dataset}/members/{w.member}",
        **train_params("stndt"),
    wildcard_constraints:
        member=r"m\d+",
    threads: resources_for("train", "threads", 1)
    resources:
        mem_mb=resources_for("train", "mem_mb", 4000),
        runtime=resources_for("train", "runtime", 60),
        gpu=resources_for("train", "gpu", 0),
    log:
        f"{R}/logs/train/{{dataset}}_{{member}}.log",
    conda:
        CONDA_ENV
    shell:
        TRAIN_SHELL


rule train_variant_member:
    """Train one member of a comparison variant (NDT, STNDT without contrastive loss)."""
    input:
        **TRAIN_INPUT,
    output:
        [f"{R}/{{dataset}}/variants/{{variant}}/members/{{member}}/{f}" for f in MEMBER_FILES],
    params:
        out=lambda w: f"{R}/{w.dataset}/variants/{w.variant}/members/{w.member}",
        **{k: v for k, v in train_params(None).items() if k != "variant"},
        variant=lambda w: w.variant,
    wildcard_constraints:
        member=r"m\d+",
        variant="|".join(VARIANT_MEMBERS),
    threads: resources_for("train", "threads", 1)
    resources:
        mem_mb=resources_for("train", "mem_mb", 4000),
        runtime=resources_for("train", "runtime", 60),
        gpu=resources_for("train", "gpu", 0),
    log:
        f"{R}/logs/train/{{dataset}}_{{variant}}_{{member}}.log",
    conda:
        CONDA_ENV
    shell:
        TRAIN_SHELL
