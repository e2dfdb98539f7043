"""The SHIPPED SLURM profile with the SHIPPED paper config, as a user runs it: every job lands where it
must. Planned by Snakemake itself (a dry run through the SLURM executor plugin, nothing is submitted)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, snakemake

GPU_PARTITION, CPU_PARTITION = "gpu_part", "cpu_part"
# The training rules (one member per job, the same with the checkpoint pool, a pack), each with its
# `_variant` twin for the member sets of the other variants: the GPU work.
TRAIN_RULES = {r + twin for r in ("train", "train_candidates", "train_pack") for twin in ("", "_variant")}
# Rules whose jobs do real work: never on the login node.
COMPUTE_RULES = TRAIN_RULES | {
    "score",
    "score_oracle",
    "ensemble",
    "ensemble_variant",
    "smoothing",
    "tensors",
    "neuron_dropping",
}


def _user_profile(tmp_path: Path) -> Path:
    """The shipped profile with its EDIT_ME values filled in, as the README tells users to do."""
    profile = tmp_path / "profile"
    shutil.copytree(ROOT / "workflow" / "profiles" / "slurm", profile)
    cfg = profile / "config.v8+.yaml"
    text = cfg.read_text()
    assert text.count("EDIT_ME") == 3, "the README names three EDIT_ME values"
    text = (
        text.replace("EDIT_ME_account", "lab")
        .replace("EDIT_ME_cpu_partition", CPU_PARTITION)
        .replace("EDIT_ME_gpu_partition", GPU_PARTITION)
    )
    cfg.write_text(text)
    return profile


def local_rules(config: Path, workdir: Path) -> set[str]:
    """The rules Snakemake runs in its own process (the workflow's `localrules`, as Snakemake registers
    them: a dry run prints every job as `rule`, so the plan itself cannot tell)."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings

    with SnakemakeApi(OutputSettings()) as api:
        workflow = api.workflow(
            resource_settings=ResourceSettings(),
            config_settings=ConfigSettings(configfiles=[config]),
            snakefile=ROOT / "workflow" / "Snakefile",
            workdir=workdir,
        )._workflow
        return {r.name for r in workflow.rules if r.group is None and r.name in workflow._localrules}


def planned_jobs(log: str, local: set[str]) -> list[dict]:
    """Every job of a dry run: rule, whether it runs locally, and its resources (name -> value string)."""
    jobs = []
    for rule, body in re.findall(r"^(?:local)?(?:rule|checkpoint) (\S+):\n((?:    .*\n)*)", log, re.MULTILINE):
        found = re.search(r"^    resources: (.*)$", body, re.MULTILINE)
        resources = dict(kv.split("=", 1) for kv in found.group(1).split(", ")) if found else {}
        jobs.append({"rule": rule, "local": rule in local, "resources": resources})
    return jobs


@pytest.fixture(scope="module")
def paper_plan(tmp_path_factory) -> list[dict]:
    tmp = tmp_path_factory.mktemp("plan")
    out = snakemake(
        tmp,
        ROOT / "config" / "paper.yaml",
        "-n",
        "--executor",
        "slurm",
        "--profile",
        str(_user_profile(tmp)),
        timeout=600,
    )
    jobs = planned_jobs(out.stdout + out.stderr, local_rules(ROOT / "config" / "paper.yaml", tmp))
    assert len(jobs) > 500, "the paper plan should hold hundreds of jobs"
    return jobs


def test_every_gpu_job_goes_to_the_gpu_partition_with_runtime_and_memory(paper_plan):
    gpu_jobs = [j for j in paper_plan if int(j["resources"].get("gpu", 0) or 0) > 0]
    # config/paper.yaml: one member per job, ranking the checkpoint pool
    assert gpu_jobs and {j["rule"] for j in gpu_jobs} == {"train_candidates", "train_candidates_variant"}
    for job in gpu_jobs:
        res = job["resources"]
        assert res.get("slurm_partition") == GPU_PARTITION, job
        assert int(res["runtime"]) >= 60 and int(res["mem_mb"]) >= 1000, job
        assert not job["local"], job


def test_every_variant_trains_on_the_gpu_partition(paper_plan):
    train = [j for j in paper_plan if j["rule"] in TRAIN_RULES]
    # 7 datasets x (120 STNDT + 20 NDT + 20 no-contrast) members, one job each and nothing else per member:
    # the training job writes the member's folder (no `member` link jobs at training.pack: 1)
    links = {r + twin for r in ("member", "member_candidates") for twin in ("", "_variant")}
    assert len(train) == 7 * 160 and not [j for j in paper_plan if j["rule"] in links]
    assert len([j for j in train if j["rule"].endswith("_variant")]) == 7 * 40
    assert all(j["resources"].get("slurm_partition") == GPU_PARTITION for j in train)


def test_the_six_training_rules_share_the_profiles_train_entry(tmp_path: Path):
    """A pack (train_pack) or a default-pool member (train) of any variant lands where paper.yaml's
    members do: the profile gives every training rule the resources and threads of its `train` entry."""
    cfg = yaml.safe_load((_user_profile(tmp_path) / "config.v8+.yaml").read_text())
    for section in ("set-resources", "set-threads"):
        assert set(cfg[section]) >= TRAIN_RULES, section
        assert all(cfg[section][r] == cfg[section]["train"] for r in TRAIN_RULES), section
    assert cfg["set-resources"]["train"]["slurm_partition"] == GPU_PARTITION


def test_no_training_or_scoring_job_runs_on_the_login_node(paper_plan):
    local = {j["rule"] for j in paper_plan if j["local"]}
    assert not local & COMPUTE_RULES, local & COMPUTE_RULES
    assert "download" in local  # compute nodes often have no internet
    for job in paper_plan:
        if not job["local"] and job["rule"] not in TRAIN_RULES:
            assert job["resources"].get("slurm_partition") == CPU_PARTITION, job
