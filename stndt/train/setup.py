"""One member's run, set up: its settings resolved, where and in which precision it trains, its random
streams, its freshly initialised model and the fingerprint that ties a saved state to the run.

Used alike by train_member (stndt.train.solo) and by packed training (stndt.train.pack.train), so a member
gets the same model, seeds and identity either way. Reproducibility: every random draw comes from
generators seeded from TrainConfig.seed (derived_seeds) - model init, batch order (CPU generator),
masks (generator on the training device), dropout (torch's global RNG, re-seeded), val masks (a
generator re-seeded from the seed and the epoch at each validation, so it needs no saved state).
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stndt.train.config import TrainConfig
from stndt.train.device import cpu_has_native_bf16, keep_freed_memory
from stndt.train.search.space import split_params
from stndt.train.stopping import epoch_cap, steps_per_epoch

# TrainConfig fields that change how a job runs but not what it computes (excluded from the
# fingerprint, so changing them does not discard a saved state).
RUN_ONLY_FIELDS: tuple[str, ...] = (
    "device",
    "eval_batch_size",
    "num_threads",
    "checkpoint_every_epochs",
    "checkpoint_every_s",
    "keep_state",
)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"TrainConfig.device={name!r} but CUDA is not available")
    return device


def use_deterministic_kernels() -> None:
    """Ask for kernels that give bitwise-equal results from run to run (training.deterministic).

    On the CPU this project's training is deterministic already (tested). On CUDA, cuBLAS needs a fixed
    workspace (CUBLAS_WORKSPACE_CONFIG, read when cuBLAS starts, so it is set before the model is built)
    and torch must pick deterministic kernels; torch raises, naming the op, if one has none.
    """
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False


def resolve_runtime(train_cfg: TrainConfig) -> tuple[torch.device, bool]:
    """Apply num_threads (and, on CPU, keep_freed_memory); (device, bf16 autocast?) of a run
    (bf16=None: on CUDA, and on a CPU with bf16 matrix instructions, where it is faster than float32)."""
    if train_cfg.num_threads is not None:
        torch.set_num_threads(train_cfg.num_threads)
    if train_cfg.deterministic:
        use_deterministic_kernels()
    device = resolve_device(train_cfg.device)
    if device.type == "cpu":
        keep_freed_memory()
    if train_cfg.bf16 is None:
        bf16 = device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16())
    else:
        bf16 = bool(train_cfg.bf16)
    return device, bf16


def derived_seeds(seed: int) -> dict[str, int]:
    """Independent seeds for each random stream, all from the member seed."""
    names = ("init", "dropout", "batch", "mask", "val_mask")  # append only: spawn keys are positional
    states = np.random.SeedSequence(seed).spawn(len(names))
    return {n: int(s.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1)) for n, s in zip(names, states)}


def val_mask_seed(base: int, epoch: int) -> int:
    """Seed of the val-mask generator at the validation after `epoch` epochs: a fresh mask at every
    validation (as the reference, which draws val masks from the global RNG), yet a pure function of
    (seed, epoch), so resuming needs no generator state."""
    return (int(base) + int(epoch)) % (1 << 63)


def member_generators(seeds: dict[str, int], device: torch.device) -> dict[str, torch.Generator]:
    """A member's batch-order (CPU) and mask (training device) generators, freshly seeded."""
    return {
        "batch": torch.Generator(device="cpu").manual_seed(seeds["batch"]),
        "mask": torch.Generator(device=device).manual_seed(seeds["mask"]),
    }


@dataclass
class Member:
    """Everything fixed about one member's run, and a real STNDT that holds its weights whenever it is
    validated or its outputs are written (in a pack: loaded from the stacked parameters)."""

    index: int  # position in its pack (0 alone)
    out_dir: Path
    params: dict[str, Any]
    configs: dict[str, Any]  # {"model", "objective", "train"}: the resolved configs as dicts
    model_cfg: Any
    obj_cfg: Any
    train_cfg: TrainConfig
    seeds: dict[str, int]
    model: torch.nn.Module
    log: logging.Logger


def build_member(
    index: int,
    out_dir: Path,
    params: dict[str, Any],
    shapes: dict[str, int],
    n_train: int,
    device: torch.device,
    logger: logging.Logger,
) -> Member:
    """Resolve `params` against the data (its shapes, and its `n_train` training trials, which turn the
    cap's floor in steps, max_steps, into epochs) and build the member's model from its init seed."""
    from stndt.model.stndt import STNDT  # looked up at call time (tests substitute a recording STNDT)

    model_cfg, obj_cfg, train_cfg = split_params(params, shapes)
    if train_cfg.max_steps:
        cap = epoch_cap(train_cfg.max_epochs, train_cfg.max_steps, steps_per_epoch(n_train, train_cfg.batch_size))
        train_cfg = replace(train_cfg, max_epochs=cap)
    seeds = derived_seeds(train_cfg.seed)
    torch.manual_seed(seeds["init"])
    model = STNDT(model_cfg).to(device)
    configs = {"model": asdict(model_cfg), "objective": asdict(obj_cfg), "train": asdict(train_cfg)}
    return Member(index, out_dir, params, configs, model_cfg, obj_cfg, train_cfg, seeds, model, logger)


def run_identity(m: Member, device: torch.device, bf16: bool) -> dict[str, Any]:
    """What makes a member's run what it is (hashed with its data files into the state's fingerprint)."""
    return {
        "model": m.configs["model"],
        "objective": m.configs["objective"],
        "train": {k: v for k, v in m.configs["train"].items() if k not in RUN_ONLY_FIELDS},
        "device_type": device.type,
        "bf16": bf16,
    }
