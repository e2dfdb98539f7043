"""Tiny fake tensors files for the training tests (tests/test_train.py, tests/test_pack.py), and the
check that two training runs wrote the same outputs.

The data are in the project's format (written with stndt.io.save_h5): Poisson counts from smooth
low-rank log-rates (3 latent factors driving N_IN + N_OUT neurons), so held-out neurons are
predictable from held-in ones. Imported like conftest: pytest puts tests/ on sys.path.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import torch

from stndt.evaluate.pipeline import EnsembleFiles
from stndt.io import save_h5
from stndt.train.outputs import TIMING_COLUMNS

N_IN, N_OUT, T, T_FP = 14, 6, 24, 6


def ensemble_files(folder: Path) -> EnsembleFiles:
    """build_ensemble's outputs in `folder`, named as the workflow names them."""
    return EnsembleFiles(
        folder / "ensemble.json",
        folder / "ensemble_curve.csv",
        {p: folder / "ensemble" / f"rates_{p}.h5" for p in ("val", "test")},
    )


def member_files(*folders: Path) -> dict[str, dict[str, Path]]:
    """{member id: {file name: path}} of member folders: every file in each, handed over as the workflow's
    rules hand a member's files to a command (stndt.members.MemberFiles)."""
    return {
        Path(d).name: {f.relative_to(d).as_posix(): f for f in sorted(Path(d).rglob("*")) if f.is_file()}
        for d in folders
    }


def fake_trials(rng, n, c, b):
    """n trials of T + T_FP bins: Poisson counts with log-rates b + z @ c, z smooth random sines."""
    t_all, k = T + T_FP, c.shape[0]
    phase = rng.uniform(0, 2 * np.pi, (n, 1, k))
    amp = rng.uniform(0.5, 1.5, (n, 1, k))
    tt = np.arange(t_all)[None, :, None] / t_all
    z = amp * np.sin(2 * np.pi * np.array([1.0, 1.5, 2.3]) * tt + phase)
    return rng.poisson(np.exp(b + z @ c)).astype(np.float32)


def write_phase(path, train, evals, phase, n_in=N_IN):
    """One tensors file (mc_maze layout) from train / eval trials of shape (trials, T + T_FP, neurons)."""
    data = {
        "train_spikes_heldin": train[:, :T, :n_in],
        "train_spikes_heldout": train[:, :T, n_in:],
        "train_spikes_heldin_forward": train[:, T:, :n_in],
        "train_spikes_heldout_forward": train[:, T:, n_in:],
        "eval_spikes_heldin": evals[:, :T, :n_in],
        "targets": {
            "mc_maze": {
                "eval_spikes_heldout": evals[:, :T, n_in:],
                "eval_spikes_heldin_forward": evals[:, T:, :n_in],
                "eval_spikes_heldout_forward": evals[:, T:, n_in:],
            }
        },
    }
    save_h5(path, data, attrs={"layout": "mc_maze", "bin_width_ms": 5, "phase": phase})


def write_tiny_tensors(folder, n_train_val, n_eval_val, n_train_test, n_eval_test, seed=0):
    """folder/val.h5 and folder/test.h5 with the given trial counts; returns (val_path, test_path)."""
    folder = Path(folder)
    rng = np.random.default_rng(seed)
    c = rng.normal(0, 0.9, (3, N_IN + N_OUT))
    b = np.log(rng.uniform(0.15, 0.5, N_IN + N_OUT))
    write_phase(folder / "val.h5", fake_trials(rng, n_train_val, c, b), fake_trials(rng, n_eval_val, c, b), "val")
    write_phase(folder / "test.h5", fake_trials(rng, n_train_test, c, b), fake_trials(rng, n_eval_test, c, b), "test")
    return folder / "val.h5", folder / "test.h5"


def h5_arrays(path):
    """Every dataset of an h5 file, by its path in the file."""
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda n, o: out.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset) else None)
    return out


def log_without_timing(path):
    """train_log.csv as rows of fields (header included), wall-clock columns left out."""
    lines = Path(path).read_text().splitlines()
    keep = [i for i, c in enumerate(lines[0].split(",")) if c not in TIMING_COLUMNS]
    return [[row.split(",")[i] for i in keep] for row in lines]


def _params_without_timing(folder):
    p = json.loads((Path(folder) / "params.json").read_text())
    for k in ("train_seconds", "seconds_per_epoch"):
        p["training"].pop(k)
    return p


def assert_same_member_outputs(ref_dir, run_dir) -> None:
    """The outputs of two runs of a member are equal, wall-clock fields aside: best.pt (epoch, metrics,
    weights bitwise), rates_val.h5 and rates_test.h5 (bitwise), train_log.csv and params.json."""
    ref_dir, run_dir = Path(ref_dir), Path(run_dir)
    a, b = (torch.load(d / "best.pt", weights_only=True) for d in (ref_dir, run_dir))
    assert a["epoch"] == b["epoch"] and a["metrics"] == b["metrics"]
    assert a["model"].keys() == b["model"].keys()
    different = [k for k in a["model"] if not torch.equal(a["model"][k], b["model"][k])]
    assert not different, f"weights differ: {different}"
    for name in ("rates_val.h5", "rates_test.h5"):
        ra, rb = h5_arrays(ref_dir / name), h5_arrays(run_dir / name)
        assert ra.keys() == rb.keys() and all(np.array_equal(ra[k], rb[k]) for k in ra), name
    assert log_without_timing(ref_dir / "train_log.csv") == log_without_timing(run_dir / "train_log.csv")
    assert _params_without_timing(ref_dir) == _params_without_timing(run_dir)


def start_runner(runner: str, *args: str) -> subprocess.Popen:
    """Run a training script (`python -c runner args...`) in a child process with this checkout on its
    path and one thread: the run a kill -9 test kills."""
    repo = Path(__file__).resolve().parents[1]
    env = {
        **os.environ,
        "PYTHONPATH": str(repo) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "OMP_NUM_THREADS": "1",
    }
    return subprocess.Popen(
        [sys.executable, "-c", runner, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )


def kill_when(proc: subprocess.Popen, condition, timeout: float = 60.0) -> None:
    """SIGKILL `proc` as soon as `condition()` holds (e.g. its state file appeared)."""
    t0 = time.monotonic()
    while not condition():
        assert proc.poll() is None, f"run finished before it could be killed: {proc.stderr.read()[-2000:]}"
        assert time.monotonic() - t0 < timeout, "timed out waiting for a state save"
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


#: Training settings of a tiny member (tests/test_train.py, tests/test_candidates.py): seconds per run.
TINY_MEMBER = dict(
    n_layers=1,
    n_heads=2,
    ff_hidden=16,
    context_forward=-1,
    context_backward=-1,
    dropout=0.05,
    dropout_rates=0.05,
    dropout_embedding=0.05,
    batch_size=32,
    lr=5e-3,
    warmup_epochs=5,
    weight_decay=5e-5,
    seed=3,
    contrast_lambda=0.1,
    num_threads=1,
    patience=1000,
    val_every=5,
)
