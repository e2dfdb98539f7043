"""Scoring rate predictions with nlb_tools' own evaluation code.

Every benchmark number reported by the pipeline comes from `nlb_tools.evaluation.evaluate`, called on
in-memory dicts in the NLB file layout ({nlb_key: {...}}). This module only prepares its inputs, checks
them (evaluate() silently skips a dataset it cannot find and then returns `[]`), and flattens its nested
result into {metric name: value} with the names defined once in `stndt.datasets`.

Besides that: `co_bps` (a fast path used only to *rank/choose* ensemble members; it calls nlb_tools'
own `bits_per_spike` on exactly the arrays evaluate() uses), `rate_r2` (ground-truth comparison for
synthetic data) and loaders for targets and rates files.
"""

from __future__ import annotations

import logging
import numbers
import os
import re
from collections.abc import Mapping, Sequence

import h5py
import numpy as np
from nlb_tools import evaluation as nlb_evaluation
from sklearn.metrics import r2_score

from stndt.datasets import (
    CO_BPS,
    FP_BPS,
    LAYOUTS,
    METRICS,
    SCALING_DATASETS,
    SCALING_PREFIX,
    SUPPORTED_BIN_WIDTHS_MS,
    nlb_dataset,
    nlb_key,
)
from stndt.io import load_h5

log = logging.getLogger(__name__)

#: The six arrays of an NLB submission (rates in spikes per bin).
RATE_KEYS: tuple[str, ...] = (
    "train_rates_heldin",
    "train_rates_heldout",
    "eval_rates_heldin",
    "eval_rates_heldout",
    "eval_rates_heldin_forward",
    "eval_rates_heldout_forward",
)
#: Target arrays evaluate() always reads.
REQUIRED_TARGET_KEYS: tuple[str, ...] = ("eval_spikes_heldout", "train_behavior", "eval_behavior")

_PREFIX = re.compile(r"^\[[^\]]+\]\s+")  # "[100] co-bps" -> "co-bps" (MC_Maze scaling sizes)


class EvaluationError(RuntimeError):
    """nlb_tools' evaluation produced no result or lacked a metric the layout defines."""


# ----------------------------------------------------------------------------------------------------
# dict helpers
# ----------------------------------------------------------------------------------------------------
def group(data: Mapping, key: str, what: str) -> Mapping:
    """Return `data[key]` (the dataset's group of a targets / rates dict), with an error naming `what`."""
    if not isinstance(data, Mapping):
        raise TypeError(f"{what}: expected a dict {{'{key}': {{...}}}}, got {type(data).__name__}")
    if key not in data or not isinstance(data[key], Mapping):
        raise KeyError(
            f"{what}: no group '{key}' (found: {sorted(map(str, data))}); "
            f"the group name must be nlb_key(layout, bin_width_ms)"
        )
    return data[key]


def _as_nested(data: Mapping, key: str, marker: str) -> dict:
    """Accept either {key: {...}} or the inner dict itself (recognised by `marker`)."""
    if isinstance(data, Mapping) and marker in data and not isinstance(data[marker], Mapping):
        return {key: data}
    return data  # type: ignore[return-value]


def split_name(layout: str, bin_width_ms: int) -> str:
    """The key under which evaluate() files this dataset's results (`mc_maze_split`, `mc_rtt_20_split`; the
    three scaling sizes share `mc_maze_scaling_split` / `mc_maze_scaling_20_split`)."""
    if layout in SCALING_DATASETS:
        return "mc_maze_scaling_split" if bin_width_ms == 5 else f"mc_maze_scaling_{bin_width_ms}_split"
    return f"{nlb_key(layout, bin_width_ms)}_split"


_SPLIT = re.compile(r"^(?P<name>[a-z0-9_]+?)(?:_(?P<bw>\d+))?_split$")


def parse_split_name(split: str) -> tuple[str, int] | None:
    """(dataset, bin width) of an evaluate() split key, the inverse of `split_name`; the dataset is a layout
    or `mc_maze_scaling`. None for a key evaluate() never writes."""
    found = _SPLIT.match(split) if isinstance(split, str) else None
    if found is None:
        return None
    name, bw = found["name"], int(found["bw"] or 5)
    if (name not in LAYOUTS or name in SCALING_DATASETS) and name != "mc_maze_scaling":
        return None
    return (name, bw) if bw in SUPPORTED_BIN_WIDTHS_MS else None


def _check_layout(layout: str, bin_width_ms: int) -> str:
    nlb_dataset(layout)
    if bin_width_ms not in SUPPORTED_BIN_WIDTHS_MS:
        raise ValueError(f"bin_width_ms={bin_width_ms}: nlb_tools scores only {SUPPORTED_BIN_WIDTHS_MS} ms bins")
    return nlb_key(layout, bin_width_ms)


# ----------------------------------------------------------------------------------------------------
# scoring
# ----------------------------------------------------------------------------------------------------
def _wrong_split(found: list[str], layout: str, bin_width_ms: int) -> str:
    """Why the expected split is not among `found`: another bin width, another dataset, or neither."""
    want = split_name(layout, bin_width_ms)
    want_name = parse_split_name(want)[0]
    parsed = {s: parse_split_name(s) for s in found}
    same_data = [s for s, p in parsed.items() if p and p[0] == want_name]
    if same_data:
        widths = sorted({parsed[s][1] for s in same_data})
        return (
            f"it holds {same_data}: results for {' and '.join(map(str, widths))} ms bins, but the pipeline "
            f"bins at {bin_width_ms} ms (bin_width_ms), whose results nlb_tools names '{want}'"
        )
    other = [s for s, p in parsed.items() if p]
    if other:
        names = sorted({parsed[s][0] for s in other})
        return (
            f"it holds results for {', '.join(names)} ({other}), not for layout {layout} (expected '{want}'): "
            "a result of another dataset"
        )
    return f"it holds {found}, none of them a split name nlb_tools' evaluate() writes (expected '{want}')"


def flatten_result(result, layout: str, bin_width_ms: int, where: str = "nlb_tools evaluate()") -> dict[str, float]:
    """Turn evaluate()'s `[{split_name: {metric: value}}]` into {metric: value}: the one place that maps
    nlb_tools' result names onto the pipeline's metric names (stndt.datasets.METRICS).

    For the MC_Maze scaling sizes evaluate() files all three sizes under one split and prefixes each
    metric with the size's trial count (`[100] co-bps`): this layout's prefix is selected and stripped, so
    every layout uses the same names (a combined submission of the three sizes holds the other two too).
    Any other shape, a duplicated split, a missing split (another dataset or bin width) or an unknown
    metric is an EvaluationError whose message starts with `where` (what the result came from). Values
    are returned as floats; NaN is passed on (evaluate() gives it where a metric is undefined).
    """
    key = nlb_key(layout, bin_width_ms)
    split = split_name(layout, bin_width_ms)
    if not isinstance(result, list):
        raise EvaluationError(
            f"{where}: expected a list of {{split name: {{metric: value}}}} (what nlb_tools' "
            f"evaluate() returns), got {type(result).__name__}"
        )
    if not result:
        raise EvaluationError(
            f"{where}: an empty result for {key}, no split scored (from evaluate() itself: it "
            "found no matching group in targets and rates: wrong nlb_key / bin width, or missing "
            "eval_rates_heldout / eval_spikes_heldout)"
        )
    found: dict = {}
    for i, item in enumerate(result):
        if not isinstance(item, Mapping) or not all(isinstance(v, Mapping) for v in item.values()):
            raise EvaluationError(
                f"{where}: entry {i} is not a {{split name: {{metric: value}}}} mapping: {str(item)[:200]}"
            )
        twice = sorted(set(item) & set(found))
        if twice:
            raise EvaluationError(f"{where}: split {twice} appears twice (which one is the result?)")
        found.update(item)
    if split not in found:
        raise EvaluationError(
            f"{where}: no '{split}' (layout {layout}, {bin_width_ms} ms bins): "
            + _wrong_split(sorted(map(str, found)), layout, bin_width_ms)
        )
    metrics = found[split]
    if layout in SCALING_DATASETS:
        prefix = SCALING_PREFIX[layout] + " "
        sizes = sorted({m.split(" ", 1)[0] for m in metrics if _PREFIX.match(m)})
        bare = sorted(m for m in metrics if not _PREFIX.match(m))
        if bare:
            raise EvaluationError(
                f"{where}: '{split}' holds metric(s) {bare} without the training-set size "
                f"prefix nlb_tools gives every scaling metric (expected e.g. '{prefix}co-bps')"
            )
        metrics = {m[len(prefix) :]: v for m, v in metrics.items() if m.startswith(prefix)}
        if not metrics:
            raise EvaluationError(
                f"{where}: '{split}' holds the scaling size(s) {sizes}, not {prefix.strip()} ({layout})"
            )
    unknown = sorted(set(metrics) - set(METRICS))
    if unknown:
        raise EvaluationError(
            f"{where}: metric(s) {unknown} in '{split}' are unknown to stndt.datasets.METRICS ({', '.join(METRICS)})"
        )
    flat: dict[str, float] = {}
    for name in METRICS:
        if name in metrics:
            value = metrics[name]
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise EvaluationError(f"{where}: '{split}' / '{name}' is {value!r}, not a number")
            flat[name] = float(value)
    return flat


def score(
    targets: Mapping, rates: Mapping, layout: str, bin_width_ms: int, required: Sequence[str] | None = None
) -> dict[str, float]:
    """Score `rates` against `targets` with nlb_tools.evaluation.evaluate; return {metric: value}.

    Both dicts are in the NLB file layout ({nlb_key: {...}}); the inner dict alone is also accepted.
    Only this dataset's group is passed to evaluate(), so unrelated groups cannot leak in.
    `required` (default: every metric the layout defines) must all be present, else EvaluationError:
    a silently missing metric (e.g. no forward rates -> no fp-bps) must never look like a pass.
    """
    key = _check_layout(layout, bin_width_ms)
    targets = _as_nested(targets, key, "eval_spikes_heldout")
    rates = _as_nested(rates, key, "eval_rates_heldout")
    tgt = group(targets, key, "targets")
    rts = group(rates, key, "rates")
    for k in REQUIRED_TARGET_KEYS:
        if k not in tgt:
            raise KeyError(f"targets['{key}']: missing '{k}' (needed by nlb_tools evaluate)")
    for k in ("eval_rates_heldin", "eval_rates_heldout"):
        if k not in rts:
            raise KeyError(f"rates['{key}']: missing '{k}'")
    result = nlb_evaluation.evaluate({key: tgt}, {key: rts})
    metrics = flatten_result(result, layout, bin_width_ms)
    needed = nlb_dataset(layout).metrics if required is None else tuple(required)
    missing = [m for m in needed if m not in metrics]
    if missing:
        raise EvaluationError(
            f"nlb_tools evaluate() gave no {missing} for {key} (got {sorted(metrics)}); "
            "check forward rates / eval_spikes_*_forward, psth + eval_cond_idx and behaviour in the inputs"
        )
    return metrics


def co_bps(targets: Mapping, rates: Mapping, layout: str, bin_width_ms: int) -> float:
    """Co-smoothing bits/spike only, via nlb_tools' own `bits_per_spike` on the arrays evaluate() uses.

    Used to rank members and choose ensemble sizes on trial subsets, where the full evaluate() (ridge
    decoding with a grid search) would be needlessly slow. Reported numbers still come from `score`.
    """
    key = _check_layout(layout, bin_width_ms)
    tgt = group(_as_nested(targets, key, "eval_spikes_heldout"), key, "targets")
    rts = group(_as_nested(rates, key, "eval_rates_heldout"), key, "rates")
    spikes = np.asarray(tgt["eval_spikes_heldout"]).astype("float")
    pred = np.asarray(rts["eval_rates_heldout"]).astype("float")
    if spikes.shape != pred.shape:
        raise ValueError(
            f"rates['{key}']['eval_rates_heldout'] has shape {pred.shape}, targets eval_spikes_heldout {spikes.shape}"
        )
    return float(nlb_evaluation.bits_per_spike(pred, spikes))


def bps_metrics(targets: Mapping, rates: Mapping, layout: str, bin_width_ms: int) -> dict[str, float]:
    """co-bps and (where the targets have forward bins) fp-bps, computed as nlb_tools' evaluate() does
    with its own bits_per_spike: for trial subsets on which evaluate()'s other metrics are undefined."""
    key = _check_layout(layout, bin_width_ms)
    out = {CO_BPS: co_bps(targets, rates, layout, bin_width_ms)}
    tgt = group(_as_nested(targets, key, "eval_spikes_heldout"), key, "targets")
    rts = group(_as_nested(rates, key, "eval_rates_heldout"), key, "rates")
    names = ("eval_spikes_heldin_forward", "eval_spikes_heldout_forward")
    if all(n in tgt for n in names) and all(n.replace("spikes", "rates") in rts for n in names):
        spikes = np.dstack([np.asarray(tgt[n], float) for n in names])
        pred = np.dstack([np.asarray(rts[n.replace("spikes", "rates")], float) for n in names])
        out[FP_BPS] = float(nlb_evaluation.bits_per_spike(pred, spikes))
    return out


def rate_r2(pred_rates: Mapping, true_rates: Mapping, nlb_key_: str | None = None) -> float:
    """R2 of predicted vs true firing rates over the eval trials (held-in and held-out neurons pooled).

    Uses scikit-learn's `r2_score(..., multioutput='variance_weighted')` on (trials*bins, neurons):
    1 - sum of squared errors / sum of per-neuron variances, so near-silent neurons do not dominate.
    Bins where the true rate is NaN are dropped. Both dicts are rates dicts ({nlb_key: {...}} or inner).
    """
    pred = _single_group(pred_rates, nlb_key_, "predicted rates")
    true = _single_group(true_rates, nlb_key_, "true rates")

    def stack(d: Mapping, what: str) -> np.ndarray:
        for k in ("eval_rates_heldin", "eval_rates_heldout"):
            if k not in d:
                raise KeyError(f"{what}: missing '{k}'")
        x = np.concatenate(
            [np.asarray(d["eval_rates_heldin"], float), np.asarray(d["eval_rates_heldout"], float)], axis=-1
        )
        return x.reshape(-1, x.shape[-1])

    p, t = stack(pred, "predicted rates"), stack(true, "true rates")
    if p.shape != t.shape:
        raise ValueError(f"predicted eval rates {p.shape} and true eval rates {t.shape} differ in shape")
    keep = ~np.isnan(t).any(axis=1)
    if not np.isfinite(p[keep]).all():
        raise ValueError("predicted rates: NaN/inf where the true rates are defined")
    return float(r2_score(t[keep], p[keep], multioutput="variance_weighted"))


def _single_group(data: Mapping, key: str | None, what: str) -> Mapping:
    if "eval_rates_heldout" in data and not isinstance(data["eval_rates_heldout"], Mapping):
        return data
    if key is not None:
        return group(data, key, what)
    groups = [k for k, v in data.items() if isinstance(v, Mapping)]
    if len(groups) != 1:
        raise KeyError(f"{what}: expected exactly one dataset group, found {groups}; pass nlb_key_")
    return data[groups[0]]


# ----------------------------------------------------------------------------------------------------
# loading
# ----------------------------------------------------------------------------------------------------
def normalize_cond_idx(value, where: str) -> np.ndarray:
    """Condition index lists as evaluate() wants them: a 1-d object array of int arrays.

    Accepts nlb_tools' object array (1-d of arrays, or 2-d when all conditions have equal trial counts),
    what HDF5 round-trips produce (vlen), a 2-d integer array (one row per condition, negative entries =
    padding) or a group {'0': idx, '1': idx, ...}.
    """
    if isinstance(value, Mapping):
        try:
            items = [value[k] for k in sorted(value, key=int)]
        except ValueError:
            raise ValueError(f"{where}: condition groups must be named 0, 1, ...; got {sorted(value)}") from None
    else:
        arr = np.asarray(value)
        if arr.ndim == 2:  # nlb_tools' own object array is 2-d when every condition has as many trials
            items = [row[row >= 0] for row in arr.astype(np.int64)]
        elif arr.ndim == 1:
            items = list(arr) if arr.dtype == object else [arr]  # a 1-d int array is a single condition
        else:
            raise ValueError(f"{where}: cannot read condition indices of shape {arr.shape} / {arr.dtype}")
    out = np.empty(len(items), dtype=object)
    for i, idx in enumerate(items):
        out[i] = np.asarray(idx, dtype=np.int64).reshape(-1)
    return out


def _normalize_targets(targets: dict, where: str) -> dict:
    for key, grp in targets.items():
        if not isinstance(grp, dict):
            raise ValueError(f"{where}: targets entry '{key}' is not a group")
        for ck in ("eval_cond_idx", "train_cond_idx"):
            if ck in grp:
                grp[ck] = normalize_cond_idx(grp[ck], f"{where}: targets/{key}/{ck}")
    return targets


def has_targets(tensors_path: str | os.PathLike) -> bool:
    """Whether a tensors file holds evaluation targets (val always; test only for synthetic data)."""
    with h5py.File(tensors_path, "r") as f:
        return "targets" in f and len(f["targets"]) > 0


def load_targets(tensors_path: str | os.PathLike) -> dict:
    """The `targets` group of a `{ds}/tensors/{phase}.h5` file: nlb_tools' {nlb_key: {...}} target dict."""
    data = load_h5(tensors_path)
    if "targets" not in data or not data["targets"]:
        raise KeyError(f"{tensors_path}: no 'targets' group (evaluation targets are unknown for this phase)")
    return _normalize_targets(data["targets"], str(tensors_path))


def load_rates(path: str | os.PathLike, phase: str | None = None) -> dict:
    """A rates file in the NLB submission layout ({nlb_key: {six arrays}}).

    `phase` selects the per-phase group of `{ds}/truth.h5` (`truth.h5/{phase}/{nlb_key}/...`).
    """
    data = load_h5(path)
    if phase is not None:
        if phase not in data or not isinstance(data[phase], dict):
            raise KeyError(f"{path}: no group '{phase}' (found {sorted(data)})")
        data = data[phase]
    groups = {k: v for k, v in data.items() if isinstance(v, dict)}
    if not groups:
        raise KeyError(f"{path}: no dataset group with rate arrays")
    for key, grp in groups.items():
        if "eval_rates_heldout" not in grp:
            raise KeyError(f"{path}: group '{key}' lacks 'eval_rates_heldout'")
    return groups
