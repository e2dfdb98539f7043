"""How close does STNDT get to the true firing rates? Runs the DAG on config/fidelity.yaml (synthetic
MC_Maze layout, larger budget) up to the evaluation stage and prints every method next to the oracle.

    python benchmarks/fidelity.py [--config config/fidelity.yaml] [--cores 2] [--json]

Prints one row per method (test split of the synthetic data, whose targets are known): co-bps, vel R2,
psth R2, rate R2 and co-bps as a percentage of the oracle's.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
ROWS = {
    "oracle": "oracle (true rates)",
    "stndt_ensemble": "STNDT ensemble",
    "stndt_single": "STNDT best member",
    "ndt_ensemble": "NDT ensemble",
    "no_contrast_ensemble": "STNDT no-contrast ensemble",
    "smoothing": "smoothing",
}
COLUMNS = ["co-bps", "vel R2", "psth R2", "rate R2"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, default=ROOT / "config" / "fidelity.yaml")
    ap.add_argument("--cores", default="2")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = ap.parse_args()
    cfg = yaml.safe_load(args.config.read_text())
    start = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--snakefile",
            str(ROOT / "workflow" / "Snakefile"),
            "--configfile",
            str(args.config),
            "--cores",
            args.cores,
            "evaluate",
        ],
        cwd=ROOT,
        check=True,
    )
    minutes = (time.perf_counter() - start) / 60
    rows = []
    for ds in cfg["datasets"]:
        table = pd.read_csv(ROOT / cfg["results_dir"] / ds / "baselines.csv")
        test = table[table["phase"] == "test"].set_index("method")
        oracle = test.loc["oracle", "co-bps"]
        for method, name in ROWS.items():
            r = test.loc[method]
            rows.append(
                {
                    "dataset": ds,
                    "method": name,
                    **{c: float(r[c]) for c in COLUMNS},
                    "% oracle co-bps": 100 * float(r["co-bps"]) / oracle,
                }
            )
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        print(f"\nwall time of the DAG (this invocation): {minutes:.1f} min on {args.cores} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
