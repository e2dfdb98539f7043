"""Config validation: every bad key or value fails at once with a message naming it."""

from __future__ import annotations

from pathlib import Path

import pytest

from stndt.config import pipeline_config
from stndt.errors import ConfigError


def _cfg(**entry):
    return {"datasets": {"ds": {"source": "synthetic", "layout": "mc_maze", **entry}}}


def test_valid_config_builds_typed_view(tmp_path: Path):
    cfg = pipeline_config(
        {
            "results_dir": "out/",
            "seed": 3,
            "datasets": {
                "mc_rtt": {"source": "dandi", "variants": {"stndt": 4, "ndt": 0}},
                "mine": {"source": "local", "path": str(tmp_path), "layout": "area2_bump"},
                "syn": {"source": "synthetic", "layout": "dmfc_rsg"},
            },
        }
    )
    assert cfg.results_dir == "out" and cfg.seed == 3 and cfg.bin_width_ms == 5
    assert cfg.datasets["mc_rtt"].layout == "mc_rtt" and cfg.datasets["mc_rtt"].members == 4
    assert cfg.datasets["mc_rtt"].variants == {"stndt": 4, "no_contrast": 4}  # ndt: 0 is not trained
    assert cfg.by_source("local") == ["mine"] and cfg.datasets["syn"].family == "dmfc_rsg"
    assert cfg.datasets["mine"].space_name == "area2_bump"


@pytest.mark.parametrize(
    "config, key",
    [
        (_cfg(layout="mc_mazee"), "datasets.ds.layout"),
        (_cfg(source="ftp"), "datasets.ds.source"),
        (_cfg(members=3), "datasets.ds.members"),
        (_cfg(variants={"stndt": 0}), "datasets.ds.variants.stndt"),
        (_cfg(variants={"ndtt": 2}), "datasets.ds.variants.ndtt"),
        ({"variants": {"ndt": -1}, **_cfg()}, "variants.ndt"),
        (_cfg(search={"method": "grid"}), "datasets.ds.search.method"),
        ({"search": {"wave_size": 0}, **_cfg()}, "search.wave_size"),
        ({"training": {"max_epoch": 4}, **_cfg()}, "training.max_epoch"),
        ({"training": {"patience": -1}, **_cfg()}, "training.patience"),
        (_cfg(training={"batch_size": "big"}), "datasets.ds.training.batch_size"),
        ({"search_overrides": {"n_layer": 1}, **_cfg()}, "search_overrides.n_layer"),
        (_cfg(search_overrides={"lr": {"low": 1.0, "high": 0.1}}), "datasets.ds.search_overrides.lr"),
        ({"search_overrides": {"mask_ratio": 3.0}, **_cfg()}, "search_overrides.mask_ratio"),
        (_cfg(colour="red"), "datasets.ds.colour"),
        (_cfg(synthetic={"n_trainn": 3}), "datasets.ds.synthetic.n_trainn"),
        (_cfg(path="/x"), "datasets.ds.path"),
        ({"datasets": {"ds": {"source": "local", "layout": "mc_maze"}}}, "datasets.ds.path"),
        ({"datasets": {"ds": {"source": "local", "layout": "mc_maze", "path": "/no/such/dir"}}}, "datasets.ds.path"),
        ({"datasets": {"my_data": {"source": "dandi"}}}, "datasets.my_data.layout"),
        ({"bin_width_ms": 7, **_cfg()}, "bin_width_ms"),
        ({"datasets": {}}, "datasets"),
    ],
)
def test_bad_values_name_the_key(config, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        pipeline_config(config)


@pytest.mark.parametrize(
    "config, key",
    [
        ({"training": {"lr": 0.05}, **_cfg()}, "training.lr"),
        (_cfg(training={"dropout": 0.1}), "datasets.ds.training.dropout"),
    ],
)
def test_a_fixed_training_value_of_a_searched_setting_is_refused(config, key):
    # lr and dropout are ranges in the mc_maze space: fixing them under `training` would override every
    # member's draw while the search goes on proposing them (and fail only after the first wave)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.") + ".*is searched.*search_overrides"):
        pipeline_config(config)
    # the same value as a search override fixes it for the search too, and is accepted
    fixed = {"search_overrides": {key.rsplit(".", 1)[1]: 0.05}, **_cfg()}
    assert pipeline_config(fixed).datasets["ds"].training == {}


def test_dataset_settings_replace_the_global_ones():
    cfg = pipeline_config(
        {
            "training": {"patience": 3000, "max_epochs": 50},
            "variants": {"stndt": 5, "ndt": 2},
            "search": {"method": "bayes", "wave_size": 4},
            "datasets": {
                "a": {
                    "source": "dandi",
                    "layout": "mc_rtt",
                    "training": {"patience": 2500},
                    "variants": {"ndt": 0},
                    "search": {"wave_size": 2},
                },
                "b": {"source": "dandi", "layout": "dmfc_rsg"},
            },
        }
    )
    a, b = cfg.datasets["a"], cfg.datasets["b"]
    assert a.training == {"patience": 2500, "max_epochs": 50} and b.training == {"patience": 3000, "max_epochs": 50}
    assert a.variants == {"stndt": 5} and b.variants == {"stndt": 5, "ndt": 2}
    assert a.search == {"method": "bayes", "wave_size": 2} and b.search == {"method": "bayes", "wave_size": 4}


def test_shipped_configs_are_valid():
    import yaml

    root = Path(__file__).resolve().parents[1]
    for name in ("config.yaml", "paper.yaml", "fidelity.yaml"):
        pipeline_config(yaml.safe_load((root / "config" / name).read_text()), root=root)
    paper = pipeline_config(yaml.safe_load((root / "config" / "paper.yaml").read_text()), root=root)
    assert {d.variants["stndt"] for d in paper.datasets.values()} == {120}
    assert paper.datasets["dmfc_rsg"].training["patience"] == 4000
    assert paper.datasets["area2_bump"].training["patience"] == 2500
    # the reference's NUM_UPDATES (epoch cap and cosine horizon): 40,001 for area2_bump, 50,501 elsewhere
    assert {d: c.training["max_epochs"] for d, c in paper.datasets.items() if d in ("area2_bump", "mc_maze")} == {
        "area2_bump": 40001,
        "mc_maze": 50501,
    }
    assert {d.holdout for d in paper.datasets.values()} == {0.0}  # the authors selected on every val trial
    assert all(d.training["bf16"] is False for d in paper.datasets.values())


def test_config_readme_lists_the_defaults_of_stndt_config():
    """stndt/config.py is the one home of the config's defaults (the schema has none); the table of
    config/README.md must show the same values, so a changed default cannot leave the docs behind."""
    import yaml

    from stndt import config as c
    from stndt import evalai_settings as ev
    from stndt.datasets import NLB_EVALAI_CHALLENGE

    readme = (Path(__file__).resolve().parents[1] / "config" / "README.md").read_text()
    shown = {}
    for line in readme.splitlines():
        cells = [x.strip() for x in line.split("|")]
        if len(cells) > 3 and cells[1].startswith("`") and cells[2].startswith("`"):
            shown[cells[1].strip("`")] = cells[2].strip("`")
    expected = {
        "results_dir": c.DEFAULT_RESULTS_DIR,
        "seed": c.DEFAULT_SEED,
        "bin_width_ms": c.DEFAULT_BIN_WIDTH_MS,
        "search_spaces": c.DEFAULT_SEARCH_SPACES,
        "variants": c.DEFAULT_VARIANTS,
        "search.method": c.DEFAULT_SEARCH["method"],
        "search.wave_size": c.DEFAULT_SEARCH["wave_size"],
        "resources.train": c.DEFAULT_TRAIN_RESOURCES,
        "evalai.challenge": NLB_EVALAI_CHALLENGE,
        "evalai.host": ev.EVALAI_HOST,
        "evalai.method_name": ev.EVALAI_METHOD_NAME,
    }
    assert {k: yaml.safe_load(shown[k]) if k in shown else None for k in expected} == expected
    schema = yaml.safe_load(
        (Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml").read_text()
    )

    def defaults(node) -> list:
        if isinstance(node, dict):
            return (["default"] if "default" in node else []) + [d for v in node.values() for d in defaults(v)]
        return []

    assert defaults(schema) == []  # the schema holds no default value (one home: stndt/config.py)


def test_a_minimal_config_gets_the_defaults(tmp_path):
    from stndt import config as c

    cfg = pipeline_config(
        {"datasets": {"d": {"source": "synthetic", "layout": "mc_maze"}}, "resources": {"train": {"gpu": 1}}},
        root=Path(__file__).resolve().parents[1],
    )
    assert (cfg.results_dir, cfg.seed, cfg.bin_width_ms) == (
        c.DEFAULT_RESULTS_DIR,
        c.DEFAULT_SEED,
        c.DEFAULT_BIN_WIDTH_MS,
    )
    assert cfg.datasets["d"].variants == c.DEFAULT_VARIANTS
    assert cfg.train_resources == {**c.DEFAULT_TRAIN_RESOURCES, "gpu": 1}
