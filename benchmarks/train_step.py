"""Training-step benchmark of STNDT / NDT on CPU at the MC_Maze reference shapes.

A step = masked input + contrast views, forward, loss, backward, gradient clipping, AdamW step, as the
training loop does it. Shapes: batch 64; 137 held-in + 45 held-out neurons; 140 + 40 forward bins;
4 layers, 2 heads, feed-forward 128, context 50/50, mask ratio 0.25, two contrast views (STNDT only;
the NDT row has no spatial path and no contrastive term).

Every row runs in a fresh subprocess so that its memory high-water mark is its own. Peak memory is the
growth of the process's maximum resident set size (resource.getrusage ru_maxrss) from just before the
first step to the end: activations, gradients, optimiser state and allocator caches of training, not
the interpreter, libraries, model weights or data (tracemalloc does not see torch's allocations).
ms_per_step is the median over the timed steps (the table also shows the fastest), after warm-up.

Usage: python benchmarks/train_step.py [--quick | --steps N] [--json] [--threads K] [--device cuda]
On CUDA, steps are timed with torch.cuda.synchronize() and peak memory is torch.cuda.max_memory_allocated.
Run it alone: other processes on the machine distort the timings.
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

ROWS = (("STNDT+contrast", "fp32"), ("STNDT+contrast", "bf16"), ("NDT", "fp32"), ("NDT", "bf16"))
BATCH, N_IN, N_OUT, T_BINS, T_FWD = 64, 137, 45, 140, 40


def _configs(model: str):
    from stndt.model.config import ModelConfig, ObjectiveConfig

    spatial = model.startswith("STNDT")
    mcfg = ModelConfig(
        n_heldin=N_IN,
        n_heldout=N_OUT,
        t_bins=T_BINS,
        t_forward=T_FWD,
        n_layers=4,
        n_heads=2,
        ff_hidden=128,
        context_forward=50,
        context_backward=50,
        spatial=spatial,
    )
    ocfg = ObjectiveConfig(mask_ratio=0.25, contrastive=spatial)
    return mcfg, ocfg


def _data(seed: int = 0, device: str = "cpu"):
    import torch

    g = torch.Generator().manual_seed(seed)
    rates = torch.rand((1, 1, N_IN + N_OUT), generator=g) * 0.3 + 0.02  # spikes per 5 ms bin
    return torch.poisson(rates.expand(BATCH, T_BINS + T_FWD, -1).contiguous(), generator=g).to(device)


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def run_row(model: str, dtype: str, steps: int, warmup: int, threads: int | None, device: str = "cpu") -> dict:
    """Time `steps` training steps of one configuration in this process."""
    import torch

    from stndt.model.objective import training_loss
    from stndt.model.stndt import STNDT
    from stndt.train.device import keep_freed_memory

    if threads:
        torch.set_num_threads(threads)
    if device == "cpu":
        keep_freed_memory()  # as training does (stndt.train.setup.resolve_runtime)
    mcfg, ocfg = _configs(model)
    torch.manual_seed(0)
    dev = torch.device(device)
    net = STNDT(mcfg).to(dev).train()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=5e-5)
    batch = _data(device=device)
    gen = torch.Generator(device=dev).manual_seed(0)
    bf16 = dtype == "bf16"
    cuda = dev.type == "cuda"

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
            out = training_loss(net, batch, ocfg, 0, gen, N_IN, T_BINS)
        out["loss"].backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 200.0)
        opt.step()
        return out["loss"].item()

    rss0 = _maxrss_mb()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    losses, times = [], []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        losses.append(step())  # .item() synchronises: the step has finished on the device
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    ms = 1000.0 * statistics.median(times)
    return {
        "model": model,
        "dtype": dtype,
        "ms_per_step": round(ms, 1),
        "trials_per_s": round(BATCH / (ms / 1000.0), 1),
        "device": dev.type,
        "peak_mem_mb": round(torch.cuda.max_memory_allocated() / 2**20 if cuda else _maxrss_mb() - rss0, 1),
        "_min_ms": round(1000.0 * min(times), 1),
        "_first_loss": losses[0],
        "_threads": torch.get_num_threads(),
    }


def loss_agreement() -> dict:
    """Same weights, same masks, dropout off: the STNDT loss terms in fp32 and under bf16 autocast."""
    import torch

    from stndt.model.objective import training_loss
    from stndt.model.stndt import STNDT

    mcfg, ocfg = _configs("STNDT+contrast")
    torch.manual_seed(0)
    net = STNDT(mcfg).eval()
    batch = _data()
    out = {}
    for dtype in ("fp32", "bf16"):
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bf16"):
            terms = training_loss(net, batch, ocfg, 0, torch.Generator().manual_seed(0), N_IN, T_BINS)
        out[dtype] = {k: v.item() for k, v in terms.items()}
    return out


def _subprocess_row(model: str, dtype: str, args: argparse.Namespace) -> dict:
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--_row",
        f"{model}:{dtype}",
        "--steps",
        str(args.steps),
        "--warmup",
        str(args.warmup),
        "--device",
        args.device,
    ]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if res.returncode != 0:
        raise RuntimeError(f"benchmark row {model}/{dtype} failed:\n{res.stderr}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=8, help="timed steps per row (default 8)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first (default 2)")
    p.add_argument("--quick", action="store_true", help="3 timed steps after 1 warm-up (under a minute)")
    p.add_argument("--json", action="store_true", help="print the rows as a JSON list")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--rows", default=None, help="comma list of model:dtype to run, e.g. NDT:bf16")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p.add_argument("--_row", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.warmup = 3, 1

    if args._row:
        model, dtype = args._row.split(":")
        print(json.dumps(run_row(model, dtype, args.steps, args.warmup, args.threads, args.device)))
        return

    rows = ROWS if not args.rows else tuple(tuple(r.split(":")) for r in args.rows.split(","))
    results = [_subprocess_row(model, dtype, args) for model, dtype in rows]
    public = [{k: v for k, v in r.items() if not k.startswith("_")} for r in results]
    if args.json:
        print(json.dumps(public, indent=1))
        return
    print(
        f"{args.device.upper()} training step, MC_Maze shapes (batch {BATCH}, {N_IN}+{N_OUT} neurons, "
        f"{T_BINS}+{T_FWD} bins), "
        f"{results[0]['_threads']} threads, median of {args.steps} steps after {args.warmup} warm-up"
    )
    print(
        f"{'model':16s} {'dtype':5s} {'ms/step':>8s} {'(min)':>8s} {'trials/s':>9s} {'peak MB':>8s} "
        f"{'step-1 loss':>12s}"
    )
    for r in results:
        print(
            f"{r['model']:16s} {r['dtype']:5s} {r['ms_per_step']:8.0f} {r['_min_ms']:8.0f} "
            f"{r['trials_per_s']:9.1f} {r['peak_mem_mb']:8.0f} {r['_first_loss']:12.5f}"
        )
    agree = loss_agreement()
    print("\nloss agreement (STNDT, same weights and masks, dropout off):")
    for key in ("masked_nll", "contrast", "loss"):
        a, b = agree["fp32"][key], agree["bf16"][key]
        print(f"  {key:10s} fp32 {a:.6f}  bf16 {b:.6f}  rel diff {abs(a - b) / max(abs(a), 1e-12):.1e}")
    print(
        f"\npeak MB = growth of ru_maxrss over the steps (per-row subprocess); reference code: 4600 ms/step "
        f"(14 trials/s) fp32 on this machine; {os.cpu_count()} CPUs visible"
    )


if __name__ == "__main__":
    main()
