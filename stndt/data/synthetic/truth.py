"""`make_truth`: the true rates of a hidden synthetic recording, windowed by nlb_tools' own tensor
functions into the NLB submission layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stndt.data.synthetic.config import TRUE_HELDIN, TRUE_HELDOUT
from stndt.datasets import PHASE_SPLITS, nlb_dataset, nlb_key


def _session_layout(path: Path) -> str | None:
    """The layout a synthetic file was generated for (its NWB session id)."""
    from pynwb import NWBHDF5IO

    try:
        with NWBHDF5IO(str(path), "r") as io:
            return io.read().session_id
    except Exception as e:  # h5py / hdmf raise many types for truncated or non-NWB files
        raise ValueError(f"{path}: cannot be read as an NWB file: {e}") from e


def make_truth(hidden_path: Path, layout: str, bin_width_ms: int) -> dict:
    """True rates in the NLB submission format, per phase: {'val': {nlb_key: {...}}, 'test': {...}}.

    Built by nlb_tools' own tensor functions with the true-rate fields in place of the spikes, so trial
    order, windows, dmfc_rsg jitter and forward bins match the tensors built from the public files:
    train_rates_* from make_train_input_tensors(train split), eval_rates_* from make_eval_input_tensors
    (eval split), eval_rates_*_forward from make_eval_target_tensors' forward windows. Rates are expected
    spikes per bin (float32).
    """
    from nlb_tools.make_tensors import make_eval_input_tensors, make_eval_target_tensors, make_train_input_tensors
    from nlb_tools.nwb_interface import NWBDataset

    nlb_dataset(layout)
    hidden_path = Path(hidden_path)
    if not hidden_path.exists():
        raise FileNotFoundError(f"{hidden_path}: hidden synthetic recording does not exist")
    made_for = _session_layout(hidden_path)
    if made_for != layout:
        raise ValueError(f"{hidden_path}: generated for layout {made_for!r}, not {layout!r}")
    dataset = NWBDataset(str(hidden_path))
    present = set(dataset.data.columns.get_level_values(0))
    missing = {TRUE_HELDIN, TRUE_HELDOUT, "spikes", "heldout_spikes"} - present
    if missing:
        raise ValueError(f"{hidden_path}: lacks field(s) {sorted(missing)}; not a hidden synthetic recording")
    dataset.resample(bin_width_ms)
    if dataset.bin_width != bin_width_ms:
        raise RuntimeError(f"{hidden_path}: nlb_tools resample({bin_width_ms}) left bin width {dataset.bin_width}")
    key = nlb_key(layout, bin_width_ms)
    both = {"spk_field": TRUE_HELDIN, "hospk_field": TRUE_HELDOUT}

    def eval_windows(split: str, fld: str) -> np.ndarray:
        upd = {"spk_field": fld, "hospk_field": fld}
        return make_eval_input_tensors(dataset, layout, trial_split=split, update_params=upd, save_file=False)[
            "eval_spikes_heldin"
        ]

    out: dict = {}
    for phase, (train_split, eval_split) in PHASE_SPLITS.items():
        train = make_train_input_tensors(dataset, layout, trial_split=train_split, update_params=both, save_file=False)
        forward = make_eval_target_tensors(
            dataset,
            layout,
            train_trial_split=train_split,
            eval_trial_split=eval_split,
            update_params=both,
            save_file=False,
        )[key]
        rates = {
            "train_rates_heldin": train["train_spikes_heldin"],
            "train_rates_heldout": train["train_spikes_heldout"],
            "eval_rates_heldin": eval_windows(eval_split, TRUE_HELDIN),
            "eval_rates_heldout": eval_windows(eval_split, TRUE_HELDOUT),
            "eval_rates_heldin_forward": forward["eval_spikes_heldin_forward"],
            "eval_rates_heldout_forward": forward["eval_spikes_heldout_forward"],
        }
        for name, arr in rates.items():
            if arr.ndim != 3 or not np.isfinite(arr).all():
                raise RuntimeError(f"{hidden_path}: {phase} {name} has shape {arr.shape} or non-finite values")
        out[phase] = {key: {k: v.astype(np.float32) for k, v in rates.items()}}
    return out
