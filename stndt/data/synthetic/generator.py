"""`generate`: build a layout's recording, draw its spikes, write the public train/test files and the
hidden recording with the true rates."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

from stndt.data.synthetic.config import TRUE_HELDIN, TRUE_HELDOUT, SyntheticConfig
from stndt.data.synthetic.dmfc import build_dmfc, dmfc_conditions
from stndt.data.synthetic.layouts import behaviour_lag, behaviour_name, raw_file_names, test_file_fields
from stndt.data.synthetic.nwb import write_nwb
from stndt.data.synthetic.reaching import build_reaching
from stndt.data.synthetic.recording import Recording, check_recording
from stndt.data.synthetic.rtt import build_rtt
from stndt.data.synthetic.spikes import CHUNK_MS, poisson_spikes, shared_gain, unit_readout
from stndt.datasets import nlb_dataset

log = logging.getLogger(__name__)

_PROGRESS_MIN_WORK = 5e7  # unit-ms above which generate() shows a progress bar (~10 s)


_BUILDERS: dict[str, Callable[[str, SyntheticConfig, np.random.Generator], Recording]] = {
    "mc_maze": lambda layout, cfg, rng: build_reaching(layout, "mc_maze", cfg, rng),
    "area2_bump": lambda layout, cfg, rng: build_reaching(layout, "area2_bump", cfg, rng),
    "mc_rtt": build_rtt,
    "dmfc_rsg": build_dmfc,
}


def _check_cfg_for_layout(cfg: SyntheticConfig, layout: str, family: str) -> None:
    """Sizes a layout's metrics need; fail before generating rather than inside nlb_tools' evaluation."""
    if family == "area2_bump" and cfg.n_conditions < 2:
        raise ValueError(
            f"{layout}: SyntheticConfig.n_conditions={cfg.n_conditions}: area2_bump needs >= 2 "
            "(active and bump trials; nlb_tools decodes velocity separately for each)"
        )
    if family == "dmfc_rsg":
        n_groups, _ = dmfc_conditions(cfg.n_conditions)
        for name in ("n_val", "n_test"):
            if getattr(cfg, name) < 2 * n_groups:
                raise ValueError(
                    f"{layout}: SyntheticConfig.{name}={getattr(cfg, name)}: 'tp corr' correlates within each of "
                    f"the {n_groups} (is_eye, theta, is_short) groups, so it needs >= {2 * n_groups} trials "
                    "(or fewer n_conditions)"
                )


def generate(layout: str, raw_dir: Path, hidden_path: Path, cfg: SyntheticConfig = SyntheticConfig()) -> list[Path]:
    """Write a synthetic dataset in `layout`'s NLB format; return [train file, test file, hidden file].

    `raw_dir` gets the public train and test files (it must not hold other .nwb files, since nlb_tools
    loads every .nwb of a folder); `hidden_path` (outside `raw_dir`) gets the whole recording with all
    splits, held-out units of the test trials, behaviour and the true rates.
    """
    ds = nlb_dataset(layout)
    _check_cfg_for_layout(cfg, layout, ds.family)
    raw_dir, hidden_path = Path(raw_dir), Path(hidden_path)
    train_name, test_name = raw_file_names(layout)
    if hidden_path.parent.resolve() == raw_dir.resolve():
        raise ValueError(
            f"{hidden_path}: the hidden file must not be inside raw_dir {raw_dir} "
            "(nlb_tools would load it together with the public files)"
        )
    if raw_dir.exists():
        others = sorted(p.name for p in raw_dir.glob("*.nwb") if p.name not in (train_name, test_name))
        if others:
            raise ValueError(
                f"{raw_dir}: already holds other NWB files {others}; nlb_tools would load them "
                "together with the generated ones"
            )
    rng_sched, rng_units, rng_spikes, rng_gain = (
        np.random.default_rng(s) for s in np.random.SeedSequence(cfg.seed).spawn(4)
    )

    rec = _BUILDERS[ds.family](layout, cfg, rng_sched)
    check_recording(rec, layout)
    n_units = cfg.n_heldin + cfg.n_heldout
    rows = np.concatenate([np.arange(tr["start_time"], tr["stop_time"], 7) for tr in rec.trials])
    readout = unit_readout(rec.latents, rows, n_units, cfg, rng_units)
    gain = shared_gain(rec.n_ms, cfg.gain_sd, rng_gain)
    n_chunks = math.ceil(rec.n_ms / CHUNK_MS)
    bar = tqdm(
        total=n_chunks + 3, desc=f"synthetic {layout}", unit="step", disable=rec.n_ms * n_units < _PROGRESS_MIN_WORK
    )  # default sizes take a few seconds: no bar
    rates, spikes = poisson_spikes(rec.latents, readout, gain, rng_spikes, progress=bar.update)
    heldout = [False] * cfg.n_heldin + [True] * cfg.n_heldout

    behaviour = []
    if (name := behaviour_name(layout)) is not None:
        behaviour = [
            (
                "behavior",
                name,
                rec.behaviour,
                "a.u./s",
                "velocity: linear readout of the latents "
                f"{behaviour_lag(layout)} ms earlier (the layout's behaviour lag) plus motor noise",
            )
        ]
    truth = [
        (
            "truth",
            TRUE_HELDIN,
            rates[:, : cfg.n_heldin],
            "spikes per 1 ms bin",
            "true firing rate of the held-in units (expected count per 1 ms bin)",
        ),
        (
            "truth",
            TRUE_HELDOUT,
            rates[:, cfg.n_heldin :],
            "spikes per 1 ms bin",
            "true firing rate of the held-out units (expected count per 1 ms bin)",
        ),
    ]
    n_first = cfg.n_train + cfg.n_val + cfg.n_none
    first, test = rec.trials[:n_first], rec.trials[n_first:]
    test_cols = {k: v for k, v in rec.columns.items() if k in test_file_fields(layout)}
    ident = f"synthetic-{layout}-seed{cfg.seed}"
    raw_dir.mkdir(parents=True, exist_ok=True)
    train_path, test_path = raw_dir / train_name, raw_dir / test_name
    write_nwb(
        train_path,
        layout=layout,
        identifier=f"{ident}-train",
        description=f"synthetic {layout}: train and val trials",
        trials=first,
        columns=rec.columns,
        spikes_ms=spikes,
        heldout=heldout,
        t0=0,
        t1=rec.cut_ms,
        series=behaviour,
    )
    bar.update()
    write_nwb(
        test_path,
        layout=layout,
        identifier=f"{ident}-test",
        description=f"synthetic {layout}: test trials",
        trials=test,
        columns=test_cols,
        spikes_ms=spikes[: cfg.n_heldin],
        heldout=[False] * cfg.n_heldin,
        t0=rec.cut_ms,
        t1=rec.n_ms,
        series=[],
    )
    bar.update()
    write_nwb(
        hidden_path,
        layout=layout,
        identifier=f"{ident}-hidden",
        description=f"synthetic {layout}: complete recording with true rates",
        trials=rec.trials,
        columns=rec.columns,
        spikes_ms=spikes,
        heldout=heldout,
        t0=0,
        t1=rec.n_ms,
        series=behaviour + truth,
        compress=True,
        notes=json.dumps({"SyntheticConfig": asdict(cfg)}),
    )
    bar.update()
    bar.close()
    log.info("synthetic %s: %d trials, %d units, %.1f s of data", layout, len(rec.trials), n_units, rec.n_ms / 1000)
    return [train_path, test_path, hidden_path]
