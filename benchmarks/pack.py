"""Packed-training benchmark: member-steps per second for packs of K = 1, 2, 4, ..., 32 members.

A member-step is one training step of one member (masks + contrast views, forward, loss, backward,
gradient clipping, AdamW). K = 1 is the solo step of train_member (objective.training_loss, torch's
AdamW and clip_grad_norm_) - what train_pack runs for a pack of one; K > 1 is train_pack's batched step
(stndt.train.pack.loss.pack_loss on PackedSTNDT, per-member clipping and AdamW) with K members that
differ in seed, learning rate and dropout. member_steps_per_s = K / (median seconds per pack step).

Shapes: "default" = config/config.yaml's dataset (40 + 12 neurons, 140 + 40 bins of 5 ms in the mc_maze
layout, batch 16, 2 layers); "mc_maze" = benchmarks/train_step.py's (137 + 45 neurons, 140 + 40 bins,
batch 64, 4 layers). Both: 2 heads, FF 128, context 50/50, dropouts 0.1, two contrast views.

Every row runs in a fresh subprocess. A row whose estimated memory (K x the solo row's peak, or a
per-member guess before that is known) exceeds --mem-gb is skipped and says so.

Usage: python benchmarks/pack.py [--quick] [--json] [--device cpu|cuda] [--shapes default,mc_maze]
       [--packs 1,2,4,8,16,32] [--dtypes fp32,bf16] [--steps N] [--threads K] [--mem-gb G]
       [--malloc-default] [--compile default,reduce-overhead]
Run it alone (under `nice`): other processes on the machine distort the timings.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHAPES = {  # name: (batch, n_heldin, n_heldout, t_bins, t_forward, n_layers)
    "default": (16, 40, 12, 140, 40, 2),
    "mc_maze": (64, 137, 45, 140, 40, 4),
}
GUESS_MB_PER_MEMBER = {"default": 150.0, "mc_maze": 1700.0}  # until the solo row has measured it


def _configs(shapes: str, k: int):
    from stndt.model.config import ModelConfig, ObjectiveConfig

    _, n_in, n_out, t, t_fp, layers = SHAPES[shapes]
    mcfgs = [
        ModelConfig(
            n_heldin=n_in,
            n_heldout=n_out,
            t_bins=t,
            t_forward=t_fp,
            n_layers=layers,
            n_heads=2,
            ff_hidden=128,
            context_forward=50,
            context_backward=50,
            dropout=0.1 + 0.01 * (i % 3),
            dropout_rates=0.1,
            dropout_embedding=0.1,
        )
        for i in range(k)
    ]
    return mcfgs, [ObjectiveConfig(mask_ratio=0.25) for _ in range(k)]


def _data(shapes: str, k: int):
    import torch

    b, n_in, n_out, t, t_fp, _ = SHAPES[shapes]
    g = torch.Generator().manual_seed(0)
    rates = torch.rand((1, 1, 1, n_in + n_out), generator=g) * 0.3 + 0.02
    return torch.poisson(rates.expand(k, b, t + t_fp, -1).contiguous(), generator=g)


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_row(
    shapes: str,
    device_name: str,
    dtype: str,
    k: int,
    steps: int,
    warmup: int,
    threads: int | None,
    malloc_default: bool = False,
    compile_mode: str | None = None,
) -> dict:
    """Time `steps` pack steps of K members (K = 1: the solo step) in this process.

    compile_mode (K = 1 only): the solo model under torch.compile with that mode ("default", or
    "reduce-overhead" = CUDA graphs on a GPU), the other remedy for a launch-bound member."""
    import torch

    from stndt.model.objective import training_loss
    from stndt.model.stndt import STNDT
    from stndt.train.device import keep_freed_memory
    from stndt.train.pack.loss import pack_loss
    from stndt.train.pack.model import MemberRNG, PackedSTNDT, seeded_state
    from stndt.train.pack.optim import PackedAdamW, clip_grad_norms_

    if threads:
        torch.set_num_threads(threads)
    device = torch.device(device_name)
    if device.type == "cpu" and not malloc_default:
        keep_freed_memory()  # as training does (stndt.train.setup.resolve_runtime)
    mcfgs, ocfgs = _configs(shapes, k)
    n_in, t_bins = mcfgs[0].n_heldin, mcfgs[0].t_bins
    models = []
    for i, cfg in enumerate(mcfgs):
        torch.manual_seed(i)
        models.append(STNDT(cfg).to(device).train())
    data = _data(shapes, k).to(device)
    gens = [torch.Generator(device=device).manual_seed(i) for i in range(k)]
    lrs = [1e-3 * (1 + 0.1 * i) for i in range(k)]
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == "bf16")
    if k == 1:
        net = models[0]
        opt = torch.optim.AdamW(net.parameters(), lr=lrs[0], weight_decay=5e-5)
        if compile_mode:
            net = torch.compile(net, mode=compile_mode)

        def step() -> None:
            with autocast:
                out = training_loss(net, data[0], ocfgs[0], 0, gens[0], n_in, t_bins)
            opt.zero_grad(set_to_none=True)
            out["loss"].backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 200.0)
            opt.step()
    else:
        pack = PackedSTNDT(models, MemberRNG(device, [seeded_state(100 + i, device) for i in range(k)]))
        opt = PackedAdamW(pack.params, [5e-5] * k, [1e-8] * k)

        def step() -> None:
            with autocast:
                out = pack_loss(pack, data, ocfgs, 0, gens, n_in, t_bins)
            opt.zero_grad()
            out["loss"].sum().backward()
            clip_grad_norms_(pack.parameters(), [200.0] * k)
            opt.step(lrs)

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    rss0 = _maxrss_mb()
    times = []
    for i in range(warmup + steps):
        sync()
        t0 = time.perf_counter()
        step()
        sync()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    sec = statistics.median(times)
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else _maxrss_mb() - rss0
    return {
        "shapes": shapes,
        "device": device.type,
        "dtype": dtype,
        "pack": k,
        "mode": f"compile:{compile_mode}" if compile_mode else "eager",
        "member_steps_per_s": round(k / sec, 2),
        "ms_per_pack_step": round(1000 * sec, 1),
        "peak_mem_mb": round(peak, 1),
        "_threads": torch.get_num_threads(),
    }


def _subprocess_row(key: tuple, args: argparse.Namespace, compile_mode: str | None = None) -> dict:
    shapes, device, dtype, k = key
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--_row",
        f"{shapes}:{device}:{dtype}:{k}",
        "--steps",
        str(args.steps),
        "--warmup",
        str(args.warmup),
    ]
    if compile_mode:
        cmd += ["--_compile", compile_mode]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    if args.malloc_default:
        cmd += ["--malloc-default"]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if res.returncode != 0:
        raise RuntimeError(f"benchmark row {key} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def _available_gb() -> float:
    try:
        with open("/proc/meminfo") as f:
            info = {line.split(":")[0]: int(line.split()[1]) for line in f}
        return info["MemAvailable"] / 2**20
    except (OSError, KeyError, ValueError):
        return 8.0


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--shapes", default="default,mc_maze")
    p.add_argument("--packs", default="1,2,4,8,16,32")
    p.add_argument("--dtypes", default="fp32,bf16")
    p.add_argument("--steps", type=int, default=5, help="timed steps per row (default 5)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first (default 2)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument(
        "--malloc-default",
        action="store_true",
        help="leave glibc malloc's defaults (training calls stndt.train.device.keep_freed_memory)",
    )
    p.add_argument(
        "--mem-gb",
        type=float,
        default=None,
        help="skip rows estimated above this (default: half of MemAvailable on CPU, none on CUDA)",
    )
    p.add_argument("--quick", action="store_true", help="default shapes, K = 1 and 8, 3 steps after 1 warm-up")
    p.add_argument("--json", action="store_true", help="print the rows as a JSON list")
    p.add_argument(
        "--compile",
        default="",
        help="also time the solo step under torch.compile with these modes, e.g. "
        "default,reduce-overhead (CUDA graphs; GPU only)",
    )
    p.add_argument("--_row", default=None, help=argparse.SUPPRESS)
    p.add_argument("--_compile", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.shapes, args.packs, args.steps, args.warmup = "default", "1,8", 3, 1
    if args._row:
        shapes, device, dtype, k = args._row.split(":")
        print(
            json.dumps(
                run_row(
                    shapes,
                    device,
                    dtype,
                    int(k),
                    args.steps,
                    args.warmup,
                    args.threads,
                    args.malloc_default,
                    args._compile,
                )
            )
        )
        return

    budget_mb = 1024 * (
        args.mem_gb if args.mem_gb is not None else (_available_gb() / 2 if args.device == "cpu" else float("inf"))
    )
    rows = []
    for shapes in args.shapes.split(","):
        for dtype in args.dtypes.split(","):
            per_member = GUESS_MB_PER_MEMBER[shapes]
            for k in sorted(int(x) for x in args.packs.split(",")):
                row = {"shapes": shapes, "device": args.device, "dtype": dtype, "pack": k, "mode": "eager"}
                if k * per_member > budget_mb:
                    rows.append(
                        {
                            **row,
                            "member_steps_per_s": None,
                            "skipped": f"needs ~{k * per_member / 1024:.1f} GB > {budget_mb / 1024:.1f} GB",
                        }
                    )
                    continue
                rows.append(_subprocess_row((shapes, args.device, dtype, k), args))
                if k == 1 and rows[-1]["peak_mem_mb"] > 0:
                    per_member = 1.2 * rows[-1]["peak_mem_mb"]
                if k == 1:
                    rows += [
                        _subprocess_row((shapes, args.device, dtype, 1), args, mode)
                        for mode in args.compile.split(",")
                        if mode
                    ]
    public = [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]
    if args.json:
        print(json.dumps(public, indent=1))
        return
    threads = next((r["_threads"] for r in rows if "_threads" in r), "?")
    print(
        f"member-steps/s, median of {args.steps} steps after {args.warmup} warm-up, device {args.device}, "
        f"{threads} threads, {os.cpu_count()} CPUs visible; K = 1 is train_member's solo step"
    )
    print(
        f"{'shapes':8s} {'dtype':5s} {'pack':>4s} {'member-steps/s':>15s} {'vs solo':>8s} {'ms/pack-step':>13s} "
        f"{'peak MB':>8s}"
    )
    solo = {}
    for r in rows:
        if r.get("member_steps_per_s") is None:
            print(f"{r['shapes']:8s} {r['dtype']:5s} {r['pack']:4d} {'skipped: ' + r['skipped']}")
            continue
        if r["pack"] == 1 and r["mode"] == "eager":
            solo[r["shapes"], r["dtype"]] = r["member_steps_per_s"]
        base = solo.get((r["shapes"], r["dtype"]))
        ratio = f"{r['member_steps_per_s'] / base:.2f}x" if base else "-"
        mode = "" if r["mode"] == "eager" else f"  (solo, {r['mode']})"
        print(
            f"{r['shapes']:8s} {r['dtype']:5s} {r['pack']:4d} {r['member_steps_per_s']:15.2f} {ratio:>8s} "
            f"{r['ms_per_pack_step']:13.1f} {r['peak_mem_mb']:8.0f}{mode}"
        )


if __name__ == "__main__":
    main()
