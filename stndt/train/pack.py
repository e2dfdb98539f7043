"""Packed training: K members of one dataset and variant in one process, one batched step.

One member (1.5M parameters, batch 64) leaves a GPU idle: kernel launches, not arithmetic, set its
step time. `train_pack` trains K members whose shapes agree (hyperparameters may differ) as one
computation on parameters stacked along a leading member axis (stndt.train.pack_model), and gives
every member exactly what `train_member` gives it alone:

* the same random streams, derived by loop.py's `_derived_seeds` from the member's seed: init (the
  member's STNDT is built under its init seed, then stacked), batch order and masks (its own
  generators), dropout (its own state of torch's global generator, swapped in around each draw);
* its own learning rate / warm-up / cosine, weight decay, clipping, span ramp, context band,
  dropouts, contrastive schedule, validation, early stopping and best checkpoint;
* validation, the best checkpoint and the rates computed by a real STNDT holding the member's weights
  (loop.py's predict_log_rates / validation_metrics / val_masked_nll / _write_outputs);
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
uninterrupted run.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from stndt.train.checkpoint import cpu_state_dict, fingerprint, load_torch, save_torch, set_aside
from stndt.train.config import TrainConfig
from stndt.train.loop import (
    _RUN_ONLY_FIELDS,
    VAL_CO_BPS,
    VAL_MASKED_NLL,
    VAL_NLL,
    _autocast,
    _clear_outputs,
    _derived_seeds,
    _write_outputs,
    full_counts,
    load_phase_tensors,
    lr_factor,
    predict_log_rates,
    resolve_device,
    train_member,
    val_mask_seed,
    val_masked_nll,
    validation_metrics,
)
from stndt.train.pack_loss import pack_loss
from stndt.train.pack_model import MemberRNG, PackedSTNDT, seeded_state
from stndt.train.pack_optim import PackedAdamW, clip_grad_norms_
from stndt.train.search_space import split_params
from stndt.train.stopping import improved, should_stop

log = logging.getLogger("stndt.train.pack")

PACK_STATE_FILE = "pack_state.pt"
PACK_STATE_FORMAT = "stndt-pack-state-v1"
# TrainConfig fields every member of a pack must share: they fix the shape or place of the batched step.
SHARED_TRAIN_FIELDS: tuple[str, ...] = ("batch_size", "device", "bf16")


@dataclass
class _Member:
    """Everything fixed about one member of the pack, plus its solo model (validation, outputs)."""

    index: int
    out_dir: Path
    params: dict[str, Any]
    configs: dict[str, Any]
    model_cfg: Any
    obj_cfg: Any
    train_cfg: TrainConfig
    seeds: dict[str, int]
    model: torch.nn.Module
    log: logging.Logger


def pack_state_path(out_dirs: Sequence[str | Path]) -> Path:
    """Where a pack keeps its resumable state: the first member's folder."""
    return Path(out_dirs[0]) / PACK_STATE_FILE


def train_pack(tensors_val: str | Path, tensors_test: str | Path | None, out_dirs: Sequence[str | Path],
               params_list: Sequence[Mapping[str, Any]], *, progress: bool | None = None) -> list[dict[str, Any]]:
    """Train len(out_dirs) members as one pack; member i from params_list[i] into out_dirs[i].

    Each folder gets train_member's outputs, each summary (returned in order) is train_member's, and
    each member's result is the one train_member gives it alone (bitwise on CPU). Members must agree
    on the architecture (stndt.train.pack_model.STRUCTURAL_FIELDS) and on batch_size, device and bf16.
    The pack's resumable state is `pack_state.pt` in out_dirs[0] (kept after the end only if some
    member sets keep_state). A pack of one member is exactly train_member.
    """
    out_dirs = [Path(d) for d in out_dirs]
    if len(out_dirs) != len(params_list) or not out_dirs:
        raise ValueError(f"train_pack: {len(out_dirs)} folders for {len(params_list)} parameter sets "
                         "(need one folder per member, at least one)")
    if len({d.resolve() for d in out_dirs}) != len(out_dirs):
        raise ValueError(f"train_pack: member folders must differ, got {[str(d) for d in out_dirs]}")
    if len(out_dirs) == 1:
        return [train_member(tensors_val, tensors_test, out_dirs[0], params_list[0], progress=progress)]
    return _run_with_logs(Path(tensors_val), None if tensors_test is None else Path(tensors_test), out_dirs,
                          [dict(p) for p in params_list], progress)


def _run_with_logs(tensors_val: Path, tensors_test: Path | None, out_dirs: list[Path],
                   params_list: list[dict[str, Any]], progress: bool | None) -> list[dict[str, Any]]:
    handlers: list[tuple[logging.Logger, logging.Handler]] = []
    for i, d in enumerate(out_dirs):
        d.mkdir(parents=True, exist_ok=True)
        _clear_outputs(d)
        mlog = logging.getLogger(f"stndt.train.pack.member{i}")
        mlog.setLevel(logging.INFO)
        handler = logging.FileHandler(d / "train.log", mode="a")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        mlog.addHandler(handler)
        handlers.append((mlog, handler))
    for tmp in out_dirs[0].glob(f".{PACK_STATE_FILE}.*.tmp"):
        tmp.unlink(missing_ok=True)
    outer = torch.get_rng_state()
    try:
        return _train_packed(tensors_val, tensors_test, out_dirs, params_list, progress,
                             [m for m, _ in handlers])
    except BaseException:
        for mlog, _ in handlers:
            mlog.exception("pack training failed")
        raise
    finally:
        torch.set_rng_state(outer)
        for mlog, handler in handlers:
            mlog.removeHandler(handler)
            handler.close()


def _build_members(val, out_dirs: list[Path], params_list: list[dict[str, Any]],
                   loggers: list[logging.Logger], device: torch.device) -> list[_Member]:
    from stndt.model.stndt import STNDT

    members = []
    for i, (d, params) in enumerate(zip(out_dirs, params_list)):
        model_cfg, obj_cfg, train_cfg = split_params(params, val.shapes)
        seeds = _derived_seeds(train_cfg.seed)
        torch.manual_seed(seeds["init"])  # as train_member: the member's init stream
        model = STNDT(model_cfg).to(device)
        configs = {"model": asdict(model_cfg), "objective": asdict(obj_cfg), "train": asdict(train_cfg)}
        members.append(_Member(i, d, params, configs, model_cfg, obj_cfg, train_cfg, seeds, model, loggers[i]))
    first = members[0].train_cfg
    for m in members[1:]:
        for f in SHARED_TRAIN_FIELDS:
            if getattr(m.train_cfg, f) != getattr(first, f):
                raise ValueError(f"cannot pack members whose '{f}' differs ({getattr(first, f)!r} for "
                                 f"{members[0].out_dir}, {getattr(m.train_cfg, f)!r} for {m.out_dir})")
    return members


def _identity(m: _Member, device: torch.device, bf16: bool) -> dict[str, Any]:
    """What makes a member's run what it is (train_member's fingerprint identity)."""
    return {"model": m.configs["model"], "objective": m.configs["objective"],
            "train": {k: v for k, v in m.configs["train"].items() if k not in _RUN_ONLY_FIELDS},
            "device_type": device.type, "bf16": bf16}


def _fresh_member_state() -> dict[str, Any]:
    """A member's bookkeeping before training: train_member's state dict minus the tensors."""
    return {"epoch": 0, "step": 0, "elapsed_s": 0.0,
            "best": {"epoch": -1, VAL_CO_BPS: -math.inf, VAL_NLL: math.inf, "weights": None},
            "best_loss": {"epoch": -1, VAL_MASKED_NLL: math.inf},
            "log": [], "done": False, "stop_reason": ""}


def validate_member(m: _Member, val, epoch: int, device: torch.device) -> dict[str, float]:
    """Val co-bps / nll / masked nll of m.model (holding the member's weights), as train_member."""
    lr_eval = predict_log_rates(m.model, val.eval_heldin, device=device, batch_size=m.train_cfg.eval_batch_size)
    metrics = validation_metrics(lr_eval, val.eval_heldout, m.model_cfg.t_bins, m.model_cfg.n_heldin)
    gen = torch.Generator(device=device).manual_seed(val_mask_seed(m.seeds["val_mask"], epoch))
    metrics[VAL_MASKED_NLL] = val_masked_nll(m.model, val.eval_heldin, val.eval_heldout, m.obj_cfg, gen,
                                             device=device, batch_size=m.train_cfg.batch_size)
    return metrics


def consider(m: _Member, st: dict[str, Any], metrics: dict[str, float], epoch: int) -> None:
    """Keep the best-co-bps weights and the last masked-loss improvement, as train_member."""
    if metrics[VAL_CO_BPS] > st["best"][VAL_CO_BPS] or st["best"]["weights"] is None:
        st["best"] = {"epoch": epoch, **metrics, "weights": cpu_state_dict(m.model)}
        m.log.info("epoch %d: new best %s %.5f", epoch, VAL_CO_BPS, metrics[VAL_CO_BPS])
    if improved(metrics[VAL_MASKED_NLL], st["best_loss"][VAL_MASKED_NLL], lower_is_better=True):
        st["best_loss"] = {"epoch": epoch, VAL_MASKED_NLL: metrics[VAL_MASKED_NLL]}


def end_epoch(m: _Member, st: dict[str, Any], means: list[float], lr: float, val, device: torch.device) -> dict:
    """A member's bookkeeping after an epoch (m.model holds its new weights): log row, divergence,
    validation, best checkpoint, early stopping, max_epochs - train_member's rules in its order."""
    cfg = m.train_cfg
    row = {"epoch": st["epoch"], "step": st["step"], "loss": means[0], "masked_nll": means[1],
           "contrast": means[2], "lr": lr, VAL_CO_BPS: None, VAL_NLL: None, VAL_MASKED_NLL: None}
    if not math.isfinite(means[0]):
        st["done"], st["stop_reason"] = True, "diverged"
        m.log.warning("epoch %d: non-finite training loss; stopping with the best checkpoint so far", st["epoch"])
    elif st["epoch"] % cfg.val_every == 0 or st["epoch"] == cfg.max_epochs:
        metrics = validate_member(m, val, st["epoch"], device)
        row.update(metrics)
        consider(m, st, metrics, st["epoch"])
        if should_stop(st["epoch"], st["best"]["epoch"], st["best_loss"]["epoch"], cfg.patience, cfg.stop_rule):
            st["done"], st["stop_reason"] = True, "early_stopping"
            m.log.info("epoch %d: no progress (stop rule %r, patience %d); stopping", st["epoch"],
                       cfg.stop_rule, cfg.patience)
    if st["epoch"] >= cfg.max_epochs and not st["done"]:
        st["done"], st["stop_reason"] = True, "max_epochs"
    return row


def _load_pack_state(path: Path, run_id: str, loggers: list[logging.Logger]) -> dict[str, Any] | None:
    if not path.exists():
        return None
    st, problem = _load_pack_file(path)
    if st is None:
        aside = set_aside(path)
        for lg in loggers:
            lg.warning("%s cannot be resumed (%s); kept it as %s and starting the pack afresh", path, problem,
                       aside.name)
        return None
    if st.get("fingerprint") != run_id:
        for lg in loggers:
            lg.warning("%s was saved for another pack, parameters or data; starting afresh", path)
        return None
    return st


def _load_pack_file(path: Path) -> tuple[dict[str, Any] | None, str]:
    try:
        st = load_torch(path)
    except RuntimeError as e:
        if isinstance(e.__cause__, OSError) or e.__cause__ is None:
            raise
        return None, f"{type(e.__cause__).__name__}: {str(e.__cause__)[:300]}"
    if not isinstance(st, dict) or st.get("format") != PACK_STATE_FORMAT:
        return None, f"not a {PACK_STATE_FORMAT} file"
    return st, ""


def _train_packed(tensors_val: Path, tensors_test: Path | None, out_dirs: list[Path],
                  params_list: list[dict[str, Any]], progress: bool | None,
                  loggers: list[logging.Logger]) -> list[dict[str, Any]]:
    from tqdm.auto import tqdm

    from stndt.model.stndt import n_parameters

    val = load_phase_tensors(tensors_val, need_eval_heldout=True)
    test = None
    if tensors_test is not None:
        test = load_phase_tensors(tensors_test)
        if test.shapes != val.shapes:
            raise ValueError(f"{tensors_test}: shapes {test.shapes} differ from the val-phase file "
                             f"{tensors_val} ({val.shapes}); both phases must have the same bins and neurons")
    first = split_params(params_list[0], val.shapes)[2]
    if first.num_threads is not None:
        torch.set_num_threads(first.num_threads)
    device = resolve_device(first.device)
    bf16 = (device.type == "cuda") if first.bf16 is None else bool(first.bf16)
    members = _build_members(val, out_dirs, params_list, loggers, device)
    run_id = fingerprint({"pack": [_identity(m, device, bf16) for m in members]}, [tensors_val, tensors_test])
    for m in members:
        m.log.info("member %s: packed with %d members (%s); device=%s bf16=%s shapes=%s", m.out_dir,
                   len(members), out_dirs[0], device, bf16, val.shapes)

    pack = PackedSTNDT([m.model for m in members],
                       MemberRNG(device, [seeded_state(m.seeds["dropout"], device) for m in members]))
    optimizer = PackedAdamW(pack.params, [m.train_cfg.weight_decay for m in members],
                            [m.train_cfg.adam_eps for m in members])
    gens = [{"batch": torch.Generator(device="cpu").manual_seed(m.seeds["batch"]),
             "mask": torch.Generator(device=device).manual_seed(m.seeds["mask"])} for m in members]
    data = torch.from_numpy(full_counts(val)).to(device)
    n_train = data.shape[0]
    if n_train == 0:
        raise ValueError(f"{tensors_val}: no training trials")

    state_path = pack_state_path(out_dirs)
    st = _load_pack_state(state_path, run_id, loggers)
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
        st = {"format": PACK_STATE_FORMAT, "fingerprint": run_id, "epoch": 0, "elapsed_s": 0.0,
              "members": [_fresh_member_state() for _ in members]}
    mst = st["members"]

    def load_member(pos: int) -> _Member:
        m = members[active[pos]]
        m.model.load_state_dict(pack.member_state_dict(pos))
        return m

    def save_state() -> None:
        st["active"] = list(active)
        st["params"] = {k: v.detach().cpu() for k, v in pack.params.items()}
        st["optimizer"] = optimizer.state_dict()
        st["dropout_rng"] = [s.cpu() for s in pack.rng.states]
        st["generators"] = [{"batch": gens[i]["batch"].get_state(), "mask": gens[i]["mask"].get_state()}
                            for i in active]
        save_torch(state_path, st)

    if st["epoch"] == 0 and not mst[0]["log"]:
        for pos in range(len(active)):  # the untrained models, so every member has a best checkpoint
            m = load_member(pos)
            metrics = validate_member(m, val, 0, device)
            consider(m, mst[m.index], metrics, 0)
            mst[m.index]["log"].append({"epoch": 0, "step": 0, **{c: None for c in ("loss", "masked_nll",
                                                                                     "contrast", "lr")},
                                        **metrics, "time_s": 0.0})
    active = [i for i in active if not mst[i]["done"]]

    max_epochs = max(m.train_cfg.max_epochs for m in members)
    bar = tqdm(total=max_epochs, initial=st["epoch"], desc=f"pack of {len(members)}",
               disable=None if progress is None else not progress, mininterval=2.0, leave=False)
    every_epochs = min(m.train_cfg.checkpoint_every_epochs for m in members)
    every_s = min(m.train_cfg.checkpoint_every_s for m in members)
    last_save_t, last_save_epoch = time.monotonic(), st["epoch"]
    t_run = time.monotonic() - st["elapsed_s"]
    bs = first.batch_size
    while active:
        epoch = st["epoch"]
        cfgs = [members[i].train_cfg for i in active]
        lrs = [c.lr * lr_factor(epoch, c.warmup_epochs, c.max_epochs) for c in cfgs]
        pack.training = True
        orders = torch.stack([torch.randperm(n_train, generator=gens[i]["batch"]) for i in active]).to(device)
        sums = torch.zeros(len(active), 3, dtype=torch.float64, device=device)
        n_batches = 0
        for b0 in range(0, n_train, bs):
            batch = data[orders[:, b0:b0 + bs]]
            with _autocast(device, bf16):
                out = pack_loss(pack, batch, [members[i].obj_cfg for i in active], epoch,
                                [gens[i]["mask"] for i in active], members[0].model_cfg.n_heldin,
                                members[0].model_cfg.t_bins)
            optimizer.zero_grad()
            out["loss"].sum().backward()
            clip_grad_norms_(pack.parameters(), [c.grad_clip for c in cfgs])
            optimizer.step(lrs)
            sums += torch.stack([out["loss"].detach().double(), out["masked_nll"].detach().double(),
                                 out["contrast"].detach().double()], dim=1)
            n_batches += 1
        st["epoch"] = epoch + 1
        elapsed = time.monotonic() - t_run
        means = (sums / n_batches).tolist()
        for pos, i in enumerate(active):
            ms = mst[i]
            ms["epoch"], ms["step"] = st["epoch"], ms["step"] + n_batches
            row = end_epoch(load_member(pos), ms, means[pos], lrs[pos], val, device)
            ms["elapsed_s"] = row["time_s"] = elapsed
            ms["log"].append(row)
            if row[VAL_CO_BPS] is not None:
                members[i].log.info("epoch %d step %d loss %.5f %s %.5f", ms["epoch"], ms["step"], means[pos][0],
                                    VAL_CO_BPS, row[VAL_CO_BPS])
        st["elapsed_s"] = elapsed
        bar.update(1)
        keep = [pos for pos, i in enumerate(active) if not mst[i]["done"]]
        if keep and len(keep) < len(active):  # finished members leave the pack: they cost nothing more
            pack = pack.subset(keep)
            optimizer.rebind(pack.params, keep)
        active = [active[pos] for pos in keep]
        if active and (st["epoch"] - last_save_epoch >= every_epochs or time.monotonic() - last_save_t >= every_s):
            save_state()
            last_save_t, last_save_epoch = time.monotonic(), st["epoch"]
    bar.close()
    save_state()  # all done: a kill while writing outputs resumes straight to writing them

    summaries = []
    for m in members:
        ms = mst[m.index]
        m.model.load_state_dict(ms["best"]["weights"])
        epochs = ms["epoch"]
        summary = {
            "best_epoch": ms["best"]["epoch"], VAL_CO_BPS: ms["best"][VAL_CO_BPS], VAL_NLL: ms["best"][VAL_NLL],
            "epochs_run": epochs, "steps": ms["step"], "stop_reason": ms["stop_reason"],
            "train_seconds": ms["elapsed_s"],  # wall clock of the pack while this member was in it
            "seconds_per_epoch": ms["elapsed_s"] / epochs if epochs else None,
            "device": device.type, "bf16": bf16, "n_parameters": n_parameters(m.model),
        }
        _write_outputs(m.out_dir, m.model, ms["best"], m.configs, m.params, summary, ms["log"], val, test,
                       device, m.train_cfg)
        m.log.info("done: %s", summary)
        summaries.append(summary)
    if not any(m.train_cfg.keep_state for m in members):
        state_path.unlink(missing_ok=True)
    return summaries
