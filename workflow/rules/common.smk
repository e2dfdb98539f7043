# Helpers shared by the rule files: which datasets each rule applies to, and per-dataset parameters.
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
    """Every rule is one subcommand of the stndt command line, run by the environment's Python: the
    conda environment's under --sdm conda, otherwise the interpreter running Snakemake (so a virtual
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
