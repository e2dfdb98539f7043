"""How much of a co-bps difference between two methods is test-trial sampling noise.

Two rates files scored on the same eval trials (e.g. the STNDT best member and the NDT member of the
default run, on the test split) differ by a few thousandths of co-bps; a table cannot order them unless
the difference is larger than what another draw of the same number of test trials would give. This
resamples the eval trials with replacement (paired: the same resample for both methods) and recomputes
co-bps with nlb_tools' own `bits_per_spike` on each resample.

Usage:
  python benchmarks/trial_bootstrap.py results/mc_maze_synth/tensors/test.h5 \
      A=results/mc_maze_synth/variants/.../rates_test.h5 B=... [--n-boot 2000] [--seed 0]
Prints, for every pair of the named rates files, co-bps of each on all trials, the difference, its
bootstrap standard error and 95% percentile interval, and the share of resamples in which A > B.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _heldout(path: str, what: str, name: str) -> np.ndarray:
    from stndt.evaluate.metrics import load_rates, load_targets

    data = load_targets(path) if what == "targets" else load_rates(path)
    (key,) = data.keys()
    return np.asarray(data[key][name], dtype=float)


def main(argv: list[str] | None = None) -> None:
    from nlb_tools.evaluation import bits_per_spike

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("targets", help="tensors file of the phase (its targets group)")
    ap.add_argument("rates", nargs="+", help="NAME=rates file, at least two")
    ap.add_argument("--n-boot", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    named = dict(item.split("=", 1) for item in a.rates)
    spikes = _heldout(a.targets, "targets", "eval_spikes_heldout")
    rates = {k: _heldout(v, "rates", "eval_rates_heldout") for k, v in named.items()}
    n = spikes.shape[0]
    rng = np.random.default_rng(a.seed)
    draws = [rng.integers(0, n, n) for _ in range(a.n_boot)]
    full = {k: float(bits_per_spike(r, spikes)) for k, r in rates.items()}
    boot = {k: np.array([bits_per_spike(r[i], spikes[i]) for i in draws]) for k, r in rates.items()}
    print(f"{n} eval trials, {a.n_boot} paired resamples (seed {a.seed})\n")
    print("| A | B | co-bps A | co-bps B | A - B | SE | 95% interval | P(A > B) |")
    print("|---|---|---|---|---|---|---|---|")
    for x, y in itertools.combinations(rates, 2):
        d = boot[x] - boot[y]
        lo, hi = np.percentile(d, [2.5, 97.5])
        print(
            f"| {x} | {y} | {full[x]:.4f} | {full[y]:.4f} | {full[x] - full[y]:+.4f} | {d.std(ddof=1):.4f} "
            f"| [{lo:+.4f}, {hi:+.4f}] | {np.mean(d > 0):.2f} |"
        )


if __name__ == "__main__":
    main()
