"""Pipeline configuration: the validated Snakemake config dict turned into frozen dataclasses.

The JSON schema (workflow/schemas/config.schema.yaml) checks types and allowed keys; this module adds the
checks a schema cannot express (layout names, folders that must exist, hyperparameter names, types and
ranges of the resolved search space and training settings of every dataset and variant) and gives every
stage a typed, immutable view of its part of the config. Everything is checked when Snakemake parses the
workflow, before any job starts (a training job that would fail on `training: {max_epoch: 4}` after a day
in the queue fails the dry run instead). Errors name the offending key, e.g. `datasets.<id>.<key>`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from stndt.datasets import NLB_DATASETS, SUPPORTED_BIN_WIDTHS_MS, nlb_dataset
from stndt.errors import ConfigError
from stndt.evalai_settings import EvalAISettings, check_evalai_result, evalai_settings
from stndt.members import SEARCH_METHODS

SOURCES = ("dandi", "synthetic", "local")
# The one home of every default of the config file (those of the `evalai:` section: stndt/evalai_settings.py):
# the schema (workflow/schemas/config.schema.yaml) checks types and keys only, and config/README.md's table
# is checked against these (tests/test_config.py). DEFAULT_VARIANTS: member counts per model variant when the
# config names none (the STNDT members form the ensemble and the submission; NDT and
# STNDT-without-contrastive are the paper's comparisons).
DEFAULT_RESULTS_DIR = "results"
DEFAULT_SEED = 0
DEFAULT_BIN_WIDTH_MS = 5
DEFAULT_SEARCH_SPACES = "config/search_spaces.yaml"
DEFAULT_VARIANTS: dict[str, int] = {"stndt": 4, "ndt": 4, "no_contrast": 4}
# Resources of a training job (resources.train: threads, mem_mb, runtime in minutes, gpu), each key
# replaceable on its own; a SLURM profile's set-resources take precedence over all of them.
DEFAULT_TRAIN_RESOURCES: dict[str, int] = {"threads": 1, "mem_mb": 4000, "runtime": 60, "gpu": 0}
DEFAULT_SEARCH: dict[str, Any] = {"method": "random", "wave_size": 8}


@dataclass(frozen=True)
class DatasetConfig:
    """One dataset entry: where its NWB files come from, which model variants to train with how many
    members each, and the settings every member of this dataset trains with."""

    id: str
    source: str
    layout: str
    variants: dict[str, int]  # variant -> member count (stndt first, always >= 1)
    path: str | None = None  # local source: folder with the train and test NWB files
    synthetic: dict = field(default_factory=dict)  # synthetic source: SyntheticConfig overrides
    search_space: str | None = None  # key in the search-space file; default: the layout's family
    dandi_version: str | None = None  # dandi source: dandiset version (default: most recent)
    training: dict = field(default_factory=dict)  # fixed settings of every member (global + dataset)
    search_overrides: dict = field(default_factory=dict)  # search-space entries replacing the file's
    search: dict = field(default_factory=lambda: dict(DEFAULT_SEARCH))  # method, wave_size
    pack: int = 1  # members trained together in one job on one device (training.pack)
    holdout: float = 0.0  # evaluation.holdout: share of val trials no selection may read
    candidates: str = "best_cobps"  # evaluation.candidates: the ensemble's candidate pool (stndt.candidates)
    max_size: int | None = None  # evaluation.max_size: the largest ensemble (None: no cap)
    evalai_result: str | None = None  # a downloaded EvalAI result (JSON) of this dataset's submission

    @property
    def family(self) -> str:
        return nlb_dataset(self.layout).family

    @property
    def space_name(self) -> str:
        return self.search_space or self.family

    @property
    def members(self) -> int:
        """Number of STNDT members (the ensemble's candidates)."""
        return self.variants["stndt"]


@dataclass(frozen=True)
class PipelineConfig:
    results_dir: str
    seed: int
    bin_width_ms: int
    datasets: dict[str, DatasetConfig]
    search_spaces: str
    evalai: EvalAISettings | None = None  # the `evalai:` section (submitting to EvalAI), None without one
    # resources of a training job: DEFAULT_TRAIN_RESOURCES with the config's resources.train on top
    train_resources: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_TRAIN_RESOURCES))

    def by_source(self, source: str) -> list[str]:
        return [d for d, c in self.datasets.items() if c.source == source]


# Dataset keys that are not DatasetConfig fields of the same meaning, or that are merged with the global
# sections of the same name.
_MERGED_KEYS = ("variants", "training", "search_overrides", "search", "evaluation")


def _variants(where: str, global_counts: Mapping[str, Any] | None, own: Mapping[str, Any] | None) -> dict[str, int]:
    from stndt.members import VARIANTS

    counts = dict(DEFAULT_VARIANTS if global_counts is None else global_counts)
    for scope, mapping in (("variants", global_counts or {}), (f"{where}.variants", own or {})):
        if not isinstance(mapping, Mapping):
            raise ConfigError(f"{scope}: expected a mapping of variant -> member count")
        for name, n in mapping.items():
            if name not in VARIANTS:
                raise ConfigError(f"{scope}.{name}: unknown model variant; known: {', '.join(VARIANTS)}")
            if not isinstance(n, int) or isinstance(n, bool) or n < 0:
                raise ConfigError(f"{scope}.{name}: member count must be an integer >= 0, got {n!r}")
    counts.update(own or {})
    if counts.get("stndt", 0) < 1:
        raise ConfigError(
            f"{where}.variants.stndt: at least one STNDT member is needed (the ensemble and "
            f"submission are built from them), got {counts.get('stndt', 0)!r}"
        )
    return {v: counts[v] for v in VARIANTS if counts.get(v, 0) > 0}


def _search(where: str, global_search: Mapping[str, Any] | None, own: Mapping[str, Any] | None) -> dict[str, Any]:
    out = dict(DEFAULT_SEARCH)
    for scope, mapping in (("search", global_search or {}), (f"{where}.search", own or {})):
        for key, value in mapping.items():
            if key not in DEFAULT_SEARCH:
                raise ConfigError(f"{scope}.{key}: unknown key; allowed: {', '.join(DEFAULT_SEARCH)}")
            if key == "method" and value not in SEARCH_METHODS:
                raise ConfigError(f"{scope}.method: must be one of {SEARCH_METHODS}, got {value!r}")
            if key == "wave_size" and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ConfigError(f"{scope}.wave_size: must be a positive integer, got {value!r}")
            out[key] = value
    return out


EVALUATION_KEYS = ("holdout", "candidates", "max_size")


def _holdout(where: str, global_eval: Mapping[str, Any] | None, own: Mapping[str, Any] | None) -> float:
    """evaluation.holdout (a dataset's own `evaluation:` replaces the top-level one)."""
    value = 0.0
    for scope, mapping in (("evaluation", global_eval or {}), (f"{where}.evaluation", own or {})):
        for key, v in mapping.items():
            if key not in EVALUATION_KEYS:
                raise ConfigError(f"{scope}.{key}: unknown key; allowed: {', '.join(EVALUATION_KEYS)}")
            if key != "holdout":
                continue  # _ensemble_choice
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 0.5:
                raise ConfigError(
                    f"{scope}.holdout: must be a number in [0, 0.5] (share of the val trials "
                    f"set aside from every selection), got {v!r}"
                )
            value = float(v)
    return value


def _ensemble_choice(
    where: str, global_eval: Mapping[str, Any] | None, own: Mapping[str, Any] | None
) -> dict[str, Any]:
    """evaluation.candidates and evaluation.max_size (stndt.candidates; a dataset's own win)."""
    from stndt.candidates import BEST_COBPS, CANDIDATE_MODES

    out: dict[str, Any] = {"candidates": BEST_COBPS, "max_size": None}
    for scope, mapping in (("evaluation", global_eval or {}), (f"{where}.evaluation", own or {})):
        if "candidates" in mapping:
            if mapping["candidates"] not in CANDIDATE_MODES:
                raise ConfigError(
                    f"{scope}.candidates: must be one of {', '.join(CANDIDATE_MODES)} (each member's "
                    f"best val co-bps checkpoint, or the reference's pool of every member's best "
                    f"checkpoints), got {mapping['candidates']!r}"
                )
            out["candidates"] = mapping["candidates"]
        if "max_size" in mapping:
            n = mapping["max_size"]
            if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
                raise ConfigError(
                    f"{scope}.max_size: must be a positive integer (the largest ensemble; the "
                    f"reference: 2) or null (no cap), got {n!r}"
                )
            out["max_size"] = n
    return out


def _dataset(ds_id: str, entry: dict, config: Mapping[str, Any]) -> DatasetConfig:
    where = f"datasets.{ds_id}"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected a mapping")
    if "members" in entry:
        raise ConfigError(
            f"{where}.members: member counts are set per model variant, e.g. "
            f"`variants: {{stndt: {entry['members']}, ndt: 20}}` (top level, or inside the dataset)"
        )
    known = ({f.name for f in fields(DatasetConfig)} - {"id", "pack", *EVALUATION_KEYS}) | set(_MERGED_KEYS)
    unknown = sorted(set(entry) - known)
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}: unknown key; allowed keys: {', '.join(sorted(known))}")
    source = entry.get("source")
    if source not in SOURCES:
        raise ConfigError(f"{where}.source: must be one of {SOURCES}, got {source!r}")
    layout = entry.get("layout", ds_id if source == "dandi" else None)
    if layout not in NLB_DATASETS:
        raise ConfigError(
            f"{where}.layout: must be one of {', '.join(NLB_DATASETS)}, got {layout!r}"
            + (" (a dandi dataset's id must be an NLB name, or set layout)" if source == "dandi" else "")
        )
    if source == "local":
        path = entry.get("path")
        if not path:
            raise ConfigError(f"{where}.path: required for source 'local' (folder with the NWB files)")
        if not Path(path).is_dir():
            raise ConfigError(f"{where}.path: {path} is not an existing folder")
    elif "path" in entry:
        raise ConfigError(f"{where}.path: only valid with source 'local'")
    if "evalai_result" in entry:
        check_evalai_result(where, entry["evalai_result"], source)
    if "synthetic" in entry and source != "synthetic":
        raise ConfigError(f"{where}.synthetic: only valid with source 'synthetic'")
    if source == "synthetic":
        _check_synthetic(where, entry.get("synthetic") or {})
    training = {**(config.get("training") or {}), **(entry.get("training") or {})}
    pack = training.pop("pack", 1)
    if "candidate_checkpoints" in training:  # set from evaluation.candidates, so the ensemble step agrees
        own = "candidate_checkpoints" in (entry.get("training") or {})
        raise ConfigError(
            f"{where + '.' if own else ''}training.candidate_checkpoints: not a training setting; "
            "set `evaluation: {candidates: checkpoints}` (members then keep their extra checkpoints)"
        )
    scope = f"{where}.training.pack" if "pack" in (entry.get("training") or {}) else "training.pack"
    if not isinstance(pack, int) or isinstance(pack, bool) or pack < 1:
        raise ConfigError(f"{scope}: must be a positive integer (members per training job), got {pack!r}")
    search = _search(where, config.get("search"), entry.get("search"))
    if search["method"] == "bayes" and search["wave_size"] % pack:
        raise ConfigError(
            f"{scope}: a pack must not span two Bayesian waves: wave_size "
            f"({search['wave_size']}) must be a multiple of pack ({pack})"
        )
    return DatasetConfig(
        id=ds_id,
        source=source,
        layout=layout,
        variants=_variants(where, config.get("variants"), entry.get("variants")),
        path=entry.get("path"),
        synthetic=dict(entry.get("synthetic") or {}),
        search_space=entry.get("search_space"),
        dandi_version=entry.get("dandi_version"),
        training=training,
        search_overrides={**(config.get("search_overrides") or {}), **(entry.get("search_overrides") or {})},
        search=search,
        pack=pack,
        holdout=_holdout(where, config.get("evaluation"), entry.get("evaluation")),
        **_ensemble_choice(where, config.get("evaluation"), entry.get("evaluation")),
        evalai_result=entry.get("evalai_result"),
    )


def _check_synthetic(where: str, overrides: dict) -> None:
    from stndt.data.synthetic.config import SyntheticConfig

    known = {f.name for f in fields(SyntheticConfig)}
    for key in overrides:
        if key not in known:
            raise ConfigError(f"{where}.synthetic.{key}: unknown key; allowed keys: {', '.join(sorted(known))}")


def _key_of(ds_id: str, config: Mapping[str, Any], name: str) -> str:
    """The config key that set hyperparameter `name` of dataset `ds_id` (dataset level wins)."""
    entry = config["datasets"][ds_id]
    for section in ("training", "search_overrides"):
        if name in (entry.get(section) or {}):
            return f"datasets.{ds_id}.{section}.{name}"
    for section in ("training", "search_overrides"):
        if name in (config.get(section) or {}):
            return f"{section}.{name}"
    return f"search_spaces ({name})"


def _check_training(ds: DatasetConfig, config: Mapping[str, Any], spaces_file: str) -> None:
    """Resolve the search space and one member's settings of every variant and build its configs, so
    that a misspelt, mistyped or out-of-range setting fails now, naming its key."""
    import re

    from stndt.train.members import resolve_member, space_for
    from stndt.train.search.space import known_params, load_search_spaces, split_params, validate_space

    known = known_params()
    for key in ds.training:
        if key not in known:
            raise ConfigError(f"{_key_of(ds.id, config, key)}: unknown setting; known: {', '.join(sorted(known))}")
    try:
        for scope, overrides in (
            ("search_overrides", config.get("search_overrides")),
            (f"datasets.{ds.id}.search_overrides", config["datasets"][ds.id].get("search_overrides")),
        ):
            validate_space(overrides or {}, scope)
    except ValueError as e:
        raise ConfigError(str(e)) from e
    try:
        spaces = load_search_spaces(spaces_file)
        space = space_for(spaces, ds.layout, ds.search_overrides, ds.search_space)
    except (OSError, ValueError) as e:
        raise ConfigError(f"search_spaces / datasets.{ds.id}.search_space: {e}") from e
    searched = sorted(k for k in ds.training if isinstance(space.get(k), Mapping))
    if searched:  # the fixed value would override every member's draw while the search goes on searching it
        key = searched[0]
        raise ConfigError(
            f"{_key_of(ds.id, config, key)}: {key!r} is searched (a range in the search space), so a "
            f"fixed training value would silently replace every member's sampled value; to fix it, "
            f"set it in search_overrides (or datasets.{ds.id}.search_overrides): {key}: <value>"
        )
    if ds.pack > 1:
        from stndt.train.pack.model import STRUCTURAL_FIELDS
        from stndt.train.pack.train import SHARED_TRAIN_FIELDS

        sampled = sorted(f for f in (*STRUCTURAL_FIELDS, *SHARED_TRAIN_FIELDS) if isinstance(space.get(f), Mapping))
        if sampled:
            raise ConfigError(
                f"{_key_of(ds.id, config, sampled[0])}: sampled per member, but the members of a "
                f"pack (training.pack: {ds.pack}) must share it; fix it or use pack: 1"
            )
    shapes = {"n_heldin": 8, "n_heldout": 4, "t_bins": 8, "t_forward": 2}  # real shapes come from the data
    for variant in ds.variants:
        try:
            split_params(resolve_member(space, 0, 0, variant, ds.training), shapes)
        except ValueError as e:
            found = re.search(r"(?:TrainConfig|ModelConfig|ObjectiveConfig|params)\.(\w+)", str(e))
            key = _key_of(ds.id, config, found.group(1)) if found else f"datasets.{ds.id}"
            raise ConfigError(f"{key}: {e} (dataset {ds.id}, variant {variant})") from e


def pipeline_config(config: dict[str, Any], root: str | Path | None = None) -> PipelineConfig:
    """Validate the parts of the config a JSON schema cannot, and build the typed view.

    `root`: where shipped files named by relative paths (the search-space file) are found when they are
    not relative to the working directory.
    """
    bw = config.get("bin_width_ms", DEFAULT_BIN_WIDTH_MS)
    if bw not in SUPPORTED_BIN_WIDTHS_MS:
        raise ConfigError(f"bin_width_ms: nlb_tools scores {SUPPORTED_BIN_WIDTHS_MS} ms bins only, got {bw!r}")
    entries = config.get("datasets") or {}
    if not entries:
        raise ConfigError("datasets: at least one dataset must be configured")
    spaces = str(config.get("search_spaces", DEFAULT_SEARCH_SPACES))
    if root is not None and not Path(spaces).is_absolute() and not Path(spaces).exists():
        spaces = str(Path(root) / spaces)
    datasets = {ds_id: _dataset(ds_id, entry, config) for ds_id, entry in entries.items()}
    for ds in datasets.values():
        _check_training(ds, config, spaces)
    return PipelineConfig(
        results_dir=str(config.get("results_dir", DEFAULT_RESULTS_DIR)).rstrip("/"),
        seed=int(config.get("seed", DEFAULT_SEED)),
        bin_width_ms=bw,
        datasets=datasets,
        search_spaces=spaces,
        evalai=evalai_settings(config.get("evalai"), bw),
        train_resources={**DEFAULT_TRAIN_RESOURCES, **((config.get("resources") or {}).get("train") or {})},
    )
