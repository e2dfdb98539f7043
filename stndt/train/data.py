"""A phase's tensors file as training reads it: the arrays, checked, and what the model sees of them.

`load_phase_tensors` reads `{ds}/tensors/{phase}.h5` (nlb_tools key names; held-out spikes of the eval
trials from `targets/{nlb_key}/`) and stops with an error naming the file and key when a dataset or
attribute is missing, not 3-D, not finite, or inconsistent in trials / bins / neurons.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from stndt.datasets import nlb_key
from stndt.evaluate.holdout import HOLDOUT_KEY

TENSOR_KEYS: tuple[str, ...] = (
    "train_spikes_heldin",
    "train_spikes_heldout",
    "train_spikes_heldin_forward",
    "train_spikes_heldout_forward",
    "eval_spikes_heldin",
)


@dataclass(frozen=True)
class PhaseTensors:
    """One phase's tensors file, as arrays (trials, bins, neurons)."""

    path: Path
    nlb_key: str
    train_heldin: np.ndarray
    train_heldout: np.ndarray
    train_heldin_forward: np.ndarray
    train_heldout_forward: np.ndarray
    eval_heldin: np.ndarray
    eval_heldout: np.ndarray | None  # targets/{nlb_key}/eval_spikes_heldout when present
    # eval trials set aside from every selection (stndt.evaluate.holdout); validation never reads them
    holdout: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @property
    def selection(self) -> np.ndarray:
        """Eval trials that validation (best epoch, early stopping, the search objective) may read."""
        return np.setdiff1d(np.arange(len(self.eval_heldin)), self.holdout)

    @property
    def select_heldin(self) -> np.ndarray:
        return self.eval_heldin if not self.holdout.size else self.eval_heldin[self.selection]

    @property
    def select_heldout(self) -> np.ndarray | None:
        if self.eval_heldout is None or not self.holdout.size:
            return self.eval_heldout
        return self.eval_heldout[self.selection]

    @property
    def shapes(self) -> dict[str, int]:
        return {
            "n_heldin": int(self.train_heldin.shape[2]),
            "n_heldout": int(self.train_heldout.shape[2]),
            "t_bins": int(self.train_heldin.shape[1]),
            "t_forward": int(self.train_heldin_forward.shape[1]),
        }


def _attr(f: h5py.File, name: str, path: Path) -> Any:
    if name not in f.attrs:
        raise ValueError(f"{path}: missing file attribute '{name}' (expected layout, bin_width_ms, phase)")
    value = f.attrs[name]
    if isinstance(value, bytes):
        value = value.decode()
    return value.item() if isinstance(value, np.generic) else value


def load_phase_tensors(path: str | Path, need_eval_heldout: bool = False) -> PhaseTensors:
    """Read and check a `{ds}/tensors/{phase}.h5` file; errors name the file and key."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: tensors file does not exist")
    with h5py.File(path, "r") as f:
        key = nlb_key(str(_attr(f, "layout", path)), int(_attr(f, "bin_width_ms", path)))
        arrays = {}
        for k in TENSOR_KEYS:
            if k not in f or not isinstance(f[k], h5py.Dataset):
                raise ValueError(f"{path}: missing dataset '{k}'")
            arrays[k] = np.asarray(f[k][()], dtype=np.float32)
        eval_heldout = None
        target = f"targets/{key}/eval_spikes_heldout"
        if target in f:
            eval_heldout = np.asarray(f[target][()], dtype=np.float32)
        elif "eval_spikes_heldout" in f:
            eval_heldout = np.asarray(f["eval_spikes_heldout"][()], dtype=np.float32)
        holdout = (
            np.asarray(f[HOLDOUT_KEY][()], dtype=np.int64).reshape(-1)
            if HOLDOUT_KEY in f
            else np.zeros(0, dtype=np.int64)
        )
    if need_eval_heldout and eval_heldout is None:
        raise ValueError(f"{path}: missing '{target}' (held-out spikes of the eval trials, needed for validation)")
    for k, a in arrays.items():
        if a.ndim != 3:
            raise ValueError(f"{path}: '{k}' must be 3-D (trials, bins, neurons), got shape {a.shape}")
        if not np.isfinite(a).all():
            raise ValueError(f"{path}: '{k}' has NaN/inf entries")
    tin, tout = arrays["train_spikes_heldin"], arrays["train_spikes_heldout"]
    fin, fout = arrays["train_spikes_heldin_forward"], arrays["train_spikes_heldout_forward"]
    ein = arrays["eval_spikes_heldin"]
    checks = [
        ("train_spikes_heldout", tout.shape[:2], tin.shape[:2]),
        ("train_spikes_heldin_forward", (fin.shape[0], fin.shape[2]), (tin.shape[0], tin.shape[2])),
        (
            "train_spikes_heldout_forward",
            (fout.shape[0], fout.shape[1], fout.shape[2]),
            (tin.shape[0], fin.shape[1], tout.shape[2]),
        ),
        ("eval_spikes_heldin", ein.shape[1:], tin.shape[1:]),
    ]
    if eval_heldout is not None:
        checks.append((target, eval_heldout.shape, (ein.shape[0], ein.shape[1], tout.shape[2])))
    for name, got, want in checks:
        if tuple(got) != tuple(want):
            raise ValueError(
                f"{path}: '{name}' has shape {tuple(got)} where {tuple(want)} was expected "
                "(trials / bins / neurons inconsistent with train_spikes_heldin)"
            )
    if holdout.size and (holdout.min() < 0 or holdout.max() >= len(ein) or holdout.size >= len(ein)):
        raise ValueError(f"{path}: '{HOLDOUT_KEY}' must index some but not all of the {len(ein)} eval trials")
    return PhaseTensors(path, key, tin, tout, fin, fout, ein, eval_heldout, holdout)


def load_train_phases(tensors_val: Path, tensors_test: Path | None) -> tuple[PhaseTensors, PhaseTensors | None]:
    """The val-phase file (with the eval trials' held-out spikes, for validation) and, if given, the
    test-phase file, which must have the val file's bins and neurons."""
    val = load_phase_tensors(tensors_val, need_eval_heldout=True)
    test = None
    if tensors_test is not None:
        test = load_phase_tensors(tensors_test)
        if test.shapes != val.shapes:
            raise ValueError(
                f"{tensors_test}: shapes {test.shapes} differ from the val-phase file "
                f"{tensors_val} ({val.shapes}); both phases must have the same bins and neurons"
            )
    return val, test


def full_counts(p: PhaseTensors) -> np.ndarray:
    """Training targets (trials, T + T_fp, N_in + N_out): held-in | held-out, trial bins then forward."""
    trial = np.concatenate([p.train_heldin, p.train_heldout], axis=2)
    forward = np.concatenate([p.train_heldin_forward, p.train_heldout_forward], axis=2)
    return np.concatenate([trial, forward], axis=1)


def model_input(heldin: np.ndarray, n_heldout: int, t_forward: int) -> np.ndarray:
    """Held-in spikes padded with zero held-out columns and zero forward bins (what the model sees)."""
    return np.pad(heldin, ((0, 0), (0, t_forward), (0, n_heldout)))
