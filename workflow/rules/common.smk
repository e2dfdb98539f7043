# Helpers shared by the stage files: which datasets, variants and members exist, and their files.
import functools
import glob
import json
import re

from snakemake.exceptions import WorkflowError

from stndt.candidates import BEST_COBPS, CANDIDATES_DIR, CHECKPOINTS, candidate_files
from stndt.datasets import PHASES, SCALING_DATASETS
from stndt.io import link_files
from stndt.figures import FIGURES
from stndt.members import MEMBER_FILES, VARIANTS, member_id, member_index
from stndt.paper import ABLATION_TABLE, MAIN_TABLE, SCALING_TABLE
from stndt.train.members import resolve_member, space_for
from stndt.train.search.space import load_search_spaces
from stndt.train.search.waves import wave_of


def one_of(names):
    """Wildcard constraint matching exactly these names (or nothing when the list is empty)."""
    return "|".join(re.escape(n) for n in names) if names else "(?!x)x"


def ds_cfg(wildcards):
    return CFG.datasets[wildcards.dataset]


def is_synthetic(dataset):
    return CFG.datasets[dataset].source == "synthetic"


# Relative to the working directory (the checkout, for `snakemake --cores all`): an absolute path would
# change with the checkout's place, and Snakemake reruns a job whose set of input paths changed.
PUBLISHED = os.path.relpath(os.path.join(ROOT, "config", "published_results.csv"))
# One environment for all jobs under --sdm conda; its PyTorch is the CUDA build (see the file).
CONDA_ENV = "../../envs/stndt.yaml"
TRAIN_RESOURCES = CFG.train_resources
ALL_DATASETS = list(CFG.datasets)
SYNTHETIC = CFG.by_source("synthetic")


# ---- member sets: the STNDT members of a dataset live in {dataset}/, another variant's in
# {dataset}/variants/{variant}/ (the README's output contract). One rule cannot make both paths, so each
# set rule has a `_variant` twin with the same command (made by `use rule`, given the twin's paths) whose
# paths carry the `{variant}` wildcard; STNDT's rules have none.

OTHER_VARIANTS = [v for v in VARIANTS if v != "stndt"]


def set_rel(dataset, variant="stndt"):
    """A member set's folder below the results folder (and below each stage's log folder): the one place
    the layout is spelled."""
    return os.path.join(dataset, *([] if variant == "stndt" else ["variants", variant]))


def set_dir(dataset, variant="stndt"):
    return f"{R}/{set_rel(dataset, variant)}"


# the two layouts as path patterns of the set rules (STNDT_SET) and their `_variant` twins (VARIANT_SET)
STNDT_SET = set_rel("{dataset}")
VARIANT_SET = set_rel("{dataset}", "{variant}")


def scored_in_set(variant):
    """What `score` scores in a member set, as a regex relative to the dataset's folder: the set's
    ensemble and its members (their test phase)."""
    # '' for STNDT, else 'variants/{variant}/'
    inside = os.path.join(set_rel("", variant), "")
    return rf"{re.escape(inside)}(ensemble|members/m\d\d\d+)"


def variant_in(wildcards):
    """The variant of a set rule's job: its `{variant}` wildcard, or STNDT for a rule without one."""
    return wildcards.get("variant", "stndt")


wildcard_constraints:
    dataset=one_of(ALL_DATASETS),
    phase=one_of(PHASES),
    member=r"m\d\d\d+",
    variant=one_of(OTHER_VARIANTS),
    pack=r"m\d\d\d+(-m\d\d\d+)?",


def member_ids(dataset, variant="stndt"):
    return [member_id(i) for i in range(CFG.datasets[dataset].variants.get(variant, 0))]


def member_dir(dataset, variant, member):
    """The folder of a member of a dataset's variant: the one place a member's path is spelled."""
    return f"{set_dir(dataset, variant)}/members/{member}"


def pack_dir(dataset, variant, pack):
    """The folder of a pack (training.pack > 1) of a dataset's variant, where its members train."""
    return f"{set_dir(dataset, variant)}/packs/{pack}"


def set_members(dataset, variant):
    return [member_dir(dataset, variant, m) for m in member_ids(dataset, variant)]


def member_files(dataset, name, variants=None):
    """A file of every member of a dataset's sets (all sets, or the named variants)."""
    return [
        f"{m}/{name}"
        for v in CFG.datasets[dataset].variants
        if variants is None or v in variants
        for m in set_members(dataset, v)
    ]


def set_files(dataset, name):
    """A file of every member set of a dataset (STNDT and each variant)."""
    return [f"{set_dir(dataset, v)}/{name}" for v in CFG.datasets[dataset].variants]


@functools.cache
def dataset_space(dataset):
    ds = CFG.datasets[dataset]
    return space_for(
        load_search_spaces(CFG.search_spaces),
        ds.layout,
        ds.search_overrides,
        ds.search_space,
    )


def member_wave(dataset, index):
    """The Bayesian-search wave that proposes member `index`, or None: drawn at random (random search,
    and the first wave of a Bayesian one)."""
    search = CFG.datasets[dataset].search
    wave = wave_of(index, search["wave_size"])
    return wave if search["method"] == "bayes" and wave > 0 else None


def pack_members(pack):
    """Member ids of a pack id: 'm008' (a pack of one) or 'm008-m015'."""
    first, _, last = pack.partition("-")
    return [
        member_id(i)
        for i in range(member_index(first), member_index(last or first) + 1)
    ]


def pack_of(dataset, variant, member):
    """The pack (training.pack consecutive members of one variant; never across a Bayesian wave, as the
    config check guarantees) that trains `member`."""
    k = CFG.datasets[dataset].pack
    n = CFG.datasets[dataset].variants[variant]
    start = member_index(member) // k * k
    end = min(start + k, n) - 1
    return member_id(start) if end == start else f"{member_id(start)}-{member_id(end)}"


def in_set(name):
    """Input function: the file `name` of the job's member set."""
    return (
        lambda wildcards: f"{set_dir(wildcards.dataset, variant_in(wildcards))}/{name}"
    )


def pack_json(wildcards):
    """The summary of the pack that trained a member job's member: the input of the rules that link the
    member's files out of the pack."""
    ds, v = wildcards.dataset, variant_in(wildcards)
    return f"{pack_dir(ds, v, pack_of(ds, v, wildcards.member))}/pack.json"


def pack_dirs(wildcards):
    """The folders a pack job trains its members in (inside the pack's folder)."""
    pack = pack_dir(wildcards.dataset, variant_in(wildcards), wildcards.pack)
    return [f"{pack}/{m}" for m in pack_members(wildcards.pack)]


def set_packs(dataset, variant):
    """The packs of a member set (none for a solo dataset: its members are their own jobs)."""
    if CFG.datasets[dataset].pack == 1:
        return []
    return sorted({pack_of(dataset, variant, m) for m in member_ids(dataset, variant)})


def solo_datasets(candidates):
    """Datasets trained one member per job (training.pack: 1) whose ensemble pool is `candidates`:
    their training job writes the member's folder itself, with no pack folder and no link job.
    """
    return [
        ds
        for ds in ALL_DATASETS
        if CFG.datasets[ds].pack == 1 and CFG.datasets[ds].candidates == candidates
    ]


def packed_datasets():
    return [ds for ds in ALL_DATASETS if CFG.datasets[ds].pack > 1]


def job_members(wildcards):
    """Member ids a training job trains: its pack's, or the one member of a solo job."""
    if "pack" in wildcards.keys():
        return pack_members(wildcards.pack)
    return [wildcards.member]


def wave_file(wildcards):
    """The proposal file of the job's wave, once that wave's checkpoint has run (members of every
    variant share the STNDT members' proposals: member i has the same hyperparameters in each).
    """
    wave = member_wave(wildcards.dataset, member_index(job_members(wildcards)[0]))
    if wave is None:
        return []
    return checkpoints.propose_wave.get(
        dataset=wildcards.dataset, wave=f"{wave:03d}"
    ).output


def wave_path(dataset, wave):
    return f"{R}/{dataset}/search/wave{wave:03d}.json"


def pack_hparams(wildcards):
    """The resolved hyperparameters and training settings of the job's members, as JSON: the only
    description of them the training job gets. A params value (of wildcards only: Snakemake does not
    track params computed from inputs), so Snakemake retrains a finished pack exactly when what it
    computes from changes, and not when the search space of another dataset, or the interpreter's path,
    does. Members of a Bayesian wave read their proposals from the wave's file (an input of the job, see
    wave_file), which exists whenever the job is about to run."""
    ds = CFG.datasets[wildcards.dataset]
    proposals = {}
    wave = member_wave(wildcards.dataset, member_index(job_members(wildcards)[0]))
    if wave is not None:
        path = wave_path(wildcards.dataset, wave)
        # a dry run plans the wave's members before its checkpoint has run
        if not os.path.exists(path):
            return f"proposed in {path}"
        proposals = read_wave(path)
    members = [
        resolve_member(
            dataset_space(wildcards.dataset),
            CFG.seed,
            member_index(m),
            variant_in(wildcards),
            member_training(ds),
            proposals.get(m),
        )
        for m in job_members(wildcards)
    ]
    return json.dumps(members, sort_keys=True)


def member_training(ds):
    """A dataset's fixed training settings, plus candidate_checkpoints when its ensemble ranks the
    reference's pool (evaluation.candidates: checkpoints). Absent otherwise, so the default changes no
    member's params (and retrains nothing)."""
    if ds.candidates == CHECKPOINTS:
        return {**ds.training, "candidate_checkpoints": True}
    return ds.training


def read_wave(path):
    """The proposals of a wave file, or a message naming the file and the remedy: a damaged file would
    otherwise stop every Snakemake call (also -n) with a JSON error naming nothing."""
    try:
        with open(path) as f:
            return json.load(f)["members"]
    except (ValueError, KeyError, TypeError) as err:
        raise WorkflowError(
            f"{path}: damaged Bayesian-search wave file ({err}). Delete it and rerun: it is proposed "
            "again, identically, from the finished members of the earlier waves (nothing retrains if "
            "the proposals are unchanged)."
        ) from None


def bayes_waves(dataset):
    """The wave files of a dataset's Bayesian search (part of the default target, so a deleted one is
    proposed again)."""
    ds = CFG.datasets[dataset]
    waves = {member_wave(dataset, i) for i in range(ds.members)} - {None}
    return [wave_path(dataset, w) for w in sorted(waves)]


def stalled_searches():
    """A message naming, per dataset with a Bayesian search, the members of its earlier waves that have
    not finished (so no later wave can be proposed), with their job logs; None when no search waits.
    """
    lines = []
    for ds_id, ds in CFG.datasets.items():
        if ds.search["method"] != "bayes":
            continue
        last = max((member_wave(ds_id, i) or 0) for i in range(ds.members))
        blocking = {}
        for i in range(min(last * ds.search["wave_size"], ds.members)):
            m = member_id(i)
            job_log = (
                f"{R}/logs/train/{set_rel(ds_id)}/{pack_of(ds_id, 'stndt', m)}.log"
            )
            # attempted (its job wrote a log) but not finished
            if os.path.exists(job_log) and not os.path.exists(
                f"{member_dir(ds_id, 'stndt', m)}/params.json"
            ):
                blocking[m] = job_log
        if blocking:
            lines.append(
                f"  {ds_id}: {', '.join(blocking)} (job logs: {', '.join(sorted(set(blocking.values())))})"
            )
    if not lines:
        return None
    return (
        "The Bayesian search of these datasets waits for members that did not finish: the next wave is "
        "proposed only from a finished wave, so no later member, ensemble or table of the dataset is made. "
        "Fix the cause named in the log and rerun (finished members are kept, an interrupted one resumes):\n"
        + "\n".join(lines)
    )


def wave_args(wildcards):
    """params.json of every STNDT member of the waves before `wildcards.wave` (what the next proposals
    learn from), as the propose-wave command's arguments (and so the rule's input)."""
    n = int(wildcards.wave) * CFG.datasets[wildcards.dataset].search["wave_size"]
    a = Args()
    for m in map(member_id, range(n)):
        a.file(
            "--params", m, f"{member_dir(wildcards.dataset, 'stndt', m)}/params.json"
        )
    return a


# ---- per-dataset inputs


def hidden_input(wildcards):
    """The complete hidden recording (test-phase targets), known for synthetic datasets only."""
    return (
        [f"{R}/{wildcards.dataset}/truth/full.nwb"]
        if is_synthetic(wildcards.dataset)
        else []
    )


def truth_files(dataset):
    return [f"{R}/{dataset}/truth.h5"] if is_synthetic(dataset) else []


def truth_input(wildcards):
    return truth_files(wildcards.dataset)


def flag(name):
    """params helper: ['--name', path] when the rule's input of that name is non-empty, else []."""
    return lambda wildcards, input: [f"--{name}", *input[name]] if input[name] else []


def scored_phases(dataset):
    """Phases whose targets are known: val always, test for synthetic data (hidden targets)."""
    return PHASES if is_synthetic(dataset) else ["val"]


def has_paired(dataset):
    return len(CFG.datasets[dataset].variants) > 1


# ---- what the default target asks for: every file of the README's output contract


# the files a member's training job leaves (stndt.train.outputs)
MEMBER_FILES = list(MEMBER_FILES)


# a member's extra ensemble candidates (evaluation.candidates: checkpoints; stndt.candidates)
CANDIDATE_FILES = [f"{CANDIDATES_DIR}/{f}" for f in candidate_files(PHASES)]


def set_candidate_files(dataset, variant):
    """The extra candidates' files of a member set (none unless its dataset ranks the reference's pool)."""
    if CFG.datasets[dataset].candidates != CHECKPOINTS:
        return []
    return [f"{m}/{f}" for m in set_members(dataset, variant) for f in CANDIDATE_FILES]


def ensemble_choice(dataset):
    """The ensemble command's candidate pool and size cap (evaluation.candidates / max_size); no
    arguments for the defaults, so a default run's ensemble command is unchanged."""
    ds = CFG.datasets[dataset]
    args = [] if ds.candidates == BEST_COBPS else ["--candidates", ds.candidates]
    return args + ([] if ds.max_size is None else ["--max-size", str(ds.max_size)])


def data_outputs():
    out = []
    for ds in ALL_DATASETS:
        out += expand(f"{R}/{ds}/tensors/{{phase}}.h5", phase=PHASES)
        out.append(f"{R}/{ds}/figures/data_overview.png")
        if is_synthetic(ds):
            out.append(f"{R}/{ds}/truth.h5")
    return out


def member_outputs(ds):
    out = [
        f"{pack_dir(ds, v, k)}/pack.json"
        for v in CFG.datasets[ds].variants
        for k in set_packs(ds, v)
    ]
    out += [f for name in MEMBER_FILES for f in member_files(ds, name)]
    out += [
        f for p in scored_phases(ds)[1:] for f in member_files(ds, f"metrics_{p}.json")
    ]
    out += [f for v in CFG.datasets[ds].variants for f in set_candidate_files(ds, v)]
    out += bayes_waves(ds)
    return out


def evaluation_outputs():
    out = []
    for ds in ALL_DATASETS:
        out += member_outputs(ds)
        for name in [
            "members.csv",
            "ensemble.json",
            "ensemble_curve.csv",
            "ensemble/rates_val.h5",
            "ensemble/rates_test.h5",
            *(f"ensemble/metrics_{p}.json" for p in scored_phases(ds)),
        ]:
            out += set_files(ds, name)
        out += [
            f"{R}/{ds}/baselines/smoothing/metrics_{p}.json" for p in scored_phases(ds)
        ]
        out += [f"{R}/{ds}/baselines.csv", f"{R}/{ds}/submission.h5"]
        out += [f"{R}/{ds}/paired_ablation.csv"] if has_paired(ds) else []
    return out


def paper_outputs():
    out = data_outputs() + evaluation_outputs()
    out += [f"{R}/{ds}/analysis/neuron_dropping.csv" for ds in ALL_DATASETS]
    out += [f"{PAPER}/tables/{t}.{ext}" for t in TABLES for ext in ("csv", "md")]
    out += [
        f"{PAPER}/figures/{ds}_{name}.{ext}"
        for ds in ALL_DATASETS
        for name in FIGURE_NAMES
        for ext in ("png", "pdf")
    ]
    return out


# ---- the arguments (= the inputs) of the commands that read many files


def local_nwb_files(wildcards):
    """The user's NWB files: inputs of the linking rule, so that a replaced file rebuilds what depends on it."""
    files = sorted(
        glob.glob(os.path.join(glob.escape(ds_cfg(wildcards).path), "*.nwb"))
    )
    if not files:
        raise ValueError(
            f"datasets.{wildcards.dataset}.path: no .nwb files in {ds_cfg(wildcards).path}"
        )
    return files


class Args:
    """A command's arguments, built with every file it reads marked as one (`file`): the rule's input is
    exactly `files`, so a file argument is an input whatever its name or extension, and an option is never
    mistaken for one."""

    def __init__(self):
        self.args, self.files = [], []

    def opt(self, *values):
        """Plain arguments (flags, keys, numbers): not inputs."""
        self.args += [str(v) for v in values]
        return self

    def file(self, flag, *keys_then_path):
        """`flag [KEY ...] PATH`: an input file, with the keys that name its slot (stndt.commands.keyed)."""
        *keys, path = keys_then_path
        self.opt(flag, *keys, path)
        self.files.append(path)
        return self


def input_of(build):
    """The input function of a rule whose command arguments `build(wildcards)` makes (an Args)."""
    return lambda wildcards: build(wildcards).files


def args_of(build):
    """The params function giving the same command's argument list."""
    return lambda wildcards: build(wildcards).args


def baseline_args(wildcards):
    """Every file the baselines table reads, as the command's arguments (and so as the rule's input)."""
    ds = wildcards.dataset
    phases = scored_phases(ds)
    a = Args().opt("--phases", *phases)
    for variant in CFG.datasets[ds].variants:
        a.file("--ranking", variant, f"{set_dir(ds, variant)}/ensemble.json")
        for p in phases:
            a.file(
                "--ensemble-metrics",
                variant,
                p,
                f"{set_dir(ds, variant)}/ensemble/metrics_{p}.json",
            )
            # the best single member of each set is one of these
            for m in member_ids(ds, variant):
                a.file(
                    "--member-metrics",
                    variant,
                    m,
                    p,
                    f"{member_dir(ds, variant, m)}/metrics_{p}.json",
                )
    for name in ["smoothing"] + (["oracle"] if is_synthetic(ds) else []):
        for p in phases:
            a.file(
                "--baseline-metrics",
                name,
                p,
                f"{R}/{ds}/baselines/{name}/metrics_{p}.json",
            )
    return a


def member_file_args(a, dataset, variant, names, members=None, set_key=()):
    """Add `--member-file [SET] MEMBER NAME PATH` to `a` for every file `names` of every member (default:
    all) of a dataset's variant: commands are handed each member file they read, never a folder.
    """
    for m in member_ids(dataset, variant) if members is None else members:
        for name in names:
            a.file(
                "--member-file",
                *set_key,
                m,
                name,
                f"{member_dir(dataset, variant, m)}/{name}",
            )
    return a


def members_table_args(wildcards):
    phases = scored_phases(wildcards.dataset)
    names = ["params.json", "train_log.csv", *(f"metrics_{p}.json" for p in phases)]
    a = Args().opt("--phases", *phases)
    return member_file_args(a, wildcards.dataset, variant_in(wildcards), names)


def ensemble_member_args(wildcards):
    ds = wildcards.dataset
    names = [f"rates_{p}.h5" for p in PHASES]
    if CFG.datasets[ds].candidates == CHECKPOINTS:
        names += CANDIDATE_FILES
    return member_file_args(Args(), ds, variant_in(wildcards), names)


def paired_args(wildcards):
    """The paired ablation's member files: each variant's members and the STNDT members of the same ids
    (member i of a variant trained with STNDT member i's draw)."""
    ds = CFG.datasets[wildcards.dataset]
    names = [f"rates_{p}.h5" for p in PHASES]
    names += [f"metrics_{p}.json" for p in scored_phases(wildcards.dataset)]
    k = max((ds.variants[v] for v in ds.variants if v != "stndt"), default=0)
    a = member_file_args(
        Args(),
        wildcards.dataset,
        "stndt",
        names,
        member_ids(wildcards.dataset)[:k],
        ("stndt",),
    )
    for v in ds.variants:
        if v != "stndt":
            member_file_args(a, wildcards.dataset, v, names, set_key=(v,))
    return a


def checkpoint_args(a, flag, dataset, variant):
    """Add every member's best checkpoint of a dataset's variant to `a`."""
    for m in member_ids(dataset, variant):
        a.file(flag, m, f"{member_dir(dataset, variant, m)}/best.pt")
    return a


def dropping_args(wildcards):
    ds = wildcards.dataset
    a = Args().file("--tensors", f"{R}/{ds}/tensors/val.h5")
    a.file("--stndt-ensemble", f"{set_dir(ds)}/ensemble.json")
    checkpoint_args(a, "--stndt-checkpoint", ds, "stndt")
    # Fig. 5 compares with NDT fed the same dropped inputs
    if "ndt" in CFG.datasets[ds].variants:
        a.file("--ndt-ensemble", f"{set_dir(ds, 'ndt')}/ensemble.json")
        checkpoint_args(a, "--ndt-checkpoint", ds, "ndt")
    return a


# ---- each figure's command arguments (paper.smk FIGURE_ARGS), every file it reads marked
def fig2_args(ds):
    a = Args()
    for v in CFG.datasets[ds].variants:
        a.file("--members-csv", v, f"{set_dir(ds, v)}/members.csv")
    return a


def fig3_args(ds):
    a = Args().opt("--dataset", ds).file("--curve", f"{set_dir(ds)}/ensemble_curve.csv")
    a.file("--ensemble", f"{set_dir(ds)}/ensemble.json")
    a.file("--rates", f"{set_dir(ds)}/ensemble/rates_val.h5")
    a.file("--tensors", f"{R}/{ds}/tensors/val.h5")
    for t in truth_files(ds):
        a.file("--truth", t)
    return a


def fig4_args(ds):
    a = Args().opt("--dataset", ds).file("--ensemble", f"{set_dir(ds)}/ensemble.json")
    a.file("--tensors", f"{R}/{ds}/tensors/val.h5")
    return checkpoint_args(a, "--checkpoint", ds, "stndt")


def fig5_args(ds):
    return Args().file("--table", f"{R}/{ds}/analysis/neuron_dropping.csv")


def training_curves_args(ds):
    a = Args().opt("--dataset", ds)
    for v in CFG.datasets[ds].variants:
        for m in member_ids(ds, v):
            a.file("--train-log", v, m, f"{member_dir(ds, v, m)}/train_log.csv")
            a.file("--params", v, m, f"{member_dir(ds, v, m)}/params.json")
    return a


# ---- EvalAI (rules/evalai.smk): what may be submitted, and the submission command's arguments


def evalai_refusal(dataset):
    """Why a dataset cannot be submitted as one file (None when it can), checked while the DAG is built."""
    from stndt.evaluate.evalai import EvalAIError, check_submittable

    ds = CFG.datasets[dataset]
    try:
        check_submittable(dataset, ds.source, ds.layout)
    except EvalAIError as err:
        return str(err)
    return None


def evalai_inputs(wildcards):
    """The submission and the test tensors it is re-checked against; refusals and a missing `evalai:`
    section fail the DAG (also a dry run) with the reason, before any job runs."""
    refusal = evalai_refusal(wildcards.dataset)
    if refusal:
        raise WorkflowError(f"cannot submit to EvalAI: {refusal}")
    if CFG.evalai is None:
        raise WorkflowError(
            "cannot submit to EvalAI: the config has no `evalai:` section; set at least `evalai: {phase: <id of "
            "the NLB challenge's Test phase>}` (README, 'Submitting to EvalAI')"
        )
    return {
        "submission": f"{R}/{wildcards.dataset}/submission.h5",
        "test": f"{R}/{wildcards.dataset}/tensors/test.h5",
    }


def evalai_args(wildcards):
    ds = CFG.datasets[wildcards.dataset]
    bw = CFG.bin_width_ms
    return [
        "--dataset",
        wildcards.dataset,
        "--source",
        ds.source,
        "--layout",
        ds.layout,
        "--bin-width-ms",
        str(bw),
        "--challenge",
        str(CFG.evalai.challenge),
        "--phase",
        str(CFG.evalai.phase_for(bw)),
        "--host",
        CFG.evalai.host,
        "--method-name",
        CFG.evalai.method_name,
    ]


def evalai_targets(wildcards):
    """submitted.json of every dataset EvalAI can score from its own file (refusals are printed)."""
    ok = [ds for ds in ALL_DATASETS if evalai_refusal(ds) is None]
    for ds in sorted(set(ALL_DATASETS) - set(ok)):
        print(f"evalai_submit: skipping {ds}: {evalai_refusal(ds)}", file=sys.stderr)
    if not ok:
        raise WorkflowError(
            "evalai_submit: no configured dataset can be submitted to EvalAI (see the reasons above)"
        )
    return [f"{R}/{ds}/evalai/submitted.json" for ds in ok]
