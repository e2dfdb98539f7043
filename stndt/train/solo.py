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

The epochs are run by the driver that also runs packs (stndt.train.driver.train_epochs); this module
gives it the member's step (`SoloStep`): its real STNDT, torch's AdamW and clip_grad_norm_, dropout
from torch's global generator.

Reproducibility: every random draw comes from generators seeded from TrainConfig.seed
(stndt.train.setup). Their states, the model, optimiser, epoch counter, best weights and log rows are
saved atomically to out_dir/state.pt at epoch boundaries (every `checkpoint_every_epochs` epochs or
`checkpoint_every_s` seconds). A job killed at any point and re-run resumes from that state and ends
with bitwise the same outputs on the same machine as an uninterrupted run (wall-clock columns aside).
The final outputs are written only at the end, each atomically, rates last.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from stndt.model.objective import training_loss
from stndt.train.bookkeeping import fresh_state
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
from stndt.train.data import load_train_phases
from stndt.train.driver import train_epochs
from stndt.train.inference import autocast
from stndt.train.outputs import LOG_FILE, attach_file_log, clear_outputs
from stndt.train.preemption import Preemption, Terminated
from stndt.train.search.space import split_params
from stndt.train.setup import Member, build_member, member_generators, resolve_runtime, run_identity

log = logging.getLogger("stndt.train")

# The entries of a state.pt that are the step's, not the member's bookkeeping (stndt.train.bookkeeping).
_STEP_KEYS: tuple[str, ...] = ("format", "fingerprint", "model", "optimizer", "rng")


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
    from stndt.model.stndt import n_parameters

    val, test = load_train_phases(tensors_val, tensors_test)
    device, bf16 = resolve_runtime(split_params(params, val.shapes)[2])
    m = build_member(0, out_dir, params, val.shapes, len(val.train_heldin), device, log)
    run_id = fingerprint(run_identity(m, device, bf16), [tensors_val, tensors_test])
    log.info("member %s: device=%s bf16=%s shapes=%s", out_dir, device, bf16, val.shapes)
    step = SoloStep(m, run_id, device, bf16)
    log.info("model: %d parameters", n_parameters(m.model))
    return train_epochs(step, val, test, tensors_val, device, bf16, progress, preemption)[0]


class SoloStep:
    """The step of one member (stndt.train.driver.Step): its real STNDT, torch's AdamW and
    clip_grad_norm_, dropout from torch's global generator (re-seeded here), masks and batch order from
    its own generators; its state is out_dir/state.pt."""

    def __init__(self, m: Member, run_id: str, device: torch.device, bf16: bool) -> None:
        cfg = m.train_cfg
        self.members, self.active = [m], [0]
        self.run_id, self.device, self.bf16 = run_id, device, bf16
        self.optimizer = torch.optim.AdamW(
            m.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, eps=cfg.adam_eps
        )
        torch.manual_seed(m.seeds["dropout"])
        self.generators = [member_generators(m.seeds, device)]
        self.state_path = m.out_dir / STATE_FILE
        self.desc = m.out_dir.name

    def resume(self) -> dict[str, Any]:
        m = self.members[0]
        st = resume_state(self.state_path, self.run_id, [m.log])
        if st is None:
            ms = fresh_state()
        else:
            m.model.load_state_dict(st["model"])
            self.optimizer.load_state_dict(st["optimizer"])
            restore_rng(st["rng"], self.generators[0])
            m.log.info("resumed from %s at epoch %d", self.state_path, st["epoch"])
            ms = {k: v for k, v in st.items() if k not in _STEP_KEYS}
        self.active = [] if ms["done"] else [0]
        return {"epoch": ms["epoch"], "elapsed_s": ms["elapsed_s"], "members": [ms]}

    def save(self, run: dict[str, Any]) -> None:
        """state.pt: the member's bookkeeping (its clock included) with the model, optimiser and RNGs."""
        save_torch(
            self.state_path,
            {
                "format": STATE_FORMAT,
                "fingerprint": self.run_id,
                **run["members"][0],
                "model": cpu_state_dict(self.members[0].model),
                "optimizer": self.optimizer.state_dict(),
                "rng": capture_rng(self.generators[0]),
            },
        )

    def start_epoch(self, lrs: list[float]) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lrs[0]
        self.members[0].model.train()

    def train_batch(self, batch: torch.Tensor, epoch: int) -> torch.Tensor:
        m = self.members[0]
        with autocast(self.device, self.bf16):
            out = training_loss(
                m.model,
                batch[0],
                m.obj_cfg,
                epoch,
                self.generators[0]["mask"],
                m.model_cfg.n_heldin,
                m.model_cfg.t_bins,
            )
        loss = out["loss"]
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.model.parameters(), m.train_cfg.grad_clip)
        self.optimizer.step()
        parts = [loss.detach().double(), out["masked_nll"].detach().double(), out["contrast"].detach().double()]
        return torch.stack(parts).unsqueeze(0)

    def member(self, pos: int) -> Member:
        return self.members[0]

    def leave(self, keep: list[int]) -> None:
        self.active = [self.active[p] for p in keep]
