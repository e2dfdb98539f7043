"""Do the synthetic datasets look like the real NLB'21 ones where it matters? For every layout, at NLB-like
sizes, the true rates (oracle) against the NLB spike-smoothing baseline, and the data's statistics.

    python benchmarks/synthetic_stats.py [--layouts mc_maze,dmfc_rsg,default] [--quick] [--seed 0]

For each layout (and `default`: every synthetic dataset of config/config.yaml) it generates the data in a
temporary folder and runs the pipeline's own code on it: `stndt.data.tensors.build_phase` (nlb_tools'
tensors and evaluation targets, val and test phases), `stndt.data.synthetic.make_truth` (true rates),
`stndt.evaluate.smoothing.smoothing_rates` with the NLB authors' per-dataset settings (as the workflow's
smoothing rule), and `stndt.evaluate.metrics.score` (nlb_tools' `evaluate`). It prints one markdown table
per layout: oracle and smoothing on co-bps, vel R2 (tp corr for dmfc_rsg, more negative is better), psth
R2 and fp-bps on both phases, then the statistics of the test-phase true rates: percentiles (Hz, every
unit and bin of the train+val and test windows), time above 100 Hz, the share of single-trial rate variance
beyond the condition average, conditions and trials per condition. It exits 1 if the oracle does not beat
smoothing on every metric of every phase (psth R2 by at least PSTH_MARGIN).

Sizes (SIZES below): the real datasets' trials per condition, share of test trials in the PSTH target and
held-in:held-out ratio; fewer units and conditions for the big ones, to run in minutes. `--quick` halves
trials and units; `--real-units` uses the real unit counts (several minutes per layout).
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stndt.data.synthetic import SyntheticConfig, generate, make_truth  # noqa: E402
from stndt.data.tensors import build_phase  # noqa: E402
from stndt.datasets import CO_BPS, FP_BPS, LOWER_IS_BETTER, PSTH_R2, TP_CORR, VEL_R2, nlb_dataset, nlb_key  # noqa: E402
from stndt.evaluate.metrics import score  # noqa: E402
from stndt.evaluate.smoothing import smoothing_rates  # noqa: E402

BIN_MS = 5
PSTH_MARGIN = 0.1  # the oracle's psth R2 must exceed smoothing's by this much ("clearly below")

# Sizes: what decides the oracle-vs-smoothing comparisons is kept from the NLB'21 datasets: trials per
# condition (MC_Maze ~21 train+val and ~5 test; the scaling sizes 27 conditions with 100 test trials, so
# the test trials are 50% / 29% / 17% of the PSTH target's trials for small / medium / large), the held-in
# to held-out ratio (~3:1) and the real unit counts of area2_bump and dmfc_rsg. The MC_Maze-family and
# mc_rtt unit counts are a third of the real ones, and the large datasets have fewer conditions, so that
# nlb_tools' tensor and PSTH code (minutes per real-size dataset) runs all layouts in ~8 min on one core;
# `--real-units` uses the real unit counts (137+45, 122+40, 114+38, 107+35, 98+32).
SIZES: dict[str, dict] = {
    "mc_maze": dict(n_heldin=46, n_heldout=15, n_train=190, n_val=62, n_test=60, n_conditions=12),
    "mc_maze_large": dict(n_heldin=41, n_heldout=13, n_train=194, n_val=65, n_test=52, n_conditions=14),
    "mc_maze_medium": dict(n_heldin=38, n_heldout=13, n_train=98, n_val=32, n_test=52, n_conditions=14),
    "mc_maze_small": dict(n_heldin=36, n_heldout=12, n_train=75, n_val=25, n_test=100, n_conditions=27),
    "mc_rtt": dict(n_heldin=33, n_heldout=11, n_train=300, n_val=100, n_test=100, n_conditions=1),
    "area2_bump": dict(n_heldin=49, n_heldout=16, n_train=273, n_val=91, n_test=100, n_conditions=16),
    "dmfc_rsg": dict(n_heldin=40, n_heldout=14, n_train=252, n_val=84, n_test=80, n_conditions=16),
}
REAL_UNITS = {
    "mc_maze": (137, 45),
    "mc_maze_large": (122, 40),
    "mc_maze_medium": (114, 38),
    "mc_maze_small": (107, 35),
    "mc_rtt": (98, 32),
    "area2_bump": (49, 16),
    "dmfc_rsg": (40, 14),
}
DEFAULT = "default"
DEFAULTS = "defaults"  # the mc_maze layout at SyntheticConfig's own defaults (the recommended default-run sizes)


def quick(sizes: dict) -> dict:
    """Half the units, trials and conditions (trials per condition kept)."""
    out = dict(sizes)
    out["n_conditions"] = max(1, sizes["n_conditions"] // 2)
    for k in ("n_heldin", "n_heldout"):
        out[k] = max(4, sizes[k] // 2)
    for k in ("n_train", "n_val", "n_test"):
        out[k] = max(16, sizes[k] // 2)
    return out


def default_datasets() -> dict[str, tuple[str, dict]]:
    """{name: (layout, SyntheticConfig overrides)} of config/config.yaml's synthetic datasets."""
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    return {
        f"{DEFAULT}: {name}": (entry["layout"], dict(entry.get("synthetic") or {}))
        for name, entry in cfg["datasets"].items()
        if entry.get("source") == "synthetic"
    }


def _behaviour_metric(layout: str) -> str:
    return TP_CORR if TP_CORR in nlb_dataset(layout).metrics else VEL_R2


def _beats(metric: str, oracle: float, smooth: float) -> bool:
    if metric in LOWER_IS_BETTER:
        return oracle < smooth
    return oracle > smooth + (PSTH_MARGIN if metric == PSTH_R2 else 0.0)


def _shift(trial: np.ndarray, jitter: int) -> np.ndarray:
    """Undo nlb_tools' dmfc_rsg eval jitter as its eval_psth does."""
    if jitter == 0:
        return trial
    pad = np.full((abs(jitter), trial.shape[1]), np.nan)
    return np.vstack([pad, trial[:-jitter]]) if jitter > 0 else np.vstack([trial[-jitter:], pad])


def rate_statistics(truth: dict, targets: dict) -> dict:
    """Statistics of the test phase's true rates (expected spikes per bin) and its conditions."""
    rates = [np.concatenate([truth[f"{w}_rates_heldin"], truth[f"{w}_rates_heldout"]], -1) for w in ("train", "eval")]
    hz = np.concatenate([r.reshape(-1, r.shape[-1]) for r in rates]) * 1000.0 / BIN_MS
    hz = hz[np.isfinite(hz).all(axis=1)]
    stats = {
        "pct": np.percentile(hz, [50, 90, 99, 99.9]),
        "max": float(hz.max()),
        "above100": float((hz > 100).mean()),
        "beyond": math.nan,
        "conditions": 0,
        "per_cond": "n/a",
    }
    if "eval_cond_idx" not in targets:
        return stats
    ev, cond_idx = rates[1], targets["eval_cond_idx"]
    jitter = np.asarray(targets.get("eval_jitter", np.zeros(len(ev), int))).astype(int)
    within = total = 0.0
    aligned_all = []
    for idx in cond_idx:
        if len(idx) < 2:
            continue
        trials = np.stack([_shift(ev[i], jitter[i]) for i in idx])  # (k, time, units)
        k = len(idx)
        within += np.nansum((trials - np.nanmean(trials, axis=0)) ** 2) * k / (k - 1)  # unbiased
        aligned_all.append(trials)
    allt = np.concatenate(aligned_all)
    total = np.nansum((allt - np.nanmean(allt, axis=(0, 1))) ** 2)
    train_n = [len(i) for i in targets["train_cond_idx"]]
    eval_n = [len(i) for i in cond_idx]
    stats.update(
        beyond=within / total, conditions=len(cond_idx), per_cond=f"{np.median(train_n):g} / {np.median(eval_n):g}"
    )
    return stats


def run_layout(name: str, layout: str, sizes: dict, seed: int) -> tuple[str, bool]:
    info = nlb_dataset(layout)
    cfg = replace(SyntheticConfig(), **{**sizes, "seed": seed})
    key = nlb_key(layout, BIN_MS)
    start = time.perf_counter()
    rows, ok, stats = [], True, None
    with tempfile.TemporaryDirectory(prefix="synthetic_stats_") as tmp:
        tmp = Path(tmp)
        hidden = tmp / "truth" / "full.nwb"
        generate(layout, tmp / "raw", hidden, cfg)
        truth = make_truth(hidden, layout, BIN_MS)
        for phase in ("val", "test"):
            data = build_phase(tmp / "raw", layout, phase, BIN_MS, hidden)
            targets = data["targets"]
            smooth = smoothing_rates(data, layout, BIN_MS, kern_sd_ms=info.smooth_kern_sd_ms, alpha=info.smooth_alpha)
            scores = {
                "oracle": score(targets, truth[phase], layout, BIN_MS),
                "smoothing": score(targets, smooth, layout, BIN_MS),
            }
            for method, s in scores.items():
                rows.append((phase, method, s))
            for m in info.metrics:
                if not _beats(m, scores["oracle"][m], scores["smoothing"][m]):
                    ok = False
                    rows.append((phase, f"FAIL: oracle does not beat smoothing on {m}", {}))
            if phase == "test":
                stats = rate_statistics(truth["test"][key], targets[key])
    metrics = [CO_BPS, _behaviour_metric(layout), PSTH_R2, FP_BPS]
    lines = [
        f"### {name} ({layout}): {cfg.n_heldin}+{cfg.n_heldout} units, {cfg.n_train}/{cfg.n_val}/"
        f"{cfg.n_test} train/val/test trials, {cfg.n_conditions} conditions"
        + ("" if layout != "mc_rtt" else " (mc_rtt has none: continuous reaching)"),
        "",
        "| phase | method | " + " | ".join(metrics) + " |",
        "|---|---|" + "---|" * len(metrics),
    ]
    for phase, method, s in rows:
        cells = [f"{s[m]:.3f}" if m in s else ("n/a" if s else "") for m in metrics]
        lines.append(f"| {phase} | {method} | " + " | ".join(cells) + " |")
    p = stats["pct"]
    lines += [
        "",
        "| statistic (test phase, true rates) | value |",
        "|---|---|",
        f"| rate percentiles 50 / 90 / 99 / 99.9, max (Hz) | {p[0]:.1f} / {p[1]:.1f} / {p[2]:.1f} / "
        f"{p[3]:.1f}, {stats['max']:.1f} (soft ceiling {cfg.max_rate_hz:g}) |",
        f"| time above 100 Hz | {100 * stats['above100']:.2f}% |",
        "| single-trial rate variance beyond the condition average | "
        + ("n/a" if math.isnan(stats["beyond"]) else f"{100 * stats['beyond']:.0f}%")
        + " |",
        f"| conditions (PSTH) | {stats['conditions'] or 'n/a'} |",
        f"| trials per condition: train+val / test (median) | {stats['per_cond']} |",
        f"| oracle beats smoothing on every metric, both phases | {'yes' if ok else 'NO'} |",
        f"| seconds (1 core) | {time.perf_counter() - start:.0f} |",
        "",
    ]
    return "\n".join(lines), ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--layouts",
        default=",".join([*SIZES, DEFAULT, DEFAULTS]),
        help=f"comma-separated layouts; '{DEFAULT}': config/config.yaml's synthetic datasets; "
        f"'{DEFAULTS}': the mc_maze layout at SyntheticConfig's defaults",
    )
    ap.add_argument("--quick", action="store_true", help="half the trials and units")
    ap.add_argument("--real-units", action="store_true", help="the real datasets' unit counts (slow)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    jobs: dict[str, tuple[str, dict]] = {}
    for layout in [x.strip() for x in args.layouts.split(",") if x.strip()]:
        if layout == DEFAULT:
            jobs.update(default_datasets())
        elif layout == DEFAULTS:
            jobs["SyntheticConfig defaults"] = ("mc_maze", {})
        elif layout in SIZES:
            sizes = dict(SIZES[layout])
            if args.real_units:
                sizes["n_heldin"], sizes["n_heldout"] = REAL_UNITS[layout]
            jobs[layout] = (layout, quick(sizes) if args.quick else sizes)
        else:
            ap.error(f"unknown layout {layout!r}; expected some of {', '.join([*SIZES, DEFAULT, DEFAULTS])}")
    all_ok = True
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas / pynwb / sklearn chatter inside nlb_tools
        for name, (layout, sizes) in jobs.items():
            text, ok = run_layout(name, layout, sizes, args.seed)
            all_ok &= ok
            print(text, flush=True)
    print(f"total: {time.perf_counter() - start:.0f} s; oracle beats smoothing everywhere: {'yes' if all_ok else 'NO'}")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
