"""Build the model's input and evaluation tensors with nlb_tools, per dataset and phase.

Phase `val`: train trials = split 'train', eval trials = split 'val' (targets always known).
Phase `test`: train trials = splits 'train' + 'val', eval trials = split 'test' (targets known only for
synthetic data, whose generator also writes the complete hidden recording).
Key names are nlb_tools' own; the evaluation targets are nlb_tools' make_eval_target_tensors dict, kept
under the group `targets` so `nlb_tools.evaluation.evaluate` can read it unchanged.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from stndt.data.nwb_checks import NWBLayoutError, check_raw_dir
from stndt.datasets import PHASE_SPLITS, SUPPORTED_BIN_WIDTHS_MS, nlb_dataset, nlb_key
from stndt.io import save_h5

log = logging.getLogger(__name__)


@contextlib.contextmanager
def nlb_step(where: Path, step: str) -> Iterator[None]:
    """Turn any exception escaping nlb_tools into one NWBLayoutError naming the dataset folder (or file)
    and the step, with the original kept as the cause.

    nlb_tools and the pandas/numpy code under it fail on unexpected input with whatever error the line
    that trips raises (IndexError, pandas' InvalidIndexError, AssertionError, ...), naming no file; the
    command line reports only ValueError/OSError/RuntimeError cleanly, so anything else would end the
    rule in a bare traceback.
    """
    try:
        yield
    except Exception as e:
        raise NWBLayoutError(f"{where}: nlb_tools could not {step}: {type(e).__name__}: {e}") from e


def load_binned(path: Path, bin_width_ms: int):
    """Load an NWB file or folder with nlb_tools and rebin it to `bin_width_ms`."""
    from nlb_tools.nwb_interface import NWBDataset

    if bin_width_ms not in SUPPORTED_BIN_WIDTHS_MS:
        raise ValueError(f"bin_width_ms={bin_width_ms}: nlb_tools scores only {SUPPORTED_BIN_WIDTHS_MS} ms bins")
    with nlb_step(path, f"load the NWB data and rebin it to {bin_width_ms} ms"):
        dataset = NWBDataset(str(path))
        dataset.resample(bin_width_ms)
    if dataset.bin_width != bin_width_ms:  # see nlb-tools-notes: a failed resample leaves 1 ms data behind
        raise RuntimeError(f"{path}: nlb_tools resample({bin_width_ms}) left bin width {dataset.bin_width}")
    return dataset


def has_psth(layout: str) -> bool:
    from nlb_tools.make_tensors import PARAMS

    return "psth_params" in PARAMS[layout]


def input_tensors(dataset, layout: str, phase: str) -> dict[str, np.ndarray]:
    """Model inputs of a phase: train trials (held-in, held-out, forward) and eval trials' held-in spikes."""
    from nlb_tools.make_tensors import make_eval_input_tensors, make_train_input_tensors

    train_split, eval_split = PHASE_SPLITS[phase]
    train = make_train_input_tensors(
        dataset, layout, trial_split=train_split, save_file=False, include_forward_pred=True
    )
    evals = make_eval_input_tensors(dataset, layout, trial_split=eval_split, save_file=False)
    return {**train, **evals}


def target_tensors(dataset, layout: str, phase: str) -> dict:
    """nlb_tools' evaluation targets ({nlb_key: {...}}) for the phase's eval trials."""
    from nlb_tools.make_tensors import make_eval_target_tensors

    train_split, eval_split = PHASE_SPLITS[phase]
    return make_eval_target_tensors(
        dataset,
        layout,
        train_trial_split=train_split,
        eval_trial_split=eval_split,
        save_file=False,
        include_psth=has_psth(layout),
    )


def build_phase(raw_dir: Path, layout: str, phase: str, bin_width_ms: int, hidden_path: Path | None = None) -> dict:
    """All tensors of one phase as the nested dict written to `{dataset}/tensors/{phase}.h5`."""
    if phase not in PHASE_SPLITS:
        raise ValueError(f"phase must be one of {sorted(PHASE_SPLITS)}, got {phase!r}")
    nlb_dataset(layout)
    check_raw_dir(raw_dir, layout, need_test=(phase == "test"))
    dataset = load_binned(raw_dir, bin_width_ms)
    with nlb_step(raw_dir, f"build {phase} input tensors for layout {layout}"):
        data = input_tensors(dataset, layout, phase)
    if phase == "val":
        with nlb_step(raw_dir, f"build {phase} evaluation targets for layout {layout}"):
            data["targets"] = target_tensors(dataset, layout, phase)
    elif hidden_path is not None:
        hidden = load_binned(hidden_path, bin_width_ms)
        with nlb_step(hidden_path, f"build {phase} evaluation targets for layout {layout}"):
            data["targets"] = target_tensors(hidden, layout, phase)
        _check_same_trials(data, data["targets"][nlb_key(layout, bin_width_ms)], hidden_path)
    _check_finite(data, raw_dir)
    return data


def _check_same_trials(inputs: dict, targets: dict, hidden_path: Path) -> None:
    n_eval, n_target = len(inputs["eval_spikes_heldin"]), len(targets["eval_spikes_heldout"])
    if n_eval != n_target:
        raise RuntimeError(f"{hidden_path}: {n_target} test trials in the hidden recording, {n_eval} in the test file")


def _check_finite(data: dict, where: Path) -> None:
    for key, value in data.items():
        if isinstance(value, np.ndarray) and key.endswith(("heldin", "heldout", "forward")):
            if not np.isfinite(value).all():
                raise NWBLayoutError(
                    f"{where}: tensor '{key}' has NaN/inf entries (spikes outside obs_intervals "
                    "or inside a trial window?)"
                )


def read_layout(path: Path) -> tuple[str, int]:
    """Layout and bin width of a tensors file, from the attributes `write_phase` stores."""
    from stndt.io import read_h5_attrs

    attrs = read_h5_attrs(path)
    return str(attrs["layout"]), int(attrs["bin_width_ms"])


def window_start_ms(layout: str) -> float:
    """Time of the first eval-tensor bin relative to the alignment event, from nlb_tools' PARAMS
    (the aligned window's start, or minus the front-padded segment length for dmfc_rsg)."""
    from nlb_tools.make_tensors import PARAMS

    p = PARAMS[layout]
    if "align_range" in p["eval_make_params"]:
        return float(p["eval_make_params"]["align_range"][0])
    return -float(p.get("eval_tensor_params", {}).get("seg_len", 0))


def add_holdout(data: dict, layout: str, bin_width_ms: int, fraction: float, seed: int) -> None:
    """Store the val holdout (stndt.evaluate.holdout) in a val phase's tensors: stratified by the
    conditions of nlb_tools' PSTH targets where the layout has them. Nothing is added for fraction 0."""
    from stndt.evaluate.holdout import HOLDOUT_KEY, holdout_trials
    from stndt.evaluate.metrics import normalize_cond_idx

    if fraction == 0:
        return
    targets = data["targets"][nlb_key(layout, bin_width_ms)]
    conds = targets.get("eval_cond_idx")
    conds = None if conds is None else normalize_cond_idx(conds, "targets eval_cond_idx")
    data[HOLDOUT_KEY] = holdout_trials(len(data["eval_spikes_heldin"]), fraction, seed, conds)


def write_phase(path: Path, data: dict, layout: str, phase: str, bin_width_ms: int) -> None:
    """Write the tensors atomically, with layout / phase / bin width as file attributes."""
    save_h5(path, data, attrs={"layout": layout, "phase": phase, "bin_width_ms": bin_width_ms})
