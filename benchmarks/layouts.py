"""Does the default training converge, and beat smoothing, on every NLB layout? One Snakemake run per
layout of the project's synthetic data (sizes like NLB'21's, the large datasets scaled down), trained
with the DEFAULT settings of config/config.yaml (its `training`, `search_overrides`, `search` and
`resources`), STNDT members only.

    python benchmarks/layouts.py [--layouts mc_maze,area2_bump] [--members 4] [--cores 2] [--out DIR]

Prints one table (markdown): per layout the oracle (true rates), smoothing, the STNDT best member and the
chosen ensemble on the TEST split (the generator knows its targets; nothing was selected on it), the
ensemble's honest split-half estimate on VAL (the selection-free local number), co-bps as a share of the
oracle's, how many members stopped by the stopping rule vs at the cap (not converged), and the wall time
of the layout's DAG. Results stay in --out (default results_layouts/), so a rerun reuses what is done.
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
sys.path.insert(0, str(ROOT))

from stndt.datasets import CO_BPS, PSTH_R2, TP_CORR, VEL_R2  # noqa: E402

# Sizes like NLB'21 (held-in, held-out units; train/val/test trials; conditions): area2_bump at its real
# size, mc_maze_small at its real unit and trial counts; mc_maze and mc_rtt with a third of their units
# and dmfc_rsg (whose 1.5 s windows make each trial ~5x costlier) with fewer trials, so that each layout
# trains in minutes on 2 cores. Trials per condition as in the real datasets (docs/synthetic-data.md).
LAYOUTS: dict[str, dict[str, int]] = {
    "mc_maze": dict(n_heldin=46, n_heldout=16, n_train=190, n_val=62, n_test=60, n_conditions=12),
    "mc_rtt": dict(n_heldin=33, n_heldout=11, n_train=150, n_val=50, n_test=50, n_conditions=8),
    "area2_bump": dict(n_heldin=49, n_heldout=16, n_train=273, n_val=91, n_test=100, n_conditions=16),
    "dmfc_rsg": dict(n_heldin=40, n_heldout=14, n_train=80, n_val=32, n_test=32, n_conditions=8),
    "mc_maze_small": dict(n_heldin=107, n_heldout=35, n_train=75, n_val=25, n_test=100, n_conditions=27),
}
METHODS = {
    "oracle": "oracle (true rates)",
    "smoothing": "smoothing",
    "stndt_single": "STNDT best member",
    "stndt_ensemble": "STNDT ensemble",
}


def layout_config(layout: str, sizes: dict, default: dict, members: int, results: Path) -> dict:
    """A one-dataset config with the default config's training settings."""
    cfg = {
        k: default[k]
        for k in (
            "seed",
            "bin_width_ms",
            "search_spaces",
            "search_overrides",
            "training",
            "evaluation",
            "resources",
            "search",
        )
        if k in default
    }
    cfg["search_spaces"] = str(ROOT / cfg.get("search_spaces", "config/search_spaces.yaml"))
    cfg.update(
        results_dir=str(results),
        variants={"stndt": members, "ndt": 0, "no_contrast": 0},
        datasets={f"{layout}_synth": {"source": "synthetic", "layout": layout, "synthetic": sizes}},
    )
    return cfg


def run_layout(layout: str, cfg: dict, out: Path, cores: str) -> float:
    out.mkdir(parents=True, exist_ok=True)
    cfg_path = out / f"{layout}.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    start = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "evaluate",
            "--snakefile",
            str(ROOT / "workflow" / "Snakefile"),
            "--configfile",
            str(cfg_path),
            "--directory",
            str(out),
            "--cores",
            cores,
            "--quiet",
        ],
        cwd=out,
        check=True,
    )
    return time.perf_counter() - start


def layout_rows(layout: str, results: Path, minutes: float) -> list[dict]:
    ds = results / f"{layout}_synth"
    base = pd.read_csv(ds / "baselines.csv")
    test = base[base["phase"] == "test"].set_index("method")
    ens = json.loads((ds / "ensemble.json").read_text())
    table = pd.read_csv(ds / "members.csv")
    by_rule = int((table["stop_reason"] == "early_stopping").sum())
    at_cap = int((table["stop_reason"] == "max_epochs").sum())
    behaviour = TP_CORR if TP_CORR in test.columns and test[TP_CORR].notna().any() else VEL_R2
    oracle = float(test.loc["oracle", CO_BPS])
    rows = []

    def add(method: str, split: str, m: dict) -> None:
        rows.append(
            {
                "layout": layout,
                "method": method,
                "split": split,
                CO_BPS: m.get(CO_BPS),
                "behaviour": f"{behaviour} {m[behaviour]:.3f}"
                if m.get(behaviour) is not None and pd.notna(m.get(behaviour))
                else "",
                PSTH_R2: m.get(PSTH_R2),
                "% oracle co-bps": 100 * m[CO_BPS] / oracle,
            }
        )

    for method, name in METHODS.items():
        add(name, "test", test.loc[method].to_dict())
    add(f"STNDT ensemble of {ens['n']}, honest split-half", "val (not selected)", ens["honest"]["metrics"])
    rows[-1]["% oracle co-bps"] = None  # val, not comparable with the oracle's test co-bps
    val_scores = json.loads((ds / "ensemble" / "metrics_val.json").read_text())
    if "holdout" in val_scores:  # evaluation.holdout: val trials no choice was made on
        add("STNDT ensemble, val holdout", f"val holdout ({val_scores['n_holdout']} trials)", val_scores["holdout"])
        rows[-1]["% oracle co-bps"] = None
    rows[0]["members (rule / cap)"] = f"{by_rule} / {at_cap}"
    rows[0]["epochs (best..run)"] = (
        f"{int(table['best_epoch'].min())}-{int(table['best_epoch'].max())} .. "
        f"{int(table['epochs_run'].min())}-{int(table['epochs_run'].max())}"
    )
    rows[0]["wall min"] = round(minutes, 1)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layouts", default=",".join(LAYOUTS), help=f"comma list of {', '.join(LAYOUTS)}")
    ap.add_argument("--members", type=int, default=4, help="STNDT members per layout (default 4, as config.yaml)")
    ap.add_argument("--cores", default="2")
    ap.add_argument("--config", type=Path, default=ROOT / "config" / "config.yaml", help="whose settings to test")
    ap.add_argument("--out", type=Path, default=ROOT / "results_layouts")
    args = ap.parse_args()
    default = yaml.safe_load(args.config.read_text())
    rows = []
    for layout in args.layouts.split(","):
        if layout not in LAYOUTS:
            ap.error(f"--layouts: unknown layout {layout!r} (have {', '.join(LAYOUTS)})")
        results = args.out.resolve() / layout
        seconds = run_layout(
            layout,
            layout_config(layout, LAYOUTS[layout], default, args.members, results),
            args.out.resolve(),
            args.cores,
        )
        rows += layout_rows(layout, results, seconds / 60)
    table = pd.DataFrame(rows).fillna("")
    print(table.to_markdown(index=False, floatfmt=".3f"))
    print(
        f"\nsettings: {args.config} (training, search_overrides), {args.members} STNDT members per layout; "
        "test = the synthetic test split (known targets), val = the honest split-half estimate and the val "
        "holdout (evaluation.holdout), both free of selection on the trials they score"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
