# Helpers shared by the stage files (which datasets each stage applies to, per-dataset parameters).
import re
import json


def one_of(names):
    """Wildcard constraint matching exactly these dataset ids (or nothing when the list is empty)."""
    return "|".join(re.escape(n) for n in names) if names else "(?!x)x"


def ds_cfg(wildcards):
    return CFG.datasets[wildcards.dataset]


def is_synthetic(dataset):
    return CFG.datasets[dataset].source == "synthetic"


def as_json(obj):
    """Quote a JSON value for a shell command line."""
    return "'" + json.dumps(obj, sort_keys=True).replace("'", "'\\''") + "'"


def repo_file(path):
    """A config path relative to the working directory, or else to this repository (its shipped files)."""
    if os.path.isabs(path) or os.path.exists(path):
        return path
    return os.path.join(ROOT, path)


SEARCH_SPACES = repo_file(config.get("search_spaces", "config/search_spaces.yaml"))
PUBLISHED = repo_file("config/published_results.csv")


def resources_for(stage, key, default):
    return config.get("resources", {}).get(stage, {}).get(key, default)


def _stndt_command():
    """Each job runs one subcommand of the stndt command line with the environment's Python: the conda
    environment's under --sdm conda, otherwise the interpreter running Snakemake (so a virtual
    environment works without being activated)."""
    methods = {str(m).lower() for m in workflow.deployment_settings.deployment_method}
    python = "python" if any("conda" in m for m in methods) else sys.executable
    return f"{python} -m stndt.cli"


STNDT = _stndt_command()
CONDA_ENV = "../../envs/stndt.yaml"
ALL_DATASETS = list(CFG.datasets)
SYNTHETIC = CFG.by_source("synthetic")
PHASES = ["val", "test"]


wildcard_constraints:
    dataset=one_of(ALL_DATASETS),
    phase="val|test",


# ---- helpers of the stage files (kept here: Snakemake style keeps functions apart from rules)


def hidden_input(wildcards):
    """The complete hidden recording (test-phase targets), known for synthetic datasets only."""
    return [f"{R}/{wildcards.dataset}/truth/full.nwb"] if is_synthetic(wildcards.dataset) else []

def truth_files(dataset):
    return [f"{R}/{dataset}/truth.h5"] if is_synthetic(dataset) else []

def truth_input(wildcards):
    return truth_files(wildcards.dataset)

def data_outputs():
    out = []
    for ds in ALL_DATASETS:
        out += expand(f"{R}/{ds}/tensors/{{phase}}.h5", phase=PHASES)
        out.append(f"{R}/{ds}/figures/data_overview.png")
        if is_synthetic(ds):
            out.append(f"{R}/{ds}/truth.h5")
    return out

def member_ids(dataset):
    return [f"m{i:03d}" for i in range(CFG.datasets[dataset].members)]

def train_params(variant):
    return dict(
        cli=STNDT,
        layout=lambda w: ds_cfg(w).layout,
        space=lambda w: f"--space {ds_cfg(w).search_space}" if ds_cfg(w).search_space else "",
        overrides=as_json(config.get("search_overrides", {})),
        training=as_json(config.get("training", {})),
        seed=CFG.seed,
        variant=variant,
    )

def scored_phases(dataset):
    """Phases whose targets are known: val always, test for synthetic data (hidden targets)."""
    return PHASES if is_synthetic(dataset) else ["val"]

def set_dataset(wildcards):
    return wildcards.root.split("/")[0]

def set_members(wildcards):
    return [f"{R}/{wildcards.root}/members/{m}" for m in member_ids(set_dataset(wildcards))]

def baseline_inputs(wildcards):
    ds = wildcards.dataset
    roots = [f"{R}/{ds}"] + [f"{R}/{ds}/variants/{v}" for v in VARIANT_MEMBERS]
    out = [f"{r}/ensemble.json" for r in roots]
    subs = ["ensemble", "baselines/smoothing"] + [f"variants/{v}/ensemble" for v in VARIANT_MEMBERS]
    if is_synthetic(ds):
        subs.append("baselines/oracle")
    for p in scored_phases(ds):
        out += [f"{R}/{ds}/{s}/metrics_{p}.json" for s in subs]
        # the best single member of each set is scored like every member
        out += [f"{r}/members/{m}/metrics_{p}.json" for r in roots for m in member_ids(ds)]
    return out

def evaluation_outputs():
    out = []
    for ds in ALL_DATASETS:
        out += [f"{R}/{ds}/baselines.csv", f"{R}/{ds}/submission.h5", f"{R}/{ds}/ensemble_curve.csv"]
    return out

def set_files(ds, name):
    """A file of every member set of a dataset (STNDT and each variant)."""
    return [f"{R}/{ds}/{name}"] + [f"{R}/{ds}/variants/{v}/{name}" for v in VARIANT_MEMBERS]

def member_files(ds, name):
    roots = [f"{R}/{ds}"] + [f"{R}/{ds}/variants/{v}" for v in VARIANT_MEMBERS]
    return [f"{r}/members/{m}/{name}" for r in roots for m in member_ids(ds)]

def figure_outputs(name):
    """PNG (shown in the report with its caption) and the PDF written beside it."""
    return dict(
        png=report(
            f"{PAPER}/figures/{{dataset}}_{name}.png",
            caption=f"../report/{name}.rst",
            category="Figures",
            subcategory="{dataset}",
        ),
        pdf=f"{PAPER}/figures/{{dataset}}_{name}.pdf",
    )

def paper_outputs():
    out = data_outputs() + evaluation_outputs()
    out += [f"{PAPER}/tables/{t}.{ext}" for t in TABLES for ext in ("csv", "md")]
    out += [f"{PAPER}/figures/{ds}_{name}.{ext}" for ds in ALL_DATASETS for name in FIGURE_NAMES
            for ext in ("png", "pdf")]
    return out
