"""Epoch benchmark: seconds per training epoch of one member, solo step vs packed step with K = 1.

stndt.train.driver runs every member through one of two steps: stndt.train.solo.SoloStep (the real
STNDT, torch's AdamW) or stndt.train.pack.train.PackStep (PackedSTNDT, PackedAdamW). Here both train
the same member (stndt.train.setup.build_member, same params) on the same synthetic tensors, in
alternate epochs of one process, so that the load of other processes falls on both alike. The table
gives the median seconds per epoch (wall clock and this process's CPU time) and the median ratio
packed / solo of neighbouring epochs. An epoch here is the driver's batch loop (learning rate, batch
order, every step); validation is left out (the same code for both). On CPU both steps give bitwise
the same member (tests/test_pack.py).

Shapes: "default" = config/config.yaml's dataset (40 + 12 neurons, 140 + 40 bins, 160 training trials,
batch 16: 10 steps, 2 layers); "mc_maze" = MC_Maze's neurons and bins (137 + 45, 140 + 40), batch 64,
4 layers, but 256 training trials (4 steps; MC_Maze has 1,721, 27 steps: scale by 27/4). Both: 2 heads,
FF 128, context 50/50, dropouts 0.1, the contrastive term on. Every row runs in a fresh subprocess.

Usage: python benchmarks/epoch.py [--shapes default,mc_maze] [--dtypes fp32,bf16] [--epochs N]
       [--threads K] [--json]
Run it alone (under `nice`): other processes on the machine distort the timings.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHAPES = {  # name: (n_heldin, n_heldout, t_bins, t_forward, n_layers, batch, train trials, eval trials)
    "default": (40, 12, 140, 40, 2, 16, 160, 50),
    "mc_maze": (137, 45, 140, 40, 4, 64, 256, 64),
}


def _tensors(shapes: str, folder: Path) -> Path:
    """A val-phase tensors file in the mc_maze layout: Poisson counts of smooth low-rank log-rates."""
    import numpy as np

    from stndt.io import save_h5

    n_in, n_out, t, t_fp, _, _, n_train, n_eval = SHAPES[shapes]
    rng = np.random.default_rng(0)
    c, b = rng.normal(0, 0.6, (3, n_in + n_out)), np.log(rng.uniform(0.05, 0.3, n_in + n_out))
    tt = np.arange(t + t_fp)[None, :, None] / (t + t_fp)

    def trials(n: int):
        z = rng.uniform(0.5, 1.5, (n, 1, 3)) * np.sin(
            2 * np.pi * np.array([1.0, 1.5, 2.3]) * tt + rng.uniform(0, 6.3, (n, 1, 3))
        )
        return rng.poisson(np.exp(b + z @ c)).astype(np.float32)

    tr, ev = trials(n_train), trials(n_eval)
    targets = {"eval_spikes_heldout": ev[:, :t, n_in:], "eval_spikes_heldin_forward": ev[:, t:, :n_in]}
    targets["eval_spikes_heldout_forward"] = ev[:, t:, n_in:]
    data = {
        "train_spikes_heldin": tr[:, :t, :n_in],
        "train_spikes_heldout": tr[:, :t, n_in:],
        "train_spikes_heldin_forward": tr[:, t:, :n_in],
        "train_spikes_heldout_forward": tr[:, t:, n_in:],
        "eval_spikes_heldin": ev[:, :t, :n_in],
        "targets": {"mc_maze": targets},
    }
    path = folder / "val.h5"
    save_h5(path, data, attrs={"layout": "mc_maze", "bin_width_ms": 5, "phase": "val"})
    return path


def run_row(shapes: str, dtype: str, epochs: int, threads: int) -> dict:
    """Time `epochs` epochs of each step, alternating (one untimed epoch of each first)."""
    import logging

    import torch

    from stndt.train.data import full_counts, load_train_phases
    from stndt.train.pack.train import PackStep
    from stndt.train.search.space import split_params
    from stndt.train.setup import build_member, resolve_runtime
    from stndt.train.solo import SoloStep

    _, _, _, _, layers, batch, _, _ = SHAPES[shapes]
    params = dict(
        n_layers=layers,
        n_heads=2,
        ff_hidden=128,
        context_forward=50,
        context_backward=50,
        dropout=0.1,
        dropout_rates=0.1,
        dropout_embedding=0.1,
        batch_size=batch,
        lr=5e-3,
        warmup_epochs=0,
        seed=0,
        num_threads=threads,
        bf16=dtype == "bf16",
    )
    folder = Path(tempfile.mkdtemp(prefix="stndt_epoch_"))  # the tensors file; the steps save nothing
    val, _ = load_train_phases(_tensors(shapes, folder), None)
    device, bf16 = resolve_runtime(split_params(params, val.shapes)[2])

    def member():
        return build_member(0, folder, params, val.shapes, len(val.train_heldin), device, logging.getLogger(__name__))

    steps = {"solo": SoloStep(member(), "", device, bf16), "pack1": PackStep([member()], "", folder, device, bf16)}
    data = torch.from_numpy(full_counts(val)).to(device)
    n_train = data.shape[0]

    def epoch(step, e: int) -> None:  # the batch loop of stndt.train.driver.train_epochs
        step.start_epoch([params["lr"]])
        order = torch.stack([torch.randperm(n_train, generator=step.generators[0]["batch"])]).to(device)
        sums = torch.zeros(1, 3, dtype=torch.float64, device=device)
        for b0 in range(0, n_train, batch):
            sums += step.train_batch(data[order[:, b0 : b0 + batch]], e)

    times: dict[str, list[tuple[float, float]]] = {"solo": [], "pack1": []}
    for e in range(epochs + 1):
        for name in ("solo", "pack1") if e % 2 == 0 else ("pack1", "solo"):
            w0, c0 = time.perf_counter(), time.process_time()
            epoch(steps[name], e)
            if e > 0:
                times[name].append((time.perf_counter() - w0, time.process_time() - c0))
    (folder / "val.h5").unlink()
    folder.rmdir()
    row = {"shapes": shapes, "dtype": dtype, "epochs": epochs, "threads": torch.get_num_threads()}
    for i, clock in enumerate(("wall", "cpu")):
        for name, t in times.items():
            row[f"{name}_{clock}_s"] = round(statistics.median(x[i] for x in t), 4)
        ratios = [p[i] / s[i] for p, s in zip(times["pack1"], times["solo"])]
        row[f"pack1_over_solo_{clock}"] = round(statistics.median(ratios), 4)
    return row


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--shapes", default="default,mc_maze")
    p.add_argument("--dtypes", default="fp32,bf16")
    p.add_argument("--epochs", type=int, default=10, help="timed epochs of each step (default 10)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1, as training jobs)")
    p.add_argument("--json", action="store_true", help="print the rows as a JSON list")
    p.add_argument("--_row", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args._row:
        shapes, dtype = args._row.split(":")
        print(json.dumps(run_row(shapes, dtype, args.epochs, args.threads)))
        return
    rows = []
    for shapes in args.shapes.split(","):
        for dtype in args.dtypes.split(","):
            cmd = [sys.executable, str(Path(__file__).resolve()), "--_row", f"{shapes}:{dtype}"]
            cmd += ["--epochs", str(args.epochs), "--threads", str(args.threads)]
            res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
            if res.returncode != 0:
                raise RuntimeError(f"benchmark row {shapes}:{dtype} failed:\n{res.stderr[-3000:]}")
            rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    print(f"seconds per epoch, median of {args.epochs} alternating epochs, {args.threads} thread(s), CPU")
    head = ("solo wall", "K=1 wall", "solo cpu", "K=1 cpu", "K=1/solo")
    print(f"{'shapes':8s} {'dtype':5s} " + " ".join(f"{h:>9s}" for h in head))
    for r in rows:
        print(
            f"{r['shapes']:8s} {r['dtype']:5s} {r['solo_wall_s']:9.3f} {r['pack1_wall_s']:9.3f} {r['solo_cpu_s']:9.3f} "
            f"{r['pack1_cpu_s']:9.3f} {r['pack1_over_solo_cpu']:8.3f}x"
        )


if __name__ == "__main__":
    main()
