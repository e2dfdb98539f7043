# Stage 1: raw NWB files (DANDI download | synthetic generator | user's files) -> nlb_tools tensors.


rule download:
    """Fetch an NLB dataset's train and test NWB files from DANDI (cached, resumable, size-checked)."""
    output:
        directory(f"{R}/{{dataset}}/raw"),
    wildcard_constraints:
        dataset=one_of(CFG.by_source("dandi")),
    params:
        cli=STNDT,
        layout=lambda w: ds_cfg(w).layout,
        version=lambda w: ds_cfg(w).dandi_version or "",
        cache=f"{R}/.dandi_cache",
    log:
        f"{R}/logs/download/{{dataset}}.log",
    resources:
        runtime=240,
        mem_mb=2000,
    retries: 2
    conda:
        CONDA_ENV
    shell:
        "{params.cli} download --layout {params.layout} --out {output} --cache {params.cache}"
        " --version '{params.version}' > {log} 2>&1"


rule synthesize:
    """Generate a synthetic dataset in the exact NLB NWB layout, with known true firing rates."""
    output:
        raw=directory(f"{R}/{{dataset}}/raw"),
        hidden=f"{R}/{{dataset}}/truth/full.nwb",
    wildcard_constraints:
        dataset=one_of(SYNTHETIC),
    params:
        cli=STNDT,
        layout=lambda w: ds_cfg(w).layout,
        synthetic=lambda w: as_json(ds_cfg(w).synthetic),
        seed=CFG.seed,
    log:
        f"{R}/logs/synthesize/{{dataset}}.log",
    resources:
        runtime=30,
        mem_mb=4000,
    conda:
        CONDA_ENV
    shell:
        "{params.cli} synthesize --layout {params.layout} --raw {output.raw} --hidden {output.hidden}"
        " --params {params.synthetic} --seed {params.seed} > {log} 2>&1"


rule link_local:
    """Use a user's own NLB-format NWB files (linked, never copied or modified)."""
    output:
        directory(f"{R}/{{dataset}}/raw"),
    wildcard_constraints:
        dataset=one_of(CFG.by_source("local")),
    params:
        cli=STNDT,
        src=lambda w: ds_cfg(w).path,
        layout=lambda w: ds_cfg(w).layout,
    log:
        f"{R}/logs/link_local/{{dataset}}.log",
    resources:
        runtime=5,
    conda:
        CONDA_ENV
    shell:
        "{params.cli} link-local --src {params.src} --layout {params.layout} --out {output} > {log} 2>&1"


rule tensors:
    """Bin with nlb_tools and build the train/eval input and target tensors of one phase."""
    input:
        raw=f"{R}/{{dataset}}/raw",
        hidden=hidden_input,
    output:
        f"{R}/{{dataset}}/tensors/{{phase}}.h5",
    params:
        cli=STNDT,
        layout=lambda w: ds_cfg(w).layout,
        bw=CFG.bin_width_ms,
        hidden=lambda w, input: f"--hidden {input.hidden}" if input.hidden else "",
    log:
        f"{R}/logs/tensors/{{dataset}}_{{phase}}.log",
    resources:
        runtime=60,
        mem_mb=8000,
    conda:
        CONDA_ENV
    shell:
        "{params.cli} tensors --raw {input.raw} --layout {params.layout} --phase {wildcards.phase}"
        " --bin-width {params.bw} {params.hidden} --out {output} > {log} 2>&1"


rule truth:
    """True firing rates of a synthetic dataset in the submission format, windowed by nlb_tools."""
    input:
        f"{R}/{{dataset}}/truth/full.nwb",
    output:
        f"{R}/{{dataset}}/truth.h5",
    wildcard_constraints:
        dataset=one_of(SYNTHETIC),
    params:
        cli=STNDT,
        layout=lambda w: ds_cfg(w).layout,
        bw=CFG.bin_width_ms,
    log:
        f"{R}/logs/truth/{{dataset}}.log",
    resources:
        runtime=30,
        mem_mb=8000,
    conda:
        CONDA_ENV
    shell:
        "{params.cli} truth --hidden {input} --layout {params.layout} --bin-width {params.bw} --out {output} > {log} 2>&1"


rule data_overview:
    """Figure: spike rasters and PSTHs of a few neurons (true rates overlaid for synthetic data)."""
    input:
        tensors=f"{R}/{{dataset}}/tensors/val.h5",
        truth=truth_input,
    output:
        report(
            f"{R}/{{dataset}}/figures/data_overview.png",
            caption="../report/data_overview.rst",
            category="Data",
            subcategory="{dataset}",
        ),
    params:
        cli=STNDT,
        truth=lambda w, input: f"--truth {input.truth}" if input.truth else "",
    log:
        f"{R}/logs/data_overview/{{dataset}}.log",
    resources:
        runtime=10,
    conda:
        CONDA_ENV
    shell:
        "{params.cli} overview --tensors {input.tensors} {params.truth} --out {output} > {log} 2>&1"


rule data:
    """Target: tensors of every configured dataset for both phases (+ truth and overview figure)."""
    input:
        data_outputs(),
