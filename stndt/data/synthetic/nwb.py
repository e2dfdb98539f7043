"""Writing one span of a synthetic recording as an NLB-layout NWB file (pynwb), atomically."""

from __future__ import annotations

import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from stndt.io import atomic_path

_SESSION_START = datetime(2021, 1, 1, tzinfo=timezone.utc)


def write_nwb(
    path: Path,
    *,
    layout: str,
    identifier: str,
    description: str,
    trials: list[dict],
    columns: dict[str, str],
    spikes_ms: list[np.ndarray],
    heldout: list[bool],
    t0: int,
    t1: int,
    series: list[tuple[str, str, np.ndarray, str, str]],
    compress: bool = False,
    notes: str | None = None,
) -> None:
    """Write one file of the recording's span [t0, t1) ms, shifted so that t0 becomes 0 s.

    series: (processing module, name, data over the whole recording, unit, description). The layout is
    recorded as the session id, so `make_truth` can refuse a recording made for another layout.
    """
    from pynwb import NWBHDF5IO, H5DataIO, NWBFile, TimeSeries

    nwb = NWBFile(
        session_description=description,
        identifier=identifier,
        session_start_time=_SESSION_START,
        session_id=layout,
        notes=notes,
        experiment_description="synthetic data with known firing rates (stndt.data.synthetic)",
    )
    nwb.add_trial_column("split", "NLB split: train, val, test or none")
    for name, desc in columns.items():
        nwb.add_trial_column(name, desc)
    for tr in trials:
        row = {k: ((v - t0) / 1000.0 if k.endswith("_time") else v) for k, v in tr.items() if k in columns}
        nwb.add_trial(
            start_time=(tr["start_time"] - t0) / 1000.0,
            stop_time=(tr["stop_time"] - t0) / 1000.0,
            split=tr["split"],
            **row,
        )
    nwb.units = _units_table(
        spike_times=[(t[(t >= t0) & (t < t1)] - t0) / 1000.0 for t in spikes_ms],
        heldout=heldout,
        end_s=(t1 - t0) / 1000.0,
    )
    modules: dict[str, Any] = {}
    for module, name, data, unit, desc in series:
        if module not in modules:
            modules[module] = nwb.create_processing_module(name=module, description=f"{module} time series")
        values = data[t0:t1]
        if compress:  # smooth float32 rates: gzip level 1 + shuffle saves ~40% for ~1 s per 50 MB
            values = H5DataIO(
                values,
                compression="gzip",
                compression_opts=1,
                shuffle=True,
                chunks=(min(8192, len(values)), values.shape[1]),
            )
        modules[module].add(
            TimeSeries(name=name, data=values, unit=unit, rate=1000.0, starting_time=0.0, description=desc)
        )
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*does not end in '\.nwb'")  # the temporary name
        with NWBHDF5IO(str(tmp), "w") as io:
            io.write(nwb)


def _units_table(spike_times: list[np.ndarray], heldout: list[bool], end_s: float):
    """The units table built from whole columns: `add_unit` per unit makes hdmf convert every spike
    time separately when writing (minutes for large datasets)."""
    from hdmf.common import VectorData, VectorIndex
    from pynwb.misc import Units

    n = len(spike_times)
    times = VectorData(
        name="spike_times", description="spike times (s)", data=np.concatenate(spike_times) if n else np.zeros(0)
    )
    times_index = VectorIndex(
        name="spike_times_index", target=times, data=np.cumsum([len(t) for t in spike_times]).astype(np.uint64)
    )
    obs = VectorData(
        name="obs_intervals",
        description="observation intervals (s): the whole file",
        data=np.tile([[0.0, end_s]], (n, 1)),
    )
    obs_index = VectorIndex(name="obs_intervals_index", target=obs, data=np.arange(1, n + 1, dtype=np.uint64))
    held = VectorData(
        name="heldout",
        description="held-out unit (its spikes are withheld from test inputs)",
        data=np.asarray(heldout, dtype=bool),
    )
    return Units(
        name="units",
        id=np.arange(n),
        columns=[times, times_index, obs, obs_index, held],
        description="sorted units (synthetic)",
    )
