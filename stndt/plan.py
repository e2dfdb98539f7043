"""What a config will cost before it runs: jobs per rule, and the projected device-hours of training.

Jobs per rule come from Snakemake's own dry run of the config (in an empty folder: the plan of a fresh
run; or in the run's own folder: what is left). Training cost per dataset and model variant is

    members x steps per epoch x epochs x seconds per step

with steps per epoch = ceil(training trials / batch size), and epochs a range: early stopping cannot end a
member before `patience` epochs (plus one validation interval), and `max_epochs` bounds it (the cap, also
given in optimizer steps per member: a member stopped there has not converged). Seconds per
step are measured: a few real training steps of member 0 of each dataset and variant, at the dataset's
shapes, on the device the plan runs on (`--measure --device cuda` on a GPU node gives GPU-hours), or
given (`--step-ms`). Shapes and trial counts come from the dataset's tensors file once it exists; before
that from the NLB'21 sizes below (synthetic datasets: their generator settings).
"""

from __future__ import annotations

import math
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from stndt.config import DatasetConfig, PipelineConfig
from stndt.datasets import NLB_SIZES, nlb_dataset

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Shapes:
    n_heldin: int
    n_heldout: int
    t_bins: int
    t_forward: int
    n_train: int
    source: str  # where the numbers come from

    def model_shapes(self) -> dict[str, int]:
        return {
            "n_heldin": self.n_heldin,
            "n_heldout": self.n_heldout,
            "t_bins": self.t_bins,
            "t_forward": self.t_forward,
        }


def window_bins(layout: str, bin_width_ms: int) -> tuple[int, int]:
    """(trial bins, forward-prediction bins) of a layout, from nlb_tools' own window table."""
    from nlb_tools.make_tensors import PARAMS

    p = PARAMS[layout]
    start, end = p["make_params"]["align_range"]
    return (end - start) // bin_width_ms, p["fp_len"] // bin_width_ms


def dataset_shapes(cfg: PipelineConfig, ds: DatasetConfig) -> Shapes:
    tensors = Path(cfg.results_dir) / ds.id / "tensors" / "val.h5"
    if tensors.exists():
        import h5py

        with h5py.File(tensors, "r") as f:
            tin, tout = f["train_spikes_heldin"].shape, f["train_spikes_heldout"].shape
            fwd = f["train_spikes_heldin_forward"].shape
        return Shapes(tin[2], tout[2], tin[1], fwd[1], tin[0], str(tensors))
    t_bins, t_fwd = window_bins(ds.layout, cfg.bin_width_ms)
    if ds.source == "synthetic":
        from stndt.data.synthetic import SyntheticConfig

        syn = {**SyntheticConfig().__dict__, **ds.synthetic}
        return Shapes(syn["n_heldin"], syn["n_heldout"], t_bins, t_fwd, syn["n_train"], "synthetic settings")
    n_in, n_out, n_train = NLB_SIZES[nlb_dataset(ds.layout).name]
    return Shapes(n_in, n_out, t_bins, t_fwd, n_train, "NLB'21 sizes (approx. trials)")


def measure_step_seconds(
    params: Mapping[str, Any], shapes: Shapes, device: str = "cpu", steps: int = 3, warmup: int = 1
) -> float:
    """Median seconds of one real training step (masked + contrastive loss, backward, clip, AdamW) of a
    member with these hyperparameters, on random spike counts of the dataset's shapes.

    The steps use the learning rate of the member's first epoch, as training does: a few steps at the
    full rate from a fresh init can diverge, and NaN or denormal arithmetic is far slower than a
    healthy step (mc_rtt member 0 of config/paper.yaml, lr 0.076: 1.48 s/step instead of 0.57 on CPU)."""
    import statistics

    import torch

    from stndt.model.objective import training_loss
    from stndt.model.stndt import STNDT
    from stndt.train.schedule import lr_factor
    from stndt.train.search.space import split_params
    from stndt.train.setup import resolve_runtime

    mcfg, ocfg, tcfg = split_params(params, shapes.model_shapes())
    dev, bf16 = resolve_runtime(replace(tcfg, device=device))  # as training runs it
    torch.manual_seed(0)
    model = STNDT(mcfg).to(dev).train()
    lr = tcfg.lr * lr_factor(0, tcfg.warmup_epochs, tcfg.max_epochs)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=tcfg.weight_decay)
    gen = torch.Generator(device=dev).manual_seed(0)
    batch = torch.poisson(
        torch.full((min(tcfg.batch_size, shapes.n_train), mcfg.n_time, mcfg.n_neurons), 0.1, device=dev), generator=gen
    )
    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=bf16):
            loss = training_loss(model, batch, ocfg, tcfg.max_epochs, gen, mcfg.n_heldin, mcfg.t_bins)["loss"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), tcfg.grad_clip)
        opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def epoch_range(train: Mapping[str, Any], steps_per_epoch: int = 1) -> tuple[int, int]:
    """(fewest, most) epochs a member can train: early stopping needs its patience (`patience` epochs,
    at least `patience_steps` steps) without a better validation (checked every `val_every`), then
    its cool-down (`cooldown_fraction`), and the cap (`max_epochs`, at least `max_steps` steps) ends
    every member."""
    from stndt.train.config import TrainConfig
    from stndt.train.schedule import cooldown_epochs
    from stndt.train.stopping import epoch_cap, patience_floor

    t = TrainConfig(**{k: v for k, v in train.items() if k in TrainConfig.__dataclass_fields__})
    patience = patience_floor(t.patience, t.patience_steps, steps_per_epoch)
    cap = epoch_cap(t.max_epochs, t.max_steps, steps_per_epoch)
    fired = min(cap, math.ceil(patience / t.val_every) * t.val_every + t.val_every)
    return fired + cooldown_epochs(fired, t.cooldown_fraction, t.val_every, cap), cap


def job_counts(configfile: Path, workdir: Path | None = None, extra: tuple[str, ...] = ()) -> dict[str, int]:
    """Jobs per rule of a fresh run of `configfile` (Snakemake's dry run; `workdir`: plan what is left)."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable,
            "-m",
            "snakemake",
            "-n",
            "--quiet",
            "rules",
            "--snakefile",
            str(ROOT / "workflow" / "Snakefile"),
            "--configfile",
            str(Path(configfile).resolve()),
            "--directory",
            str(workdir or tmp),
            *extra,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=workdir or tmp)
    text = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise RuntimeError(f"snakemake dry run of {configfile} failed:\n{text[-3000:]}")
    if "Nothing to be done" in text:
        return {}
    table = re.search(r"^job\s+count\n[-\s]+\n(.*?)^total\s+\d+", text, re.MULTILINE | re.DOTALL)
    if not table:
        raise RuntimeError(f"no job table in the dry run of {configfile}:\n{text[-3000:]}")
    return {name: int(n) for name, n in re.findall(r"^(\S+)\s+(\d+)\s*$", table.group(1), re.MULTILINE)}


def training_plan(
    cfg: PipelineConfig,
    step_s: float | None = None,
    measure_device: str | None = None,
    pack: int = 1,
    pack_speedup: float = 1.0,
) -> list[dict[str, Any]]:
    """One row per dataset and variant: members, steps per epoch, seconds per step, epochs and
    device-hours (range). `pack`/`pack_speedup`: K members share one device, each step of the pack
    costing 1/pack_speedup of K solo steps (measured with benchmarks/pack.py)."""
    from stndt.train.members import resolve_member, space_for
    from stndt.train.search.space import load_search_spaces

    spaces = load_search_spaces(cfg.search_spaces)
    rows = []
    for ds in cfg.datasets.values():
        shapes = dataset_shapes(cfg, ds)
        space = space_for(spaces, ds.layout, ds.search_overrides, ds.search_space)
        for variant, members in ds.variants.items():
            params = resolve_member(space, cfg.seed, 0, variant, ds.training)
            batch = int(params.get("batch_size", 64))
            steps_per_epoch = math.ceil(shapes.n_train / batch)
            seconds = (
                step_s
                if step_s is not None
                else (measure_step_seconds(params, shapes, measure_device) if measure_device else None)
            )
            fewest, most = epoch_range(params, steps_per_epoch)
            row = {
                "dataset": ds.id,
                "variant": variant,
                "members": members,
                "trials": shapes.n_train,
                "steps/epoch": steps_per_epoch,
                "epochs min": fewest,
                "epochs max": most,
                "cap steps/member": steps_per_epoch * most,
                "s/step": seconds,
                "shapes from": shapes.source,
            }
            for label, epochs in (("hours min", fewest), ("hours max", most)):
                row[label] = (
                    None if seconds is None else members * steps_per_epoch * epochs * seconds / 3600 / pack_speedup
                )
            rows.append(row)
    return rows


def format_plan(jobs: Mapping[str, int], rows: list[dict[str, Any]], device: str, bayes: bool = False) -> str:
    """The plan as text: the job table, the training table and the total device-hours."""
    import pandas as pd

    out = ["Jobs per rule (a fresh run):", ""]
    out += [f"  {name:<28} {n:>7}" for name, n in sorted(jobs.items(), key=lambda kv: -kv[1])]
    out += [f"  {'total':<28} {sum(jobs.values()):>7}"]
    if bayes:
        out.append(
            "  (Bayesian search: each propose_wave job, a checkpoint, fixes the hyperparameters of its "
            "wave's members from the waves before it)"
        )
    out += ["", f"Training ({device}):", ""]
    table = pd.DataFrame(rows)
    out.append(table.to_string(index=False, float_format=lambda v: f"{v:,.4g}"))
    if len(table) and table["hours min"].notna().all():
        out += [
            "",
            f"Total training: {table['hours min'].sum():,.0f} - {table['hours max'].sum():,.0f} "
            f"device-hours ({device}; {int(table['members'].sum())} members, one device each)",
        ]
    return "\n".join(out)
