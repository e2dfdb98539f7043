# Stage 3: members table, ensembles, baselines and the EvalAI submission. Members score themselves in
# their training job; `score` scores what other jobs produce (ensembles, the smoothing baseline, members'
# test phase where its targets are known) as cluster jobs.


SCORED = "|".join(["baselines/smoothing", *map(scored_in_set, VARIANTS)])


# A member's metrics_val.json comes from its training job (directly, or via `member` from its pack); `score`
# makes only its metrics_test.json.
ruleorder:
    member
    > member_variant
    > train
    > train_variant
    > train_candidates
    > train_candidates_variant
    > score


rule score:
    """Score one rates file (an ensemble, a baseline, a member's test phase) with nlb_tools' evaluate."""
    input:
        rates=f"{R}/{{dataset}}/{{sub}}/rates_{{phase}}.h5",
        tensors=f"{R}/{{dataset}}/tensors/{{phase}}.h5",
        truth=truth_input,
    output:
        f"{R}/{{dataset}}/{{sub}}/metrics_{{phase}}.json",
    log:
        f"{R}/logs/score/{{dataset}}/{{sub}}_{{phase}}.log",
    wildcard_constraints:
        sub=SCORED,
    conda:
        CONDA_ENV
    threads: 1
    resources:
        runtime=30,
        mem_mb=4000,
    params:
        truth=flag("truth"),
    shell:
        "OMP_NUM_THREADS={threads} python -m stndt.cli score --rates {input.rates:q} --tensors {input.tensors:q}"
        " {params.truth:q} --out {output:q} > {log:q} 2>&1"


rule score_oracle:
    """Score the true rates of a synthetic dataset: the best any model can do on these trials."""
    input:
        truth=f"{R}/{{dataset}}/truth.h5",
        tensors=f"{R}/{{dataset}}/tensors/{{phase}}.h5",
    output:
        f"{R}/{{dataset}}/baselines/oracle/metrics_{{phase}}.json",
    log:
        f"{R}/logs/score/{{dataset}}/oracle_{{phase}}.log",
    wildcard_constraints:
        dataset=one_of(SYNTHETIC),
    conda:
        CONDA_ENV
    threads: 1
    resources:
        runtime=30,
        mem_mb=4000,
    shell:
        "OMP_NUM_THREADS={threads} python -m stndt.cli score --rates {input.truth:q} --rates-group {wildcards.phase}"
        " --tensors {input.tensors:q} --truth {input.truth:q} --out {output:q} > {log:q} 2>&1"


rule members_table:
    """One row per member of a member set: its hyperparameters and metrics."""
    input:
        input_of(members_table_args),
    output:
        f"{R}/{STNDT_SET}/members.csv",
    log:
        f"{R}/logs/members_table/{STNDT_SET}/members.log",
    conda:
        CONDA_ENV
    resources:
        runtime=5,
    params:
        args=args_of(members_table_args),
    shell:
        "python -m stndt.cli members-table {params.args:q} --out {output:q} > {log:q} 2>&1"


use rule members_table as members_table_variant with:
    output:
        f"{R}/{VARIANT_SET}/members.csv",
    log:
        f"{R}/logs/members_table/{VARIANT_SET}/members.log",


rule ensemble:
    """Rank a member set's candidates (each member's best val co-bps checkpoint, or with evaluation.candidates
    'checkpoints' also its extra best checkpoints) by val co-bps, average the top N for every N up to
    evaluation.max_size, choose N (plus an honest split)."""
    input:
        table=in_set("members.csv"),
        val=f"{R}/{{dataset}}/tensors/val.h5",
        test=f"{R}/{{dataset}}/tensors/test.h5",
        members=input_of(ensemble_member_args),
    output:
        json=f"{R}/{STNDT_SET}/ensemble.json",
        curve=f"{R}/{STNDT_SET}/ensemble_curve.csv",
        rates=[f"{R}/{STNDT_SET}/ensemble/rates_{p}.h5" for p in PHASES],
    log:
        f"{R}/logs/ensemble/{STNDT_SET}/ensemble.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        runtime=60,
        mem_mb=8000,
    params:
        members=args_of(ensemble_member_args),
        rates=lambda w, output: [
            x for p, f in zip(PHASES, output.rates) for x in ("--out-rates", p, f)
        ],
        seed=CFG.seed,
        choice=lambda w: ensemble_choice(w.dataset),
    shell:
        "OMP_NUM_THREADS={threads} python -m stndt.cli ensemble --table {input.table:q} {params.members:q}"
        " --val {input.val:q} --test {input.test:q} --out-json {output.json:q} --out-curve {output.curve:q}"
        " {params.rates:q} --seed {params.seed} {params.choice:q} > {log:q} 2>&1"


use rule ensemble as ensemble_variant with:
    output:
        json=f"{R}/{VARIANT_SET}/ensemble.json",
        curve=f"{R}/{VARIANT_SET}/ensemble_curve.csv",
        rates=[f"{R}/{VARIANT_SET}/ensemble/rates_{p}.h5" for p in PHASES],
    log:
        f"{R}/logs/ensemble/{VARIANT_SET}/ensemble.log",


rule smoothing:
    """The NLB spike-smoothing baseline (Gaussian smoothing + Poisson GLM read-out)."""
    input:
        f"{R}/{{dataset}}/tensors/{{phase}}.h5",
    output:
        f"{R}/{{dataset}}/baselines/smoothing/rates_{{phase}}.h5",
    log:
        f"{R}/logs/smoothing/{{dataset}}_{{phase}}.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        runtime=60,
        mem_mb=8000,
    shell:
        "OMP_NUM_THREADS={threads} python -m stndt.cli smoothing --tensors {input:q} --out {output:q} > {log:q} 2>&1"


rule submission:
    """EvalAI test-phase submission of the chosen STNDT ensemble, checked after writing."""
    input:
        rates=f"{R}/{STNDT_SET}/ensemble/rates_test.h5",
        test=f"{R}/{{dataset}}/tensors/test.h5",
    output:
        f"{R}/{{dataset}}/submission.h5",
    log:
        f"{R}/logs/submission/{{dataset}}.log",
    conda:
        CONDA_ENV
    resources:
        runtime=10,
    shell:
        "python -m stndt.cli submission --rates {input.rates:q} --test {input.test:q} --out {output:q} > {log:q} 2>&1"


rule paired_ablation:
    """STNDT against each variant on equal pools of the same draws, with paired bootstrap intervals."""
    input:
        members=input_of(paired_args),
        val=f"{R}/{{dataset}}/tensors/val.h5",
        test=f"{R}/{{dataset}}/tensors/test.h5",
        truth=truth_input,
    output:
        f"{R}/{{dataset}}/paired_ablation.csv",
    log:
        f"{R}/logs/paired_ablation/{{dataset}}.log",
    conda:
        CONDA_ENV
    threads: 1
    resources:
        runtime=30,
        mem_mb=8000,
    params:
        members=args_of(paired_args),
        truth=flag("truth"),
        seed=CFG.seed,
    shell:
        "OMP_NUM_THREADS={threads} python -m stndt.cli paired-ablation {params.members:q} --val {input.val:q}"
        " --test {input.test:q} {params.truth:q} --seed {params.seed} --out {output:q} > {log:q} 2>&1"


rule baselines:
    """Every method on the same trials: STNDT ensemble and best member, each variant, smoothing, oracle."""
    input:
        input_of(baseline_args),
    output:
        f"{R}/{{dataset}}/baselines.csv",
    log:
        f"{R}/logs/baselines/{{dataset}}.log",
    conda:
        CONDA_ENV
    resources:
        runtime=5,
    params:
        args=args_of(baseline_args),
    shell:
        "python -m stndt.cli baselines {params.args:q} --out {output:q} > {log:q} 2>&1"


rule evaluate:
    """Target: members scored, ensembles chosen, baselines run and the submission written."""
    input:
        evaluation_outputs(),
