"""Packed training: K members of one dataset and variant in one process, one batched step.

One member (1.5M parameters, batch 64) leaves a GPU idle: kernel launches, not arithmetic, set its
step time. `train_pack` trains K members whose shapes agree (hyperparameters may differ) as one
computation on parameters stacked along a leading member axis (stndt.train.pack.model), and gives
every member exactly what `train_member` (stndt.train.solo) gives it alone:

* the same model, random streams and run identity (stndt.train.setup): init (the member's STNDT is
  built under its init seed, then stacked), batch order and masks (its own generators), dropout (its
  own state of torch's global generator, swapped in around each draw);
* its own learning rate / warm-up / cosine, weight decay, clipping, span ramp, context band,
  dropouts, contrastive schedule, validation, early stopping and best checkpoint;
* the same step loss: stndt.model.objective's draw_inputs / score_outputs around one batched forward
  (stndt.train.pack.loss), and torch's AdamW / clip_grad_norm_ arithmetic per member
  (stndt.train.pack.optim);
* the same epoch driver (stndt.train.driver: schedule, batch order, bookkeeping, preemption, state
  saves, outputs) with this module's step, `PackStep`, in place of the solo one;
* outputs in its own folder with train_member's contract (best.pt, params.json, train_log.csv,
  rates_val.h5, rates_test.h5, train.log).

On CPU every member's result is bitwise the solo result (tests/test_pack.py checks it). On CUDA the
batched LayerNorm and kernels chosen for other batch sizes round differently, so a packed member
matches its solo run only to float rounding, which training then amplifies (see the report / README).
A member that stops (early stopping, divergence, its own max_epochs) leaves the pack at the end of
that epoch, so it costs nothing afterwards. A pack of one is `train_member` itself.

Resume: the whole pack's state (stacked weights, optimiser moments, every member's generators, log,
best weights) is one file, `pack_state.pt` in the first member's folder, written atomically at epoch
boundaries; a pack killed at any point and re-run continues from it and ends with the outputs of an
uninterrupted run. A damaged pack_state.pt is handled like a damaged state.pt
(stndt.train.checkpoint.resume_state): set aside with a warning in every member's train.log, and the
pack starts afresh.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from stndt.train.bookkeeping import fresh_state
from stndt.train.checkpoint import STATE_FILE, fingerprint, resume_state, save_torch
from stndt.train.data import load_train_phases
from stndt.train.driver import train_epochs
from stndt.train.inference import autocast
from stndt.train.outputs import LOG_FILE, attach_file_log, clear_outputs
from stndt.train.pack.loss import pack_loss
from stndt.train.pack.model import MemberRNG, PackedSTNDT, seeded_state
from stndt.train.pack.optim import PackedAdamW, clip_grad_norms_
from stndt.train.preemption import Preemption, Terminated
from stndt.train.search.space import split_params
from stndt.train.setup import Member, build_member, member_generators, resolve_runtime, run_identity
from stndt.train.solo import train_member

log = logging.getLogger("stndt.train.pack")

PACK_STATE_FILE = "pack_state.pt"
PACK_STATE_FORMAT = "stndt-pack-state-v1"
# Every key a pack_state.pt holds; a file missing one cannot be resumed (it is set aside).
PACK_STATE_KEYS: tuple[str, ...] = (
    "format",
    "fingerprint",
    "epoch",
    "elapsed_s",
    "members",
    "active",
    "params",
    "optimizer",
    "dropout_rng",
    "generators",
)
# TrainConfig fields every member of a pack must share: they fix the shape or place of the batched step.
SHARED_TRAIN_FIELDS: tuple[str, ...] = ("batch_size", "device", "bf16", "deterministic")


def pack_state_path(out_dirs: Sequence[str | Path]) -> Path:
    """Where a pack keeps its resumable state: the first member's folder."""
    return Path(out_dirs[0]) / PACK_STATE_FILE


def train_pack(
    tensors_val: str | Path,
    tensors_test: str | Path | None,
    out_dirs: Sequence[str | Path],
    params_list: Sequence[Mapping[str, Any]],
    *,
    progress: bool | None = None,
) -> list[dict[str, Any]]:
    """Train len(out_dirs) members as one pack; member i from params_list[i] into out_dirs[i].

    Each folder gets train_member's outputs, each summary (returned in order) is train_member's, and
    each member's result is the one train_member gives it alone (bitwise on CPU). Members must agree
    on the architecture (stndt.train.pack.model.STRUCTURAL_FIELDS) and on batch_size, device and bf16.
    The pack's resumable state is `pack_state.pt` in out_dirs[0] (kept after the end only if some
    member sets keep_state). A pack of one member is exactly train_member.
    """
    out_dirs = [Path(d) for d in out_dirs]
    if len(out_dirs) != len(params_list) or not out_dirs:
        raise ValueError(
            f"train_pack: {len(out_dirs)} folders for {len(params_list)} parameter sets "
            "(need one folder per member, at least one)"
        )
    if len({d.resolve() for d in out_dirs}) != len(out_dirs):
        raise ValueError(f"train_pack: member folders must differ, got {[str(d) for d in out_dirs]}")
    if len(out_dirs) == 1:
        return [train_member(tensors_val, tensors_test, out_dirs[0], params_list[0], progress=progress)]
    return _run_with_logs(
        Path(tensors_val),
        None if tensors_test is None else Path(tensors_test),
        out_dirs,
        [dict(p) for p in params_list],
        progress,
    )


def _run_with_logs(
    tensors_val: Path,
    tensors_test: Path | None,
    out_dirs: list[Path],
    params_list: list[dict[str, Any]],
    progress: bool | None,
) -> list[dict[str, Any]]:
    handlers: list[tuple[logging.Logger, logging.Handler]] = []
    for i, d in enumerate(out_dirs):
        d.mkdir(parents=True, exist_ok=True)
        clear_outputs(d, (STATE_FILE, PACK_STATE_FILE) if i == 0 else (STATE_FILE,))
        mlog = logging.getLogger(f"stndt.train.pack.member{i}")
        handlers.append((mlog, attach_file_log(mlog, d / LOG_FILE)))
    outer = torch.get_rng_state()
    try:
        with Preemption(_PackLog([m for m, _ in handlers])) as preemption:
            return _train_packed(
                tensors_val, tensors_test, out_dirs, params_list, progress, [m for m, _ in handlers], preemption
            )
    except Terminated:
        raise
    except BaseException:
        for mlog, _ in handlers:
            mlog.exception("pack training failed")
        raise
    finally:
        torch.set_rng_state(outer)
        for mlog, handler in handlers:
            mlog.removeHandler(handler)
            handler.close()


class _PackLog:
    """Logs a preemption message into every member's train.log."""

    def __init__(self, loggers: list[logging.Logger]) -> None:
        self.loggers = loggers

    def warning(self, msg: str, *args: Any) -> None:
        for lg in self.loggers:
            lg.warning(msg, *args)


def _build_members(
    val, out_dirs: list[Path], params_list: list[dict[str, Any]], loggers: list[logging.Logger], device: torch.device
) -> list[Member]:
    members = [
        build_member(i, d, params, val.shapes, len(val.train_heldin), device, loggers[i])
        for i, (d, params) in enumerate(zip(out_dirs, params_list))
    ]
    first = members[0].train_cfg
    for m in members[1:]:
        for f in SHARED_TRAIN_FIELDS:
            if getattr(m.train_cfg, f) != getattr(first, f):
                raise ValueError(
                    f"cannot pack members whose '{f}' differs ({getattr(first, f)!r} for "
                    f"{members[0].out_dir}, {getattr(m.train_cfg, f)!r} for {m.out_dir})"
                )
    return members


def _train_packed(
    tensors_val: Path,
    tensors_test: Path | None,
    out_dirs: list[Path],
    params_list: list[dict[str, Any]],
    progress: bool | None,
    loggers: list[logging.Logger],
    preemption: Preemption,
) -> list[dict[str, Any]]:
    val, test = load_train_phases(tensors_val, tensors_test)
    device, bf16 = resolve_runtime(split_params(params_list[0], val.shapes)[2])
    members = _build_members(val, out_dirs, params_list, loggers, device)
    run_id = fingerprint({"pack": [run_identity(m, device, bf16) for m in members]}, [tensors_val, tensors_test])
    for m in members:
        m.log.info(
            "member %s: packed with %d members (%s); device=%s bf16=%s shapes=%s",
            m.out_dir,
            len(members),
            out_dirs[0],
            device,
            bf16,
            val.shapes,
        )
    step = PackStep(members, run_id, pack_state_path(out_dirs), device, bf16)
    return train_epochs(step, val, test, tensors_val, device, bf16, progress, preemption)


class PackStep:
    """The step of a pack (stndt.train.driver.Step): the members' weights stacked in a PackedSTNDT,
    trained by pack_loss, clip_grad_norms_ and PackedAdamW; each member's dropout from its own state of
    torch's global generator (MemberRNG); its state is pack_state.pt in the first member's folder."""

    def __init__(self, members: list[Member], run_id: str, state_path: Path, device: torch.device, bf16: bool):
        self.members, self.active = members, list(range(len(members)))
        self.run_id, self.state_path, self.device, self.bf16 = run_id, state_path, device, bf16
        self.pack = PackedSTNDT(
            [m.model for m in members], MemberRNG(device, [seeded_state(m.seeds["dropout"], device) for m in members])
        )
        self.optimizer = PackedAdamW(
            self.pack.params, [m.train_cfg.weight_decay for m in members], [m.train_cfg.adam_eps for m in members]
        )
        self.generators = [member_generators(m.seeds, device) for m in members]
        self.desc = f"pack of {len(members)}"
        self.lrs: list[float] = []

    def resume(self) -> dict[str, Any]:
        st = resume_state(
            self.state_path,
            self.run_id,
            [m.log for m in self.members],
            fmt=PACK_STATE_FORMAT,
            keys=PACK_STATE_KEYS,
            subject="the pack",
        )
        if st is None:
            return {"epoch": 0, "elapsed_s": 0.0, "members": [fresh_state() for _ in self.members]}
        self.active = list(st["active"])
        self.pack = self.pack.subset(self.active)
        for name, value in st["params"].items():
            self.pack.params[name] = value.to(self.device).requires_grad_(True)
        self.pack.rng.states = list(st["dropout_rng"])
        self.optimizer.rebind(self.pack.params, self.active)
        self.optimizer.load_state_dict(st["optimizer"])
        for i, g in zip(self.active, st["generators"]):
            self.generators[i]["batch"].set_state(g["batch"])
            self.generators[i]["mask"].set_state(g["mask"])
        for m in self.members:
            m.log.info("resumed pack from %s at epoch %d", self.state_path, st["epoch"])
        return {"epoch": st["epoch"], "elapsed_s": st["elapsed_s"], "members": st["members"]}

    def save(self, run: dict[str, Any]) -> None:
        save_torch(
            self.state_path,
            {
                "format": PACK_STATE_FORMAT,
                "fingerprint": self.run_id,
                **run,
                "active": list(self.active),
                "params": {k: v.detach().cpu() for k, v in self.pack.params.items()},
                "optimizer": self.optimizer.state_dict(),
                "dropout_rng": [s.cpu() for s in self.pack.rng.states],
                "generators": [
                    {"batch": self.generators[i]["batch"].get_state(), "mask": self.generators[i]["mask"].get_state()}
                    for i in self.active
                ],
            },
        )

    def start_epoch(self, lrs: list[float]) -> None:
        self.lrs = lrs
        self.pack.training = True

    def train_batch(self, batch: torch.Tensor, epoch: int) -> torch.Tensor:
        members = self.members
        with autocast(self.device, self.bf16):
            out = pack_loss(
                self.pack,
                batch,
                [members[i].obj_cfg for i in self.active],
                epoch,
                [self.generators[i]["mask"] for i in self.active],
                members[0].model_cfg.n_heldin,
                members[0].model_cfg.t_bins,
            )
        self.optimizer.zero_grad()
        out["loss"].sum().backward()
        clip_grad_norms_(self.pack.parameters(), [members[i].train_cfg.grad_clip for i in self.active])
        self.optimizer.step(self.lrs)
        parts = [out["loss"].detach().double(), out["masked_nll"].detach().double(), out["contrast"].detach().double()]
        return torch.stack(parts, dim=1)

    def member(self, pos: int) -> Member:
        m = self.members[self.active[pos]]
        m.model.load_state_dict(self.pack.member_state_dict(pos))
        return m

    def leave(self, keep: list[int]) -> None:
        if keep:
            self.pack = self.pack.subset(keep)
            self.optimizer.rebind(self.pack.params, keep)
        self.active = [self.active[pos] for pos in keep]
