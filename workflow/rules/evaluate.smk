# Stage 3: score every member, choose the ensembles, run the baselines, write the EvalAI submission.


SCORED = r"members/m\d+|variants/(ndt|no_contrast)/members/m\d+|ensemble|variants/(ndt|no_contrast)/ensemble|baselines/smoothing"
# A member set: the STNDT members of a dataset, or one variant's members.
MEMBER_SET = r"[^/]+(/variants/(ndt|no_contrast))?"


rule score:
    """Score one rates file (a member, an ensemble, a baseline) with nlb_tools' evaluate."""
    input:
        rates=f"{R}/{{dataset}}/{{sub}}/rates_{{phase}}.h5",
        tensors=f"{R}/{{dataset}}/tensors/{{phase}}.h5",
        truth=truth_input,
    output:
        f"{R}/{{dataset}}/{{sub}}/metrics_{{phase}}.json",
    wildcard_constraints:
        sub=SCORED,
    params:
        cli=STNDT,
        truth=lambda w, input: f"--truth {input.truth}" if input.truth else "",
    threads: 1
    resources:
        runtime=30,
        mem_mb=4000,
    log:
        f"{R}/logs/score/{{dataset}}/{{sub}}_{{phase}}.log",
    conda:
        CONDA_ENV
    shell:
        "OMP_NUM_THREADS={threads} {params.cli} score --rates {input.rates} --tensors {input.tensors} {params.truth}"
        " --out {output} > {log} 2>&1"


rule score_oracle:
    """Score the true rates of a synthetic dataset: the best any model can do on these trials."""
    input:
        truth=f"{R}/{{dataset}}/truth.h5",
        tensors=f"{R}/{{dataset}}/tensors/{{phase}}.h5",
    output:
        f"{R}/{{dataset}}/baselines/oracle/metrics_{{phase}}.json",
    wildcard_constraints:
        dataset=one_of(SYNTHETIC),
    threads: 1
    resources:
        runtime=30,
        mem_mb=4000,
    params:
        cli=STNDT,
    log:
        f"{R}/logs/score/{{dataset}}/oracle_{{phase}}.log",
    conda:
        CONDA_ENV
    shell:
        "OMP_NUM_THREADS={threads} {params.cli} score --rates {input.truth} --rates-group {wildcards.phase}"
        " --tensors {input.tensors} --truth {input.truth} --out {output} > {log} 2>&1"


rule members_table:
    """One row per member of a member set: its hyperparameters and metrics."""
    input:
        lambda w: [
            f"{m}/{f}"
            for m in set_members(w)
            for f in ["params.json"] + [f"metrics_{p}.json" for p in scored_phases(set_dataset(w))]
        ],
    output:
        f"{R}/{{root}}/members.csv",
    wildcard_constraints:
        root=MEMBER_SET,
    params:
        cli=STNDT,
        members=set_members,
    resources:
        runtime=5,
    log:
        f"{R}/logs/members_table/{{root}}.log",
    conda:
        CONDA_ENV
    shell:
        "{params.cli} members-table --members {params.members} --out {output} > {log} 2>&1"


rule ensemble:
    """Rank a member set by val co-bps, average the top N for every N, choose N (plus an honest split)."""
    input:
        table=f"{R}/{{root}}/members.csv",
        val=lambda w: f"{R}/{set_dataset(w)}/tensors/val.h5",
        test=lambda w: f"{R}/{set_dataset(w)}/tensors/test.h5",
        rates=lambda w: [f"{m}/rates_{p}.h5" for m in set_members(w) for p in PHASES],
    output:
        json=f"{R}/{{root}}/ensemble.json",
        curve=f"{R}/{{root}}/ensemble_curve.csv",
        rates=expand(f"{R}/{{{{root}}}}/ensemble/rates_{{phase}}.h5", phase=PHASES),
    wildcard_constraints:
        root=MEMBER_SET,
    params:
        cli=STNDT,
        members=set_members,
        out_dir=lambda w: f"{R}/{w.root}",
        seed=CFG.seed,
    threads: 1
    resources:
        runtime=60,
        mem_mb=8000,
    log:
        f"{R}/logs/ensemble/{{root}}.log",
    conda:
        CONDA_ENV
    shell:
        "OMP_NUM_THREADS={threads} {params.cli} ensemble --table {input.table} --members {params.members}"
        " --val {input.val} --test {input.test} --out-dir {params.out_dir} --seed {params.seed} > {log} 2>&1"


rule smoothing:
    """The NLB spike-smoothing baseline (Gaussian smoothing + Poisson GLM read-out)."""
    input:
        f"{R}/{{dataset}}/tensors/{{phase}}.h5",
    output:
        f"{R}/{{dataset}}/baselines/smoothing/rates_{{phase}}.h5",
    threads: 1
    resources:
        runtime=60,
        mem_mb=8000,
    params:
        cli=STNDT,
    log:
        f"{R}/logs/smoothing/{{dataset}}_{{phase}}.log",
    conda:
        CONDA_ENV
    shell:
        "OMP_NUM_THREADS={threads} {params.cli} smoothing --tensors {input} --out {output} > {log} 2>&1"


rule submission:
    """EvalAI test-phase submission of the chosen STNDT ensemble, checked after writing."""
    input:
        rates=f"{R}/{{dataset}}/ensemble/rates_test.h5",
        test=f"{R}/{{dataset}}/tensors/test.h5",
    output:
        f"{R}/{{dataset}}/submission.h5",
    resources:
        runtime=10,
    params:
        cli=STNDT,
    log:
        f"{R}/logs/submission/{{dataset}}.log",
    conda:
        CONDA_ENV
    shell:
        "{params.cli} submission --rates {input.rates} --test {input.test} --out {output} > {log} 2>&1"


rule baselines:
    """Every method on the same trials: STNDT ensemble and best member, NDT, no-contrast, smoothing, oracle."""
    input:
        baseline_inputs,
    output:
        f"{R}/{{dataset}}/baselines.csv",
    params:
        cli=STNDT,
        ds_dir=lambda w: f"{R}/{w.dataset}",
        phases=lambda w: " ".join(scored_phases(w.dataset)),
        synthetic=lambda w: "--synthetic" if is_synthetic(w.dataset) else "",
        variants=" ".join(VARIANT_MEMBERS),
    resources:
        runtime=5,
    log:
        f"{R}/logs/baselines/{{dataset}}.log",
    conda:
        CONDA_ENV
    shell:
        "{params.cli} baselines --dataset-dir {params.ds_dir} --phases {params.phases}"
        " --variants {params.variants} {params.synthetic} --out {output} > {log} 2>&1"


rule evaluate:
    """Target: members scored, ensembles chosen, baselines run and the submission written."""
    input:
        evaluation_outputs(),
