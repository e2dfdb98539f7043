"""Random search vs Bayesian search (stndt.train.search.waves.propose_wave) at the same budget of members.

    nice -n 10 python benchmarks/search.py [--seeds 0 1] [--members 16] [--wave-size 4] [--workers 2] [--json]

Settings (measured: 13.8 min for the default 2 seeds, ~1 min per member, 2 at a time, on 2 CPU cores
shared with other jobs; each further seed adds ~7 min):
- data: one synthetic MC_Maze-layout dataset made as the workflow makes it (`stndt synthesize` with
  seed 0, then `stndt tensors` for val and test with 20 ms bins, NLB's second bin width, so 35 + 10
  bins per trial instead of 140 + 40): 40 held-in + 12 held-out neurons, 100/40/40 train/val/test
  trials, 8 conditions (config/config.yaml's sizes, fewer trials);
- members: config/config.yaml's search space (the mc_maze space with its `search_overrides`: 2 layers,
  warm-up <= 10 epochs, lr 4e-3..8e-3, dropouts <= 0.15) with one head (the spatial token width, 45 bins,
  is odd), `--epochs` (default 30) epochs, validation every 10, batch 16, bf16 autocast, one thread
  each, `--workers` members at a time; `--epochs 0`: config/config.yaml's own training settings, each
  member trained until the stopping rule fires (the default budget, as in the default run);
- per pipeline seed (`--seeds`): `--members` members by random search (`sample_params`) and as many by
  Bayesian search in waves of `--wave-size` (`propose_wave`, GPSampler); the first wave is shared (the
  same draws and training seeds), so it is trained once.

For each (seed, method) it prints the best member's val co-bps, the mean val co-bps of the members
after the first wave (what the search proposed), the chosen ensemble's val co-bps and size
(`select_ensemble`), the honest split-half estimate of that ensemble's val co-bps (`honest_estimate`),
and test co-bps of the best member and of the chosen ensemble (the synthetic test targets are known and
no choice is made on them: the out-of-sample comparison). Bayesian search maximises val co-bps, so its
val numbers are selection-biased upwards more than random search's; compare the honest and test columns.
Member folders land in --workdir (default results/bench_search) and are reused when a run is repeated.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LAYOUT = "mc_maze"
BIN_MS = 20
SYNTHETIC = {"n_heldin": 40, "n_heldout": 12, "n_train": 100, "n_val": 40, "n_test": 40, "n_conditions": 8}
DATA_SEED = 0


def make_dataset(workdir: Path) -> tuple[Path, Path]:
    """Synthesize the dataset and write its val and test tensors with the workflow's CLI subcommands."""
    from stndt.cli import main as cli

    raw, hidden = workdir / "data" / "raw", workdir / "data" / "truth" / "full.nwb"
    val, test = workdir / "data" / "tensors" / "val.h5", workdir / "data" / "tensors" / "test.h5"
    if not hidden.exists():
        cli(
            [
                "synthesize",
                "--layout",
                LAYOUT,
                "--raw",
                str(raw),
                "--hidden",
                str(hidden),
                "--params",
                json.dumps(SYNTHETIC),
                "--seed",
                str(DATA_SEED),
            ]
        )
    for phase, out in (("val", val), ("test", test)):
        if not out.exists():
            cli(
                [
                    "tensors",
                    "--raw",
                    str(raw),
                    "--layout",
                    LAYOUT,
                    "--phase",
                    phase,
                    "--bin-width",
                    str(BIN_MS),
                    "--hidden",
                    str(hidden),
                    "--out",
                    str(out),
                ]
            )
    return val, test


def space_and_training(epochs: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """config/config.yaml's search space (with its overrides) and its training settings, shortened to
    `epochs` epochs (0: as they are, trained to convergence)."""
    import yaml

    from stndt.train.search.space import load_search_spaces, search_space_for

    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    # n_heads 1: the spatial attention's token width is the bin count (45 at 20 ms), which 2 does not divide
    space = search_space_for(
        LAYOUT, load_search_spaces(ROOT / cfg["search_spaces"]), {**cfg["search_overrides"], "n_heads": 1}
    )
    training = {**cfg["training"], "num_threads": 1, "device": "cpu"}
    if epochs:
        training.update(max_epochs=epochs, patience=epochs)
    return space, training


def train_job(job: dict[str, Any]) -> tuple[str, float]:
    """Train one member (skipped when its params.json exists) and return (folder, best val co-bps)."""
    out = Path(job["out"])
    if not (out / "params.json").exists():
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        from stndt.train.solo import train_member

        train_member(job["val"], job["test"], out, job["params"], progress=False)
    return str(out), json.loads((out / "params.json").read_text())["training"]["val co-bps"]


def member_params(proposal: dict[str, Any], training: dict[str, Any], seed: int, index: int) -> dict[str, Any]:
    """What stndt.train.members.member_params builds for an STNDT member, from a given proposal."""
    from stndt.train.search.space import member_seed

    return {**proposal, **training, "seed": member_seed(seed, index)}


def run_searches(args: argparse.Namespace, val: Path, test: Path) -> dict[tuple[int, str], list[Path]]:
    """Train every set; waves advance together so the worker pool stays busy. Returns member folders."""
    from stndt.members import member_id
    from stndt.train.search.waves import completed_members, propose_wave, wave_indices

    space, training = space_and_training(args.epochs)
    n_waves = -(-args.members // args.wave_size)
    sets: dict[tuple[int, str], list[Path]] = {(s, m): [] for s in args.seeds for m in ("random", "bayes")}
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        for wave in range(n_waves):
            jobs = []
            for s in args.seeds:
                for method in ("random", "bayes"):
                    folder = "shared" if wave == 0 else method  # wave 0 is the same draws for both
                    if wave == 0 and method == "bayes":
                        sets[(s, method)] = list(sets[(s, "random")])
                        continue
                    t0 = time.perf_counter()
                    proposals = propose_wave(
                        space,
                        s,
                        wave,
                        args.wave_size,
                        completed_members({d.name: d / "params.json" for d in sets[(s, method)]}, space),
                        method,
                    )
                    if method == "bayes" and wave > 0:
                        print(f"seed {s} wave {wave}: proposed in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
                    for i, p in zip(wave_indices(wave, args.wave_size), proposals):
                        out = Path(args.workdir) / f"seed{s}" / folder / member_id(i)
                        jobs.append(
                            {
                                "out": str(out),
                                "val": str(val),
                                "test": str(test),
                                "params": member_params(p, training, s, i),
                                "key": (s, method),
                            }
                        )
            t0 = time.perf_counter()
            for job, (out, _value) in zip(jobs, pool.map(train_job, jobs)):
                sets[job["key"]].append(Path(out))
            if wave == 0:
                for s in args.seeds:
                    sets[(s, "bayes")] = list(sets[(s, "random")])
            print(f"wave {wave}: {len(jobs)} members in {(time.perf_counter() - t0) / 60:.1f} min", file=sys.stderr)
    return sets


def evaluate_set(dirs: list[Path], val: Path, test: Path, seed: int, wave_size: int) -> dict[str, float]:
    """Best member, ensemble (chosen on val) and honest split-half estimate of one set of members."""
    import numpy as np
    import pandas as pd

    from stndt.data.tensors import read_layout
    from stndt.evaluate.ensemble import select_ensemble
    from stndt.evaluate.metrics import load_targets, score

    layout, bw = read_layout(val)
    table = pd.DataFrame(
        {
            "member": [d.name for d in dirs],
            "co-bps": [json.loads((d / "params.json").read_text())["training"]["val co-bps"] for d in dirs],
        }
    )
    by_id = {d.name: d for d in dirs}
    targets_test = load_targets(test)
    chosen = select_ensemble(
        {m: by_id[m] / "rates_val.h5" for m in by_id},
        table,
        load_targets(val),
        layout,
        bw,
        seed=seed,
        member_rates_test={m: by_id[m] / "rates_test.h5" for m in by_id},
        targets_test=targets_test,
    )
    from stndt.evaluate.metrics import load_rates

    best = chosen["ranking"][0]
    best_test = score(targets_test, load_rates(by_id[best] / "rates_test.h5"), layout, bw)["co-bps"]
    return {
        "best member val co-bps": float(table["co-bps"].max()),
        "mean val co-bps after wave 0": float(np.mean(table["co-bps"][wave_size:])),
        "ensemble n": int(chosen["n"]),
        "ensemble val co-bps": chosen["val"]["co-bps"],
        "honest val co-bps": chosen["honest"]["metrics"]["co-bps"],
        "best member test co-bps": float(best_test),
        "ensemble test co-bps": chosen["test"]["co-bps"],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--members", type=int, default=16)
    ap.add_argument("--wave-size", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=30, help="0: the default config's training, to convergence")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--workdir", type=Path, default=ROOT / "results" / "bench_search")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = ap.parse_args()
    start = time.perf_counter()
    val, test = make_dataset(args.workdir)
    sets = run_searches(args, val, test)
    rows = [
        {"seed": s, "method": m, **evaluate_set(dirs, val, test, s, args.wave_size)} for (s, m), dirs in sets.items()
    ]
    minutes = (time.perf_counter() - start) / 60
    if args.json:
        print(
            json.dumps(
                {"rows": rows, "minutes": minutes, "settings": vars(args) | {"workdir": str(args.workdir)}}, indent=1
            )
        )
    else:
        import pandas as pd

        table = pd.DataFrame(rows)
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        print("\nmean over seeds:")
        print(
            table.drop(columns="seed").groupby("method", sort=False).mean().to_string(float_format=lambda v: f"{v:.4f}")
        )
        print(
            f"\n{args.members} members per set, waves of {args.wave_size}, {args.epochs} epochs; "
            f"wall time {minutes:.1f} min with {args.workers} workers"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
