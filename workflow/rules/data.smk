# Stage 1: raw NWB files (DANDI download | synthetic generator | user's files) -> nlb_tools tensors.


rule download:
    """Fetch an NLB dataset's train and test NWB files from DANDI (cached, resumable, digest-checked).
    A local rule: compute nodes of many clusters have no internet."""
    output:
        directory(f"{R}/{{dataset}}/raw"),
    log:
        f"{R}/logs/download/{{dataset}}.log",
    wildcard_constraints:
        dataset=one_of(CFG.by_source("dandi")),
    retries: 2
    conda:
        CONDA_ENV
    resources:
        runtime=240,
        mem_mb=2000,
    params:
        layout=lambda w: ds_cfg(w).layout,
        version=lambda w: ds_cfg(w).dandi_version or "",
        cache=f"{R}/.dandi_cache",
    shell:
        "python -m stndt.cli download --layout {params.layout:q} --out {output:q} --cache {params.cache:q}"
        " --version {params.version:q} > {log:q} 2>&1"


rule synthesize:
    """Generate a synthetic dataset in the exact NLB NWB layout, with known true firing rates."""
    output:
        raw=directory(f"{R}/{{dataset}}/raw"),
        hidden=f"{R}/{{dataset}}/truth/full.nwb",
    log:
        f"{R}/logs/synthesize/{{dataset}}.log",
    wildcard_constraints:
        dataset=one_of(SYNTHETIC),
    conda:
        CONDA_ENV
    resources:
        runtime=30,
        mem_mb=4000,
    params:
        layout=lambda w: ds_cfg(w).layout,
        synthetic=lambda w: json.dumps(ds_cfg(w).synthetic, sort_keys=True),
        seed=CFG.seed,
    shell:
        "python -m stndt.cli synthesize --layout {params.layout:q} --raw {output.raw:q} --hidden {output.hidden:q}"
        " --params {params.synthetic:q} --seed {params.seed} > {log:q} 2>&1"


rule link_local:
    """Use a user's own NLB-format NWB files (checked, then linked; never copied or modified)."""
    input:
        local_nwb_files,
    output:
        directory(f"{R}/{{dataset}}/raw"),
    log:
        f"{R}/logs/link_local/{{dataset}}.log",
    wildcard_constraints:
        dataset=one_of(CFG.by_source("local")),
    conda:
        CONDA_ENV
    resources:
        runtime=5,
    params:
        src=lambda w: ds_cfg(w).path,
        layout=lambda w: ds_cfg(w).layout,
    shell:
        "python -m stndt.cli link-local --src {params.src:q} --layout {params.layout:q} --out {output:q} > {log:q} 2>&1"


rule tensors:
    """Bin with nlb_tools and build the train/eval input and target tensors of one phase."""
    input:
        raw=f"{R}/{{dataset}}/raw",
        hidden=hidden_input,
    output:
        f"{R}/{{dataset}}/tensors/{{phase}}.h5",
    log:
        f"{R}/logs/tensors/{{dataset}}_{{phase}}.log",
    conda:
        CONDA_ENV
    resources:
        runtime=60,
        mem_mb=8000,
    params:
        layout=lambda w: ds_cfg(w).layout,
        bw=CFG.bin_width_ms,
        hidden=flag("hidden"),
        holdout=lambda w: ds_cfg(w).holdout,
        seed=CFG.seed,
    shell:
        "python -m stndt.cli tensors --raw {input.raw:q} --layout {params.layout:q} --phase {wildcards.phase}"
        " --bin-width {params.bw} {params.hidden:q} --holdout {params.holdout} --seed {params.seed}"
        " --out {output:q} > {log:q} 2>&1"


rule truth:
    """True firing rates of a synthetic dataset in the submission format, windowed by nlb_tools."""
    input:
        f"{R}/{{dataset}}/truth/full.nwb",
    output:
        f"{R}/{{dataset}}/truth.h5",
    log:
        f"{R}/logs/truth/{{dataset}}.log",
    wildcard_constraints:
        dataset=one_of(SYNTHETIC),
    conda:
        CONDA_ENV
    resources:
        runtime=30,
        mem_mb=8000,
    params:
        layout=lambda w: ds_cfg(w).layout,
        bw=CFG.bin_width_ms,
    shell:
        "python -m stndt.cli truth --hidden {input:q} --layout {params.layout:q} --bin-width {params.bw}"
        " --out {output:q} > {log:q} 2>&1"


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
    log:
        f"{R}/logs/data_overview/{{dataset}}.log",
    conda:
        CONDA_ENV
    resources:
        runtime=10,
    params:
        truth=flag("truth"),
    shell:
        "python -m stndt.cli overview --tensors {input.tensors:q} {params.truth:q} --out {output:q} > {log:q} 2>&1"


rule data:
    """Target: tensors of every configured dataset for both phases (+ truth and overview figure)."""
    input:
        data_outputs(),
