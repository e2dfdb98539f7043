"""Config validation: every bad key or value fails at once with a message naming it."""
from __future__ import annotations

from pathlib import Path

import pytest

from stndt.config import ConfigError, pipeline_config


def _cfg(**entry):
    return {"datasets": {"ds": {"source": "synthetic", "layout": "mc_maze", **entry}}}


def test_valid_config_builds_typed_view(tmp_path: Path):
    cfg = pipeline_config({"results_dir": "out/", "seed": 3, "datasets": {
        "mc_rtt": {"source": "dandi", "members": 4},
        "mine": {"source": "local", "path": str(tmp_path), "layout": "area2_bump"},
        "syn": {"source": "synthetic", "layout": "dmfc_rsg"}}})
    assert cfg.results_dir == "out" and cfg.seed == 3 and cfg.bin_width_ms == 5
    assert cfg.datasets["mc_rtt"].layout == "mc_rtt" and cfg.datasets["mc_rtt"].members == 4
    assert cfg.by_source("local") == ["mine"] and cfg.datasets["syn"].family == "dmfc_rsg"
    assert cfg.datasets["mine"].space_name == "area2_bump"


@pytest.mark.parametrize("config, key", [
    (_cfg(layout="mc_mazee"), "datasets.ds.layout"),
    (_cfg(source="ftp"), "datasets.ds.source"),
    (_cfg(members=0), "datasets.ds.members"),
    (_cfg(colour="red"), "datasets.ds.colour"),
    (_cfg(synthetic={"n_trainn": 3}), "datasets.ds.synthetic.n_trainn"),
    (_cfg(path="/x"), "datasets.ds.path"),
    ({"datasets": {"ds": {"source": "local", "layout": "mc_maze"}}}, "datasets.ds.path"),
    ({"datasets": {"ds": {"source": "local", "layout": "mc_maze", "path": "/no/such/dir"}}}, "datasets.ds.path"),
    ({"datasets": {"my_data": {"source": "dandi"}}}, "datasets.my_data.layout"),
    ({"bin_width_ms": 7, **_cfg()}, "bin_width_ms"),
    ({"datasets": {}}, "datasets"),
])
def test_bad_values_name_the_key(config, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        pipeline_config(config)
