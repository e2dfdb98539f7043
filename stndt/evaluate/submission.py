"""The EvalAI submission file: write it atomically, then re-read it and check it against the inputs.

Format (nlb_tools'): one HDF5 group named nlb_key(layout, bin_width) holding the six float32 rate
arrays. Shapes follow the phase's input tensors: train arrays over the phase's train trials (for the
test phase: train + val splits), eval arrays over the eval (test) trials, forward arrays with the
forward length of `train_spikes_*_forward`. Rates must be finite and > 0 (spikes per bin).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import h5py
import numpy as np
from nlb_tools.make_tensors import h5_to_dict

from stndt.datasets import LAYOUTS, SUPPORTED_BIN_WIDTHS_MS, nlb_key
from stndt.evaluate.metrics import RATE_KEYS
from stndt.io import load_h5, read_h5_attrs, save_h5

TensorsLike = Mapping | str | os.PathLike


class SubmissionError(ValueError):
    """A submission (file or dict) that EvalAI would reject or mis-score."""


def expected_shapes(tensors: Mapping) -> dict[str, tuple[int, int, int]]:
    """Shape each rate array must have, derived from the phase's input tensors."""
    need = ("train_spikes_heldin", "train_spikes_heldout", "train_spikes_heldin_forward", "eval_spikes_heldin")
    for k in need:
        if k not in tensors:
            raise KeyError(f"tensors: missing '{k}' (needed to check submission shapes)")
    n_tr, t_len, n_in = np.shape(tensors["train_spikes_heldin"])
    n_out = np.shape(tensors["train_spikes_heldout"])[2]
    t_fp = np.shape(tensors["train_spikes_heldin_forward"])[1]
    n_ev, t_ev = np.shape(tensors["eval_spikes_heldin"])[:2]
    return {
        "train_rates_heldin": (n_tr, t_len, n_in),
        "train_rates_heldout": (n_tr, t_len, n_out),
        "eval_rates_heldin": (n_ev, t_ev, n_in),
        "eval_rates_heldout": (n_ev, t_ev, n_out),
        "eval_rates_heldin_forward": (n_ev, t_fp, n_in),
        "eval_rates_heldout_forward": (n_ev, t_fp, n_out),
    }


def check_rates(rates: Mapping, tensors: Mapping, key: str, where: str = "rates") -> None:
    """Raise SubmissionError naming the first bad key: missing/extra arrays, shapes, NaN/inf, rates <= 0."""
    if key not in rates or not isinstance(rates[key], Mapping):
        raise SubmissionError(f"{where}: no group '{key}' (found {sorted(map(str, rates))})")
    extra_groups = sorted(k for k in rates if k != key)
    if extra_groups:
        raise SubmissionError(f"{where}: unexpected top-level entries {extra_groups} besides '{key}'")
    grp = rates[key]
    missing = [k for k in RATE_KEYS if k not in grp]
    if missing:
        raise SubmissionError(
            f"{where}/{key}: missing '{missing[0]}'" + (f" (and {missing[1:]})" if len(missing) > 1 else "")
        )
    extra = sorted(set(grp) - set(RATE_KEYS))
    if extra:
        raise SubmissionError(f"{where}/{key}: unexpected key(s) {extra}")
    for k, shape in expected_shapes(tensors).items():
        arr = np.asarray(grp[k])
        if arr.shape != shape:
            raise SubmissionError(f"{where}/{key}/{k}: shape {arr.shape}, expected {shape} from the input tensors")
        if not np.issubdtype(arr.dtype, np.floating):
            raise SubmissionError(f"{where}/{key}/{k}: dtype {arr.dtype}, expected floating point")
        if not np.isfinite(arr).all():
            raise SubmissionError(f"{where}/{key}/{k}: {int((~np.isfinite(arr)).sum())} NaN/inf rate(s)")
        if (arr <= 0).any():
            raise SubmissionError(f"{where}/{key}/{k}: {int((arr <= 0).sum())} rate(s) <= 0 (min {arr.min():g})")


def _tensors_and_attrs(tensors: TensorsLike) -> tuple[Mapping, dict]:
    if isinstance(tensors, (str, os.PathLike)):
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in read_h5_attrs(tensors).items()}
        return load_h5(tensors), attrs
    return tensors, {}


def _key(layout: str | None, bin_width_ms: int | None, attrs: dict, found: list[str], path) -> str:
    layout = layout or attrs.get("layout")
    bin_width_ms = bin_width_ms or attrs.get("bin_width_ms")
    if layout is not None and bin_width_ms is not None:
        return nlb_key(str(layout), int(bin_width_ms))
    valid = {nlb_key(lay, bw) for lay in LAYOUTS for bw in SUPPORTED_BIN_WIDTHS_MS}
    groups = [g for g in found if g in valid]
    if len(groups) != 1:
        raise SubmissionError(f"{path}: cannot tell the dataset group (found {found}); pass layout and bin width")
    return groups[0]


def write_submission(
    rates_test: Mapping, path: str | os.PathLike, tensors_test: TensorsLike, layout: str, bin_width_ms: int
) -> None:
    """Check the test-phase rates against the test tensors, write the submission atomically, re-check it."""
    key = nlb_key(layout, bin_width_ms)
    tensors, _ = _tensors_and_attrs(tensors_test)
    if "eval_rates_heldout" in rates_test and not isinstance(rates_test["eval_rates_heldout"], Mapping):
        rates_test = {key: rates_test}
    check_rates(rates_test, tensors, key, where="submission rates")
    data = {key: {k: np.asarray(rates_test[key][k], dtype=np.float32) for k in RATE_KEYS}}
    # float32 rates may round a tiny positive value to 0: check again after the cast.
    check_rates(data, tensors, key, where="submission rates (float32)")
    save_h5(path, data)
    check_submission(path, tensors, layout, bin_width_ms)


def check_submission(
    path: str | os.PathLike, tensors_test: TensorsLike, layout: str | None = None, bin_width_ms: int | None = None
) -> None:
    """Re-read a submission with nlb_tools' own reader and verify it against the test input tensors."""
    tensors, attrs = _tensors_and_attrs(tensors_test)
    try:
        with h5py.File(path, "r") as f:
            data = h5_to_dict(f)
    except OSError as e:
        raise SubmissionError(f"{path}: not a readable HDF5 file ({e})") from e
    key = _key(layout, bin_width_ms, attrs, sorted(data), path)
    check_rates(data, tensors, key, where=str(path))
