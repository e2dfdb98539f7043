"""Packed training: K members of one dataset and variant in one process, one batched step.

One member (1.5M parameters, batch 64) leaves a GPU idle: kernel launches, not arithmetic, set its
step time. `train_pack` trains K members whose shapes agree (hyperparameters may differ) as one
computation on parameters stacked along a leading member axis (stndt.train.pack_model), and gives
every member exactly what `train_member` gives it alone:

* the same model, random streams and run identity (stndt.train.setup): init (the member's STNDT is
  built under its init seed, then stacked), batch order and masks (its own generators), dropout (its
  own state of torch's global generator, swapped in around each draw);
* its own learning rate / warm-up / cosine, weight decay, clipping, span ramp, context band,
  dropouts, contrastive schedule, validation, early stopping and best checkpoint;
* the same step loss: stndt.model.objective's draw_inputs / score_outputs around one batched forward
  (stndt.train.pack_loss);
* the same bookkeeping (stndt.train.bookkeeping: validation, best checkpoint, early stopping, log rows,
  summary and outputs) on a real STNDT holding the member's weights;
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
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from stndt.train.bookkeeping import end_epoch, finish, fresh_state, validate_untrained
from stndt.train.checkpoint import STATE_FILE, fingerprint, resume_state, save_torch
from stndt.train.data import full_counts, load_train_phases
from stndt.train.inference import autocast
from stndt.train.loop import train_member
from stndt.train.outputs import LOG_FILE, attach_file_log, clear_outputs
from stndt.train.pack_loss import pack_loss
from stndt.train.pack_model import MemberRNG, PackedSTNDT, seeded_state
from stndt.train.pack_optim import PackedAdamW, clip_grad_norms_
from stndt.train.preemption import Preemption, Terminated
from stndt.train.schedule import lr_factor
from stndt.train.search_space import split_params
from stndt.train.setup import Member, build_member, member_generators, resolve_runtime, run_identity

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
    on the architecture (stndt.train.pack_model.STRUCTURAL_FIELDS) and on batch_size, device and bf16.
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
    from tqdm.auto import tqdm

    val, test = load_train_phases(tensors_val, tensors_test)
    first = split_params(params_list[0], val.shapes)[2]
    device, bf16 = resolve_runtime(first)
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

    pack = PackedSTNDT(
        [m.model for m in members], MemberRNG(device, [seeded_state(m.seeds["dropout"], device) for m in members])
    )
    optimizer = PackedAdamW(
        pack.params, [m.train_cfg.weight_decay for m in members], [m.train_cfg.adam_eps for m in members]
    )
    gens = [member_generators(m.seeds, device) for m in members]
    data = torch.from_numpy(full_counts(val)).to(device)
    n_train = data.shape[0]
    if n_train == 0:
        raise ValueError(f"{tensors_val}: no training trials")

    state_path = pack_state_path(out_dirs)
    st = resume_state(state_path, run_id, loggers, fmt=PACK_STATE_FORMAT, keys=PACK_STATE_KEYS, subject="the pack")
    active = list(range(len(members)))  # member indices still training, in pack order
    if st is not None:
        active = list(st["active"])
        pack = pack.subset(active)
        for name, value in st["params"].items():
            pack.params[name] = value.to(device).requires_grad_(True)
        pack.rng.states = list(st["dropout_rng"])
        optimizer.rebind(pack.params, active)
        optimizer.load_state_dict(st["optimizer"])
        for i, g in zip(active, st["generators"]):
            gens[i]["batch"].set_state(g["batch"])
            gens[i]["mask"].set_state(g["mask"])
        for m in members:
            m.log.info("resumed pack from %s at epoch %d", state_path, st["epoch"])
    else:
        st = {
            "format": PACK_STATE_FORMAT,
            "fingerprint": run_id,
            "epoch": 0,
            "elapsed_s": 0.0,
            "members": [fresh_state() for _ in members],
        }
    mst = st["members"]

    def load_member(pos: int) -> Member:
        m = members[active[pos]]
        m.model.load_state_dict(pack.member_state_dict(pos))
        return m

    def save_state() -> None:
        st["active"] = list(active)
        st["params"] = {k: v.detach().cpu() for k, v in pack.params.items()}
        st["optimizer"] = optimizer.state_dict()
        st["dropout_rng"] = [s.cpu() for s in pack.rng.states]
        st["generators"] = [
            {"batch": gens[i]["batch"].get_state(), "mask": gens[i]["mask"].get_state()} for i in active
        ]
        save_torch(state_path, st)

    if st["epoch"] == 0 and not mst[0]["log"]:
        for pos in range(len(active)):  # the untrained models, so every member has a best checkpoint
            m = load_member(pos)
            validate_untrained(m, mst[m.index], val, device)
    active = [i for i in active if not mst[i]["done"]]

    max_epochs = max(m.train_cfg.max_epochs for m in members)
    bar = tqdm(
        total=max_epochs,
        initial=st["epoch"],
        desc=f"pack of {len(members)}",
        disable=None if progress is None else not progress,
        mininterval=2.0,
        leave=False,
    )
    every_epochs = min(m.train_cfg.checkpoint_every_epochs for m in members)
    every_s = min(m.train_cfg.checkpoint_every_s for m in members)
    last_save_t, last_save_epoch = time.monotonic(), st["epoch"]
    t_run = time.monotonic() - st["elapsed_s"]
    bs = first.batch_size
    while active:
        epoch = st["epoch"]
        cfgs = [members[i].train_cfg for i in active]
        lrs = [
            c.lr * lr_factor(epoch, c.warmup_epochs, c.max_epochs, mst[i].get("cooldown")) for c, i in zip(cfgs, active)
        ]
        pack.training = True
        orders = torch.stack([torch.randperm(n_train, generator=gens[i]["batch"]) for i in active]).to(device)
        sums = torch.zeros(len(active), 3, dtype=torch.float64, device=device)
        n_batches = 0
        for b0 in range(0, n_train, bs):
            batch = data[orders[:, b0 : b0 + bs]]
            with autocast(device, bf16):
                out = pack_loss(
                    pack,
                    batch,
                    [members[i].obj_cfg for i in active],
                    epoch,
                    [gens[i]["mask"] for i in active],
                    members[0].model_cfg.n_heldin,
                    members[0].model_cfg.t_bins,
                )
            optimizer.zero_grad()
            out["loss"].sum().backward()
            clip_grad_norms_(pack.parameters(), [c.grad_clip for c in cfgs])
            optimizer.step(lrs)
            sums += torch.stack(
                [out["loss"].detach().double(), out["masked_nll"].detach().double(), out["contrast"].detach().double()],
                dim=1,
            )
            n_batches += 1
        st["epoch"] = epoch + 1
        elapsed = time.monotonic() - t_run  # the pack's clock: the same for every member this epoch
        means = (sums / n_batches).tolist()
        for pos, i in enumerate(active):
            ms = mst[i]
            ms["epoch"], ms["step"] = st["epoch"], ms["step"] + n_batches
            end_epoch(load_member(pos), ms, means[pos], lrs[pos], val, device, lambda: elapsed)  # noqa: B023 (called at once)
        st["elapsed_s"] = elapsed
        bar.update(1)
        keep = [pos for pos, i in enumerate(active) if not mst[i]["done"]]
        if keep and len(keep) < len(active):  # finished members leave the pack: they cost nothing more
            pack = pack.subset(keep)
            optimizer.rebind(pack.params, keep)
        active = [active[pos] for pos in keep]
        if active:
            preemption.stop_if_requested(save_state, st["epoch"], state_path)
        if active and (st["epoch"] - last_save_epoch >= every_epochs or time.monotonic() - last_save_t >= every_s):
            save_state()
            last_save_t, last_save_epoch = time.monotonic(), st["epoch"]
    bar.close()
    save_state()  # all done: a kill while writing outputs resumes straight to writing them

    summaries = [finish(m, mst[m.index], val, test, device, bf16) for m in members]
    if not any(m.train_cfg.keep_state for m in members):
        state_path.unlink(missing_ok=True)
    return summaries
