"""The one epoch driver: trains a member alone (stndt.train.solo) or K members as a pack
(stndt.train.pack.train) through the same loop; only the step object differs.

A step object holds the members (stndt.train.setup.Member), their optimiser and random streams, and
does what depends on how the weights are held: one real STNDT with torch's AdamW (solo) or parameters
stacked along a member axis with stndt.train.pack's model, loss and optimiser (pack). The driver owns
everything else, the same for both:

* per member: its learning rate each epoch (stndt.train.schedule.lr_factor, its own cool-down), its
  batch order (its own generator), its step count and the bookkeeping after every epoch
  (stndt.train.bookkeeping: validation, best checkpoint, early stopping, log row); a member that stops
  leaves the step at the end of that epoch (`leave`), so it costs nothing afterwards;
* the run: the validation of the untrained models, the progress bar, SIGTERM (stndt.train.preemption),
  the periodic state saves (every `checkpoint_every_epochs` epochs or `checkpoint_every_s` seconds, the
  smallest of the members'), the final save, the outputs (stndt.train.bookkeeping.finish) and the
  removal of the state file (kept if some member sets keep_state).

The run's state is {"epoch", "elapsed_s", "members": [each member's bookkeeping state]}; the step object
writes it with its own tensors to its state file and reads it back (`save` / `resume`), so a run
killed at any point and re-run continues at the last epoch boundary saved and ends with bitwise the
outputs of an uninterrupted run (wall-clock columns aside).

A member alone is not a pack of one, though on CPU that would give it bitwise the same result: the
packed step with K = 1 took 1-6% longer per epoch on CPU (benchmarks/epoch.py, docs/benchmarks.md),
and on CUDA it would change the member's numerics (a packed member matches its solo run there only to
rounding) at a speed not measured.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Protocol

import torch

from stndt.train.bookkeeping import end_epoch, finish, validate_untrained
from stndt.train.data import PhaseTensors, full_counts
from stndt.train.inference import VAL_CO_BPS
from stndt.train.preemption import Preemption
from stndt.train.schedule import lr_factor
from stndt.train.setup import Member


class Step(Protocol):
    """What the driver needs from a solo or packed step (stndt.train.solo.SoloStep,
    stndt.train.pack.train.PackStep)."""

    members: list[Member]  # every member, in pack order (Member.index)
    active: list[int]  # indices of the members still training, in the step's order
    generators: list[dict[str, torch.Generator]]  # each member's "batch" and "mask" generators
    state_path: Path  # the run's state file
    desc: str  # progress bar label

    def resume(self) -> dict[str, Any]:
        """The saved run state (the step's tensors restored) or a fresh one; sets `active`."""
        ...

    def save(self, run: dict[str, Any]) -> None:
        """Write `run` and the step's tensors to state_path, atomically."""
        ...

    def start_epoch(self, lrs: list[float]) -> None:
        """Training mode, and the active members' learning rates for this epoch."""
        ...

    def train_batch(self, batch: torch.Tensor, epoch: int) -> torch.Tensor:
        """One optimiser step on batch (len(active), B, T, N): the (len(active), 3) float64 loss,
        masked NLL and contrastive term of each active member."""
        ...

    def member(self, pos: int) -> Member:
        """The active member at `pos`, its model holding its current weights."""
        ...

    def leave(self, keep: list[int]) -> None:
        """Only the active members at positions `keep` train on."""
        ...


def train_epochs(
    step: Step,
    val: PhaseTensors,
    test: PhaseTensors | None,
    tensors_val: Path,
    device: torch.device,
    bf16: bool,
    progress: bool | None,
    preemption: Preemption,
) -> list[dict[str, Any]]:
    """Train step's members to their stops (resuming from step.state_path), write their outputs and
    return their summaries, in member order."""
    from tqdm.auto import tqdm

    members = step.members
    data = torch.from_numpy(full_counts(val)).to(device)
    n_train = data.shape[0]
    if n_train == 0:
        raise ValueError(f"{tensors_val}: no training trials")
    run = step.resume()
    mst = run["members"]
    if run["epoch"] == 0 and not mst[0]["log"]:
        for pos in range(len(step.active)):  # the untrained models, so every member has a best checkpoint
            m = step.member(pos)
            validate_untrained(m, mst[m.index], val, device)

    bar = tqdm(
        total=max(m.train_cfg.max_epochs for m in members),
        initial=run["epoch"],
        desc=step.desc,
        disable=None if progress is None else not progress,
        mininterval=2.0,
        leave=False,
    )
    every_epochs = min(m.train_cfg.checkpoint_every_epochs for m in members)
    every_s = min(m.train_cfg.checkpoint_every_s for m in members)
    last_save_t, last_save_epoch = time.monotonic(), run["epoch"]
    t_run = time.monotonic() - run["elapsed_s"]

    def clock() -> float:
        return time.monotonic() - t_run

    bs = members[0].train_cfg.batch_size
    while step.active:
        epoch = run["epoch"]  # 0-based index of the epoch being trained
        active = list(step.active)
        cfgs = [members[i].train_cfg for i in active]
        lrs = [
            c.lr * lr_factor(epoch, c.warmup_epochs, c.max_epochs, mst[i].get("cooldown")) for c, i in zip(cfgs, active)
        ]
        step.start_epoch(lrs)
        orders = torch.stack([torch.randperm(n_train, generator=step.generators[i]["batch"]) for i in active])
        orders = orders.to(device)
        sums = torch.zeros(len(active), 3, dtype=torch.float64, device=device)
        n_batches = 0
        for b0 in range(0, n_train, bs):
            sums += step.train_batch(data[orders[:, b0 : b0 + bs]], epoch)
            n_batches += 1
        run["epoch"] = epoch + 1
        means = (sums / n_batches).tolist()
        for pos, i in enumerate(active):
            ms = mst[i]
            ms["epoch"], ms["step"] = run["epoch"], ms["step"] + n_batches
            row = end_epoch(step.member(pos), ms, means[pos], lrs[pos], val, device, clock)
            if len(members) == 1 and row[VAL_CO_BPS] is not None:
                bar.set_postfix(loss=f"{means[pos][0]:.4f}", cobps=f"{row[VAL_CO_BPS]:.4f}", refresh=False)
        run["elapsed_s"] = clock()
        bar.update(1)
        keep = [pos for pos, i in enumerate(active) if not mst[i]["done"]]
        if len(keep) < len(active):  # stopped members leave: they cost nothing more
            step.leave(keep)
        if step.active:
            preemption.stop_if_requested(lambda: step.save(run), run["epoch"], step.state_path)
        if step.active and (
            run["epoch"] - last_save_epoch >= every_epochs or time.monotonic() - last_save_t >= every_s
        ):
            step.save(run)
            last_save_t, last_save_epoch = time.monotonic(), run["epoch"]
    bar.close()
    step.save(run)  # all done: a kill while writing outputs resumes straight to writing them

    summaries = [finish(m, mst[m.index], val, test, device, bf16) for m in members]
    if not any(m.train_cfg.keep_state for m in members):
        step.state_path.unlink(missing_ok=True)
    return summaries
