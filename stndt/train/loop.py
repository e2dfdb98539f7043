"""Train one ensemble member: resumable, reproducible, and writing the NLB submission-format rates.

One call of `train_member` does the whole job of a member:
  read the val-phase tensors (stndt.train.data) -> train (AdamW, warm-up + cosine (stndt.train.schedule),
  gradient clipping, optional bf16) -> after every epoch stndt.train.bookkeeping's rules: keep the
  weights with the best val co-bps (nlb_tools bits_per_spike on held-out neurons of the val trials,
  every `val_every` epochs); early stopping by stndt.train.stopping.should_stop: with the published
  rule (stop_rule "both") when val co-bps AND the val masked loss (the reference's "val loss") have
  both stalled for more than `patience` epochs
  -> write best.pt, params.json, train_log.csv, rates_val.h5, rates_test.h5 into out_dir
  (stndt.train.outputs).

Reproducibility: every random draw comes from generators seeded from TrainConfig.seed
(stndt.train.setup). Their states, the model, optimiser, epoch counter, best weights and log rows are
saved atomically to out_dir/state.pt at epoch boundaries (every `checkpoint_every_epochs` epochs or
`checkpoint_every_s` seconds). A job killed at any point and re-run resumes from that state and ends
with bitwise the same outputs on the same machine as an uninterrupted run (wall-clock columns aside).
The final outputs are written only at the end, each atomically, rates last.

Packed training (stndt.train.pack) runs the same setup, step halves (stndt.model.objective) and
bookkeeping for K members at once; only the step itself (one model vs stacked parameters) differs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from stndt.members import STOP_CAP
from stndt.train.bookkeeping import end_epoch, finish, fresh_state, validate_untrained
from stndt.train.checkpoint import (
    STATE_FILE,
    STATE_FORMAT,
    capture_rng,
    cpu_state_dict,
    fingerprint,
    restore_rng,
    resume_state,
    save_torch,
)
from stndt.train.data import full_counts, load_train_phases
from stndt.train.inference import VAL_CO_BPS, autocast
from stndt.train.outputs import LOG_FILE, attach_file_log, clear_outputs
from stndt.train.preemption import Preemption, Terminated
from stndt.train.schedule import lr_factor
from stndt.train.search_space import split_params
from stndt.train.setup import build_member, member_generators, resolve_runtime, run_identity

log = logging.getLogger("stndt.train")


def train_member(
    tensors_val: str | Path,
    tensors_test: str | Path | None,
    out_dir: str | Path,
    params: Mapping[str, Any],
    *,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Train one member from flat hyperparameters `params` and write its outputs into `out_dir`.

    `params` holds any fields of ModelConfig / ObjectiveConfig / TrainConfig by name (e.g. a
    sample_params() draw merged with fixed settings such as max_epochs and seed); shapes come from
    the val tensors file. `tensors_test=None` skips rates_test.h5. `progress`: tqdm bar (None = only
    on a terminal). Returns a summary (best epoch, val co-bps, epochs run, stop reason, timing).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    clear_outputs(out_dir)
    handler = attach_file_log(log, out_dir / LOG_FILE)
    try:
        with Preemption(log) as preemption:
            return _train_member(
                Path(tensors_val),
                None if tensors_test is None else Path(tensors_test),
                out_dir,
                dict(params),
                progress,
                preemption,
            )
    except Terminated:
        raise
    except BaseException:
        log.exception("training failed")
        raise
    finally:
        log.removeHandler(handler)
        handler.close()


def _train_member(
    tensors_val: Path,
    tensors_test: Path | None,
    out_dir: Path,
    params: dict[str, Any],
    progress: bool | None,
    preemption: Preemption,
) -> dict[str, Any]:
    from tqdm.auto import tqdm

    from stndt.model.objective import training_loss
    from stndt.model.stndt import n_parameters

    val, test = load_train_phases(tensors_val, tensors_test)
    device, bf16 = resolve_runtime(split_params(params, val.shapes)[2])
    m = build_member(0, out_dir, params, val.shapes, len(val.train_heldin), device, log)
    model, model_cfg, train_cfg = m.model, m.model_cfg, m.train_cfg
    run_id = fingerprint(run_identity(m, device, bf16), [tensors_val, tensors_test])
    log.info("member %s: device=%s bf16=%s shapes=%s", out_dir, device, bf16, val.shapes)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=train_cfg.lr, weight_decay=train_cfg.weight_decay, eps=train_cfg.adam_eps
    )
    torch.manual_seed(m.seeds["dropout"])
    generators = member_generators(m.seeds, device)
    log.info("model: %d parameters", n_parameters(model))

    data = torch.from_numpy(full_counts(val)).to(device)
    n_train = data.shape[0]
    if n_train == 0:
        raise ValueError(f"{tensors_val}: no training trials")

    state_path = out_dir / STATE_FILE
    st = resume_state(state_path, run_id, [log])
    if st is not None:
        model.load_state_dict(st["model"])
        optimizer.load_state_dict(st["optimizer"])
        restore_rng(st["rng"], generators)
        log.info("resumed from %s at epoch %d", state_path, st["epoch"])
    else:
        st = {"format": STATE_FORMAT, "fingerprint": run_id, **fresh_state()}

    def save_state() -> None:
        st["model"] = cpu_state_dict(model)
        st["optimizer"] = optimizer.state_dict()
        st["rng"] = capture_rng(generators)
        save_torch(state_path, st)

    if st["epoch"] == 0 and not st["log"]:
        validate_untrained(m, st, val, device)

    bar = tqdm(
        total=train_cfg.max_epochs,
        initial=st["epoch"],
        desc=out_dir.name,
        disable=None if progress is None else not progress,
        mininterval=2.0,
        leave=False,
    )
    last_save_t, last_save_epoch = time.monotonic(), st["epoch"]
    t_run = time.monotonic() - st["elapsed_s"]
    bs = train_cfg.batch_size
    while not st["done"] and st["epoch"] < train_cfg.max_epochs:
        epoch = st["epoch"]  # 0-based index of the epoch being trained
        lr = train_cfg.lr * lr_factor(epoch, train_cfg.warmup_epochs, train_cfg.max_epochs, st.get("cooldown"))
        for group in optimizer.param_groups:
            group["lr"] = lr
        model.train()
        order = torch.randperm(n_train, generator=generators["batch"]).to(device)
        sums = torch.zeros(3, dtype=torch.float64, device=device)
        n_batches = 0
        for i in range(0, n_train, bs):
            batch = data[order[i : i + bs]]
            with autocast(device, bf16):
                out = training_loss(
                    model, batch, m.obj_cfg, epoch, generators["mask"], model_cfg.n_heldin, model_cfg.t_bins
                )
            loss = out["loss"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), train_cfg.grad_clip)
            optimizer.step()
            sums += torch.stack(
                [loss.detach().double(), out["masked_nll"].detach().double(), out["contrast"].detach().double()]
            )
            n_batches += 1
            st["step"] += 1
        st["epoch"] = epoch + 1
        means = (sums / n_batches).tolist()
        row = end_epoch(m, st, means, lr, val, device, lambda: time.monotonic() - t_run)
        bar.update(1)
        if row[VAL_CO_BPS] is not None:
            bar.set_postfix(loss=f"{means[0]:.4f}", cobps=f"{row[VAL_CO_BPS]:.4f}", refresh=False)
        if not st["done"]:
            preemption.stop_if_requested(save_state, st["epoch"], state_path)
        if not st["done"] and (
            st["epoch"] - last_save_epoch >= train_cfg.checkpoint_every_epochs
            or time.monotonic() - last_save_t >= train_cfg.checkpoint_every_s
        ):
            save_state()
            last_save_t, last_save_epoch = time.monotonic(), st["epoch"]
    bar.close()
    if st["stop_reason"] == "":
        st["done"], st["stop_reason"] = True, STOP_CAP
    save_state()  # done: a kill while writing outputs resumes straight to writing them

    summary = finish(m, st, val, test, device, bf16)
    if not train_cfg.keep_state:
        state_path.unlink(missing_ok=True)
    return summary
