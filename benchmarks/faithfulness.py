"""Do the two remaining choices where we may leave the authors' code change results on the CPU demo?

    nice -n 10 python benchmarks/faithfulness.py [--members 3] [--epochs 100] [--jobs 2] [--out DIR] [--json]

Settings compared, each trained on the SAME hyperparameter draws and member seeds (members 0..M-1 of
config/config.yaml's search space and overrides), so differences are paired:

- ``reference/fp32``: mask_span_mode "reference" (the published MASK_MODE "full": a span width w only
  divides the mask ratio by w), float32 training, as the published runs;
- ``expand/fp32``: mask_span_mode "expand" (masks grown into w-bin spans, fraction near the ratio);
- ``reference/bf16``: as the first, with bfloat16 autocast in the training steps (what the CPU demo
  config uses; validation and rates stay float32).

Data: the default synthetic dataset of config/config.yaml (mc_maze layout, 40 + 12 neurons, 150/50/50
trials), generated with ``stndt.cli synthesize`` / ``tensors`` / ``truth`` exactly as the workflow
does, or reused from ``results/<dataset>/`` when a DAG run left it there. Training: config.yaml's
``training`` block (100 epochs, val every 10, batch 16) and ``search_overrides`` (span ramp over
epochs 50-100, so spans act only in the second half of training), one thread per member, ``--jobs``
members at a time. Cost: 9 member-trainings with the defaults (3 members x 3 settings, 100 epochs);
on an idle 2-core CPU an fp32 member takes a few minutes. Measured once with --members 1 while five
other people loaded the same 2 cores (load ~9): 18 min per fp32 member, 13 min for bf16, all three
trained concurrently in ~26 min wall.

Prints, per setting: mean and SD over members of val co-bps (model selection split), test co-bps and
test rate R2 against the true rates (the synthetic test split's targets are known), and the mean paired
difference to reference/fp32 with its SD. Per-member rows with --json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SETTINGS: dict[str, dict[str, Any]] = {
    "reference/fp32": {"mask_span_mode": "reference", "bf16": False},
    "expand/fp32": {"mask_span_mode": "expand", "bf16": False},
    "reference/bf16": {"mask_span_mode": "reference", "bf16": True},
}
BASELINE = "reference/fp32"


def _cli(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "stndt.cli", *args], cwd=ROOT, check=True)


def prepare_data(cfg: dict[str, Any], out: Path) -> tuple[str, str, dict[str, Path]]:
    """Tensors (val, test) and truth of the config's first synthetic dataset: reused from the config's
    results_dir if a DAG run made them, otherwise generated under `out` with the workflow's commands."""
    name, ds = next((k, v) for k, v in cfg["datasets"].items() if v.get("source") == "synthetic")
    layout, bw = ds["layout"], int(cfg.get("bin_width_ms", 5))
    files = {
        p: ROOT / cfg.get("results_dir", "results") / name / f
        for p, f in (("val", "tensors/val.h5"), ("test", "tensors/test.h5"), ("truth", "truth.h5"))
    }
    if all(f.exists() for f in files.values()):
        return name, layout, files
    d = out / name
    files = {"val": d / "tensors" / "val.h5", "test": d / "tensors" / "test.h5", "truth": d / "truth.h5"}
    raw, hidden = d / "raw", d / "truth" / "full.nwb"
    if not hidden.exists():
        _cli(
            "synthesize",
            "--layout",
            layout,
            "--raw",
            str(raw),
            "--hidden",
            str(hidden),
            "--params",
            json.dumps(ds.get("synthetic", {}), sort_keys=True),
            "--seed",
            str(cfg.get("seed", 0)),
        )
    for phase in ("val", "test"):
        if not files[phase].exists():
            _cli(
                "tensors",
                "--raw",
                str(raw),
                "--layout",
                layout,
                "--phase",
                phase,
                "--bin-width",
                str(bw),
                "--hidden",
                str(hidden),
                "--out",
                str(files[phase]),
            )
    if not files["truth"].exists():
        _cli("truth", "--hidden", str(hidden), "--layout", layout, "--bin-width", str(bw), "--out", str(files["truth"]))
    return name, layout, files


def member_params(
    cfg: dict[str, Any], layout: str, index: int, setting: dict[str, Any], epochs: int | None
) -> dict[str, Any]:
    """Member `index`'s workflow parameters (same draw in every setting), then the setting's switches."""
    from stndt.train.members import resolve_member, space_for
    from stndt.train.search.space import load_search_spaces

    spaces = load_search_spaces(ROOT / cfg.get("search_spaces", "config/search_spaces.yaml"))
    space = space_for(spaces, layout, cfg.get("search_overrides"))
    training = dict(cfg.get("training", {}))
    if epochs is not None:
        training["max_epochs"] = epochs
    params = resolve_member(space, int(cfg.get("seed", 0)), index, "stndt", training)
    params.update(setting)
    return params


def train_one(files: dict[str, Path], out: Path, params: dict[str, Any]) -> dict[str, Any]:
    """Train and score one member. A member whose training finished (metrics_val.json, the CLI's last
    output) is not retrained, so an interrupted benchmark can be re-run and continues."""
    from stndt.evaluate.pipeline import score_rates

    if not (out / "metrics_val.json").exists():
        _cli(
            "train",
            "--val",
            str(files["val"]),
            "--test",
            str(files["test"]),
            "--out",
            str(out),
            "--params",
            json.dumps(params),
            "--truth",
            str(files["truth"]),
            "--threads",
            "1",
        )
    if not (out / "metrics_test.json").exists():
        score_rates(out / "rates_test.h5", files["test"], out / "metrics_test.json", files["truth"])
    val = json.loads((out / "metrics_val.json").read_text())
    test = json.loads((out / "metrics_test.json").read_text())
    summary = json.loads((out / "params.json").read_text()).get("training", {})
    return {
        "val co-bps": val["co-bps"],
        "test co-bps": test["co-bps"],
        "test rate R2": test.get("rate R2"),
        "seconds": float(summary.get("train_seconds") or "nan"),
    }


def _mean_sd(xs: list[float]) -> str:
    return f"{statistics.fmean(xs):.4f} +- {statistics.stdev(xs):.4f}" if len(xs) > 1 else f"{xs[0]:.4f}"


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per setting: mean +- SD over members, and the paired difference to BASELINE (same member)."""
    base = {r["member"]: r for r in rows if r["setting"] == BASELINE}
    table = []
    for name in SETTINGS:
        rs = [r for r in rows if r["setting"] == name]
        line = {"setting": name, "members": len(rs)}
        for key in ("val co-bps", "test co-bps", "test rate R2"):
            line[key] = _mean_sd([r[key] for r in rs])
        for key in ("val co-bps", "test co-bps"):
            diffs = [r[key] - base[r["member"]][key] for r in rs if r["member"] in base]
            line[f"d {key} vs {BASELINE}"] = "-" if name == BASELINE else _mean_sd(diffs)
        line["s/member"] = f"{statistics.fmean(r['seconds'] for r in rs):.0f}"
        table.append(line)
    return table


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, default=ROOT / "config" / "config.yaml")
    ap.add_argument("--members", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=None, help="override training.max_epochs")
    ap.add_argument("--jobs", type=int, default=2, help="members trained at a time (one thread each)")
    ap.add_argument("--out", type=Path, default=ROOT / "results_faithfulness")
    ap.add_argument("--json", action="store_true", help="also print every member's row as JSON")
    args = ap.parse_args()
    cfg = yaml.safe_load(args.config.read_text())
    start = time.perf_counter()
    name, layout, files = prepare_data(cfg, args.out)
    jobs = [(s, i) for i in range(args.members) for s in SETTINGS]

    def run(job: tuple[str, int]) -> dict[str, Any]:
        setting, i = job
        params = member_params(cfg, layout, i, SETTINGS[setting], args.epochs)
        out = args.out / name / setting.replace("/", "_") / f"m{i:03d}"
        return {
            "setting": setting,
            "member": i,
            "max_span": params.get("mask_max_span"),
            **train_one(files, out, params),
        }

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        rows = list(pool.map(run, jobs))
    minutes = (time.perf_counter() - start) / 60
    import pandas as pd

    print(pd.DataFrame(summarise(rows)).to_string(index=False))
    if args.json:
        print(json.dumps(rows, indent=1))
    print(f"\n{name}: {args.members} members per setting, same draws; wall {minutes:.1f} min, {args.jobs} jobs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
