# Stage 5 (opt-in, never part of the default target): submit each real dataset's submission.h5 to the NLB'21
# challenge on EvalAI, the only scorer of the hidden test split. Ask for it by target:
#   EVALAI_TOKEN=... snakemake --cores 1 evalai_submit       (every submittable dataset)
#   EVALAI_TOKEN=... snakemake --cores 1 results/<dataset>/evalai/submitted.json
# The token is read by the job from its environment: it is in no rule's params, log or output.
# Importing the scored result back into the tables: `datasets.<id>.evalai_result` (rule `tables`).
# Its input and argument functions are in common.smk (evalai_inputs, evalai_args, evalai_targets).


rule evalai_submission:
    """Submit one dataset's submission.h5 to its EvalAI phase; submitted.json records the submission id."""
    input:
        unpack(evalai_inputs),
    output:
        f"{R}/{{dataset}}/evalai/submitted.json",
    log:
        f"{R}/logs/evalai/{{dataset}}.log",
    conda:
        CONDA_ENV
    resources:
        runtime=30,
    params:
        args=evalai_args,
    # the log is also shown on the terminal: a missing EVALAI_TOKEN or EvalAI's refusal is read at once
    shell:
        "python -m stndt.cli evalai-submit {params.args:q} --submission {input.submission:q}"
        " --test {input.test:q} --out {output:q} 2>&1 | tee {log:q}"


rule evalai_submit:
    """Target (opt-in): submit every dataset that EvalAI can score to the NLB'21 challenge."""
    input:
        evalai_targets,


# The uploads need the internet, which compute nodes often lack.
localrules:
    evalai_submission,
    evalai_submit,
