"""Pipeline configuration: the validated Snakemake config dict turned into frozen dataclasses.

The JSON schema (workflow/schemas/config.schema.yaml) checks types and allowed keys; this module adds the
checks a schema cannot express (layout names, files that must exist) and gives every stage a typed,
immutable view of its part of the config. Errors name the offending key as `datasets.<id>.<key>`.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from stndt.datasets import NLB_DATASETS, SUPPORTED_BIN_WIDTHS_MS, nlb_dataset

SOURCES = ("dandi", "synthetic", "local")


class ConfigError(ValueError):
    """A config key is missing, unknown or has a bad value; the message names the key."""


@dataclass(frozen=True)
class DatasetConfig:
    """One dataset entry: where its NWB files come from and how many ensemble members to train."""

    id: str
    source: str
    layout: str
    members: int
    path: str | None = None            # local source: folder with the train and test NWB files
    synthetic: dict = field(default_factory=dict)   # synthetic source: SyntheticConfig overrides
    search_space: str | None = None    # key in the search-space file; default: the layout's family
    dandi_version: str | None = None   # dandi source: dandiset version (default: most recent)

    @property
    def family(self) -> str:
        return nlb_dataset(self.layout).family

    @property
    def space_name(self) -> str:
        return self.search_space or self.family


@dataclass(frozen=True)
class PipelineConfig:
    results_dir: str
    seed: int
    bin_width_ms: int
    datasets: dict[str, DatasetConfig]
    raw: dict  # the whole validated config, for the stages that take their own sections

    def by_source(self, source: str) -> list[str]:
        return [d for d, c in self.datasets.items() if c.source == source]


def _dataset(ds_id: str, entry: dict) -> DatasetConfig:
    where = f"datasets.{ds_id}"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected a mapping")
    known = {f.name for f in fields(DatasetConfig)} - {"id"}
    unknown = sorted(set(entry) - known)
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}: unknown key; allowed keys: {', '.join(sorted(known))}")
    source = entry.get("source")
    if source not in SOURCES:
        raise ConfigError(f"{where}.source: must be one of {SOURCES}, got {source!r}")
    layout = entry.get("layout", ds_id if source == "dandi" else None)
    if layout not in NLB_DATASETS:
        raise ConfigError(f"{where}.layout: must be one of {', '.join(NLB_DATASETS)}, got {layout!r}"
                          + (" (a dandi dataset's id must be an NLB name, or set layout)" if source == "dandi" else ""))
    members = entry.get("members", 1)
    if not isinstance(members, int) or isinstance(members, bool) or members < 1:
        raise ConfigError(f"{where}.members: must be a positive integer, got {members!r}")
    if source == "local":
        path = entry.get("path")
        if not path:
            raise ConfigError(f"{where}.path: required for source 'local' (folder with the NWB files)")
        if not Path(path).is_dir():
            raise ConfigError(f"{where}.path: {path} is not an existing folder")
    elif "path" in entry:
        raise ConfigError(f"{where}.path: only valid with source 'local'")
    if "synthetic" in entry and source != "synthetic":
        raise ConfigError(f"{where}.synthetic: only valid with source 'synthetic'")
    if source == "synthetic":
        _check_synthetic(where, entry.get("synthetic") or {})
    return DatasetConfig(id=ds_id, source=source, layout=layout, members=members, path=entry.get("path"),
                         synthetic=dict(entry.get("synthetic") or {}), search_space=entry.get("search_space"),
                         dandi_version=entry.get("dandi_version"))


def _check_synthetic(where: str, overrides: dict) -> None:
    from stndt.data.synthetic import SyntheticConfig

    known = {f.name for f in fields(SyntheticConfig)}
    for key in overrides:
        if key not in known:
            raise ConfigError(f"{where}.synthetic.{key}: unknown key; allowed keys: {', '.join(sorted(known))}")


def pipeline_config(config: dict[str, Any]) -> PipelineConfig:
    """Validate the parts of the config a JSON schema cannot, and build the typed view."""
    bw = config.get("bin_width_ms", 5)
    if bw not in SUPPORTED_BIN_WIDTHS_MS:
        raise ConfigError(f"bin_width_ms: nlb_tools scores {SUPPORTED_BIN_WIDTHS_MS} ms bins only, got {bw!r}")
    entries = config.get("datasets") or {}
    if not entries:
        raise ConfigError("datasets: at least one dataset must be configured")
    datasets = {ds_id: _dataset(ds_id, entry) for ds_id, entry in entries.items()}
    return PipelineConfig(results_dir=str(config.get("results_dir", "results")).rstrip("/"),
                          seed=int(config.get("seed", 0)), bin_width_ms=bw, datasets=datasets, raw=config)
