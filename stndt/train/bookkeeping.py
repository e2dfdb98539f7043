"""A member's bookkeeping between training steps: validation, best checkpoint, early stopping, the log
row of each epoch, and the summary and outputs at the end.

The same functions serve a member trained alone and in a pack (the epoch driver, stndt.train.driver):
they act on the member's state dict `st` (fresh_state; saved in state.pt / pack_state.pt for exact
resume) and on `m.model`, a real STNDT holding the member's current weights. Rules, in this order after
every epoch (end_epoch): a non-finite training loss stops the member ("diverged", the best checkpoint
so far is kept); every `val_every` epochs and at `max_epochs` it is validated (val co-bps and val
masked loss), the weights with the best val co-bps are kept, and stndt.train.stopping.should_stop
decides on early stopping (with cooldown_fraction > 0: a cool-down of annealed epochs first, validated
as before, then the stop); at its own `max_epochs` it stops. With TrainConfig.candidate_checkpoints
(evaluation.candidates: checkpoints) each validation also scores the extra ensemble criteria and keeps
their best weights, written at the end (stndt.train.candidates).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from stndt.members import MASKED_NLL, STOP_CAP, STOP_DIVERGED, STOP_RULE, converged
from stndt.model.stndt import n_parameters
from stndt.train.candidates import candidate_metrics, track, write_candidates
from stndt.train.checkpoint import cpu_state_dict
from stndt.train.data import PhaseTensors
from stndt.train.inference import (
    VAL_CO_BPS,
    VAL_MASKED_NLL,
    VAL_NLL,
    predict_log_rates,
    val_masked_nll,
    validation_metrics,
)
from stndt.train.outputs import write_member_outputs
from stndt.train.schedule import cooldown_epochs
from stndt.train.setup import Member, val_mask_seed
from stndt.train.stopping import effective_patience, improved, patience_floor, should_stop

TRAIN_COLUMNS: tuple[str, ...] = ("loss", MASKED_NLL, "contrast", "lr")  # empty in the epoch-0 row


def fresh_state() -> dict[str, Any]:
    """A member's bookkeeping before training (the tensors of a state file are added when saving)."""
    return {
        "epoch": 0,
        "step": 0,
        "elapsed_s": 0.0,
        "best": {"epoch": -1, VAL_CO_BPS: -math.inf, VAL_NLL: math.inf, "weights": None},
        # last strict improvement of the val masked loss (stop_rule "both"; saved for exact resume)
        "best_loss": {"epoch": -1, VAL_MASKED_NLL: math.inf},
        "log": [],
        "done": False,
        "stop_reason": "",
        "cooldown": None,  # {"start", "length"} once the rule fired with cooldown_fraction > 0
    }


def validate(m: Member, val: PhaseTensors, epoch: int, device: torch.device) -> dict[str, float]:
    """Val co-bps, val nll and val masked nll of m.model (holding the member's weights) after `epoch` epochs,
    on the selection trials (every val eval trial but the holdout: these numbers choose the best epoch,
    stop training and feed the search)."""
    heldin, heldout = val.select_heldin, val.select_heldout
    lr_eval = predict_log_rates(m.model, heldin, device=device, batch_size=m.train_cfg.eval_batch_size)
    metrics = validation_metrics(lr_eval, heldout, m.model_cfg.t_bins, m.model_cfg.n_heldin)
    gen = torch.Generator(device=device).manual_seed(val_mask_seed(m.seeds["val_mask"], epoch))
    metrics[VAL_MASKED_NLL] = val_masked_nll(
        m.model, heldin, heldout, m.obj_cfg, gen, device=device, batch_size=m.train_cfg.batch_size
    )
    if m.train_cfg.candidate_checkpoints:  # the extra ensemble candidates' criteria (stndt.train.candidates)
        metrics.update(candidate_metrics(m, lr_eval, heldin, gen, epoch, device))
    return metrics


def consider(m: Member, st: dict[str, Any], metrics: dict[str, float], epoch: int) -> None:
    """Keep m.model's weights if they have the best val co-bps so far (or are the first validated),
    and the epoch of the last strict improvement of the val masked loss."""
    if metrics[VAL_CO_BPS] > st["best"][VAL_CO_BPS] or st["best"]["weights"] is None:
        st["best"] = {"epoch": epoch, **metrics, "weights": cpu_state_dict(m.model)}
        m.log.info("epoch %d: new best %s %.5f", epoch, VAL_CO_BPS, metrics[VAL_CO_BPS])
    if improved(metrics[VAL_MASKED_NLL], st["best_loss"][VAL_MASKED_NLL], lower_is_better=True):
        st["best_loss"] = {"epoch": epoch, VAL_MASKED_NLL: metrics[VAL_MASKED_NLL]}
    if m.train_cfg.candidate_checkpoints:  # and the best weights of each extra candidate criterion
        track(m, st, metrics, epoch)


def validate_untrained(m: Member, st: dict[str, Any], val: PhaseTensors, device: torch.device) -> None:
    """Validate the untrained model (log row of epoch 0), so a best checkpoint exists even if
    training diverges at once."""
    metrics = validate(m, val, 0, device)
    consider(m, st, metrics, 0)
    st["log"].append({"epoch": 0, "step": 0, **{c: None for c in TRAIN_COLUMNS}, **metrics, "time_s": 0.0})


def member_patience(cfg, st: dict[str, Any]) -> int:
    """The member's patience in epochs: `patience`, raised to `patience_steps` optimizer steps on this
    dataset (every epoch has the same number of steps, so steps so far / epochs so far is exact)."""
    return patience_floor(cfg.patience, cfg.patience_steps, max(1, st["step"] // max(1, st["epoch"])))


def end_epoch(
    m: Member,
    st: dict[str, Any],
    means: list[float],
    lr: float,
    val: PhaseTensors,
    device: torch.device,
    elapsed_s: Callable[[], float],
) -> dict[str, Any]:
    """After an epoch (st["epoch"], st["step"] already counted; m.model holds the new weights): apply
    the rules above, append the epoch's log row (means: loss, masked_nll, contrast; lr; time_s from
    elapsed_s() once the validation is done) and return it."""
    cfg = m.train_cfg
    epoch = st["epoch"]
    row = {
        "epoch": epoch,
        "step": st["step"],
        "loss": means[0],
        "masked_nll": means[1],
        "contrast": means[2],
        "lr": lr,
        VAL_CO_BPS: None,
        VAL_NLL: None,
        VAL_MASKED_NLL: None,
    }
    if not math.isfinite(means[0]):
        st["done"], st["stop_reason"] = True, STOP_DIVERGED
        m.log.warning("epoch %d: non-finite training loss; stopping with the best checkpoint so far", epoch)
    elif epoch % cfg.val_every == 0 or epoch == cfg.max_epochs:
        metrics = validate(m, val, epoch, device)
        row.update(metrics)
        consider(m, st, metrics, epoch)
        patience = member_patience(cfg, st)
        cooldown = st.get("cooldown")
        if cooldown is not None:
            if epoch >= cooldown["start"] + cooldown["length"]:
                st["done"], st["stop_reason"] = True, STOP_RULE
                m.log.info("epoch %d: cool-down of %d epochs over; stopping", epoch, cooldown["length"])
        elif should_stop(
            epoch, st["best"]["epoch"], st["best_loss"]["epoch"], patience, cfg.stop_rule, cfg.patience_fraction
        ):
            length = cooldown_epochs(epoch, cfg.cooldown_fraction, cfg.val_every, cfg.max_epochs)
            if length > 0:
                st["cooldown"] = {"start": epoch, "length": length}
            else:
                st["done"], st["stop_reason"] = True, STOP_RULE
            m.log.info(
                "epoch %d: converged (stop rule %r, patience %d epochs (patience %d, patience_steps %d "
                "at %d steps per epoch), patience_fraction %g; best %s at epoch %d, best %s at epoch %d); "
                + (f"annealing the learning rate to 0 over {length} epochs, then stopping" if length else "stopping"),
                epoch,
                cfg.stop_rule,
                patience,
                cfg.patience,
                cfg.patience_steps,
                st["step"] // epoch,
                cfg.patience_fraction,
                VAL_CO_BPS,
                st["best"]["epoch"],
                VAL_MASKED_NLL,
                st["best_loss"]["epoch"],
            )
    if epoch >= cfg.max_epochs and not st["done"]:  # in a cool-down the rule has fired: converged
        st["done"], st["stop_reason"] = True, STOP_RULE if st.get("cooldown") else STOP_CAP
    st["elapsed_s"] = row["time_s"] = elapsed_s()
    st["log"].append(row)
    if row[VAL_CO_BPS] is not None:
        m.log.info("epoch %d step %d loss %.5f %s %.5f", epoch, st["step"], means[0], VAL_CO_BPS, row[VAL_CO_BPS])
    return row


def finish(
    m: Member, st: dict[str, Any], val: PhaseTensors, test: PhaseTensors | None, device: torch.device, bf16: bool
) -> dict[str, Any]:
    """Load the best weights into m.model, write the member's outputs and return its summary (best
    epoch, val co-bps, epochs run, stop reason, timing: st["elapsed_s"], in a pack the pack's wall
    clock while the member was in it). With candidate_checkpoints, the extra candidates are written first."""
    if m.train_cfg.candidate_checkpoints:
        write_candidates(m, st, val, test, device)
    m.model.load_state_dict(st["best"]["weights"])
    best, epochs = st["best"], st["epoch"]
    if st["stop_reason"] == STOP_CAP:
        m.log.warning(unconverged_message(m.train_cfg, st))
    summary = {
        "best_epoch": best["epoch"],
        VAL_CO_BPS: best[VAL_CO_BPS],
        VAL_NLL: best[VAL_NLL],
        "epochs_run": epochs,
        "steps": st["step"],
        "stop_reason": st["stop_reason"],
        "converged": converged(st["stop_reason"]),
        # the epoch the stopping rule fired (then the cool-down, if any, ran to epochs_run)
        "rule_fired_at": (st.get("cooldown") or {}).get("start", epochs if converged(st["stop_reason"]) else None),
        "train_seconds": st["elapsed_s"],
        "seconds_per_epoch": st["elapsed_s"] / epochs if epochs else None,
        "device": device.type,
        "bf16": bf16,
        "n_parameters": n_parameters(m.model),
    }
    write_member_outputs(
        m.out_dir,
        m.model,
        best,
        m.configs,
        m.params,
        summary,
        st["log"],
        val,
        test,
        device=device,
        eval_batch_size=m.train_cfg.eval_batch_size,
    )
    m.log.info("done: %s", summary)
    return summary


def unconverged_message(cfg, st: dict[str, Any]) -> str:
    """Why a member that reached its cap is not a result yet, and what to change."""
    cobps_wait = effective_patience(st["best"]["epoch"], member_patience(cfg, st), cfg.patience_fraction)
    return (
        f"NOT CONVERGED: stopped at the cap (max_epochs {cfg.max_epochs}, {st['step']} optimizer steps) before "
        f"the stopping rule fired; best {VAL_CO_BPS} at epoch {st['best']['epoch']}, best {VAL_MASKED_NLL} at "
        f"epoch {st['best_loss']['epoch']} (the rule waits {cobps_wait:g} epochs after each). Its numbers are "
        "not those of a trained model: raise training.max_epochs or training.max_steps (the cap: the larger "
        "of the two, max_steps counted in optimizer steps) and rerun (the member retrains)"
    )
