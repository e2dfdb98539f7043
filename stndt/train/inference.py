"""A trained (or training) model's predictions and the scores validation takes of them.

predict_log_rates (eval mode, optional bf16 autocast) -> validation_metrics (val co-bps by nlb_tools'
bits_per_spike, Poisson NLL on held-out neurons) and val_masked_nll (the reference's val masked loss,
which its published stopping rule tracks); rates_dict / phase_rates: the NLB submission arrays.
Names of the metrics as they appear in train_log.csv, state.pt, best.pt and the summaries: VAL_*.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from stndt.datasets import CO_BPS
from stndt.train.data import PhaseTensors, model_input

VAL_CO_BPS = f"val {CO_BPS}"
VAL_NLL = "val nll"
# The reference's val masked loss (what its published stopping rule tracks); see val_masked_nll.
VAL_MASKED_NLL = "val masked_nll"


def autocast(device: torch.device, enabled: bool):
    """bf16 autocast on `device` when `enabled` (the training step's and, if asked, inference's)."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled)


@torch.no_grad()
def predict_log_rates(
    model: torch.nn.Module,
    heldin: np.ndarray,
    *,
    device: torch.device | str = "cpu",
    batch_size: int = 256,
    bf16: bool = False,
) -> np.ndarray:
    """Log-rates (trials, T + T_fp, N_in + N_out) float32 for held-in spikes (trials, T, N_in)."""
    cfg = model.cfg
    device = torch.device(device)
    x = model_input(np.asarray(heldin, dtype=np.float32), cfg.n_heldout, cfg.t_forward)
    was_training = model.training
    model.eval()
    out = []
    for i in range(0, len(x), batch_size):
        batch = torch.from_numpy(x[i : i + batch_size]).to(device)
        with autocast(device, bf16):
            out.append(model(batch).float().cpu().numpy())
    model.train(was_training)
    if not out:
        return np.zeros((0, cfg.n_time, cfg.n_neurons), dtype=np.float32)
    return np.concatenate(out, axis=0)


def validation_metrics(
    eval_log_rates: np.ndarray, eval_heldout: np.ndarray, t_bins: int, n_heldin: int
) -> dict[str, float]:
    """Val co-bps (nlb_tools bits_per_spike) and Poisson NLL per entry on held-out neurons' trial bins."""
    from nlb_tools.evaluation import bits_per_spike, neg_log_likelihood

    rates = np.exp(eval_log_rates[:, :t_bins, n_heldin:].astype(np.float64))
    spikes = eval_heldout.astype(np.float64)
    if not np.isfinite(rates).all():  # diverged model: never "best", and nlb_tools would assert
        return {VAL_CO_BPS: -math.inf, VAL_NLL: math.inf}
    nll = neg_log_likelihood(rates, spikes, zero_warning=False) / max(1, int(np.isfinite(spikes).sum()))
    return {VAL_CO_BPS: float(bits_per_spike(rates, spikes)), VAL_NLL: float(nll)}


@torch.no_grad()
def val_masked_nll(
    model: torch.nn.Module,
    heldin: np.ndarray,
    heldout: np.ndarray,
    obj_cfg: Any,
    generator: torch.Generator,
    *,
    device: torch.device | str = "cpu",
    batch_size: int = 64,
) -> float:
    """The reference's val masked loss (runner.py's `val_loss`, which its stopping rule tracks).

    On the val eval trials, in eval mode and float32, exactly as trungle93/STNDT computes it: held-in
    spikes (trials, T, N_in) masked like a training batch at `mask_ratio` but never in spans (its
    validation passes no expand_prob, so the width is 1), mask token / random counts as in training;
    the Poisson NLL exp(r) - y r pooled over ALL batches' entries (one mean, not a mean of batch means)
    of: masked held-in entries, every held-out entry of the trial bins, and every entry (held-in and
    held-out) of the forward bins with target 0 - the reference's val file has no eval forward spikes
    (make_eval_input_tensors writes none), so its dataset fills them with zeros. `batch_size` should be
    the training batch size (the reference's val loader uses it; random mask counts depend on each
    batch's maximum). Returns inf for a diverged (non-finite) model, so it never counts as a best.
    """
    from stndt.model.masking import mask_heldin
    from stndt.model.objective import poisson_nll

    cfg = model.cfg
    device = torch.device(device)
    heldin = np.asarray(heldin, dtype=np.float32)
    heldout = np.asarray(heldout, dtype=np.float32)
    t_bins, n_heldin = heldin.shape[1], heldin.shape[2]
    was_training = model.training
    model.eval()
    total = torch.zeros((), dtype=torch.float64, device=device)
    count = 0
    try:
        for i in range(0, len(heldin), batch_size):
            hin = torch.from_numpy(heldin[i : i + batch_size]).to(device)
            hout = torch.from_numpy(heldout[i : i + batch_size]).to(device)
            masked, mask = mask_heldin(
                hin, obj_cfg.mask_ratio, obj_cfg.mask_token_ratio, obj_cfg.mask_random_ratio, 1, generator
            )
            x = torch.nn.functional.pad(masked, (0, cfg.n_heldout, 0, cfg.t_forward))
            log_rates = model(x).float()
            total += poisson_nll(log_rates[:, :t_bins, :n_heldin], hin)[mask].double().sum()
            # NaN held-out targets are bins past a trial's end (nlb_tools pads variable-length trials,
            # e.g. DMFC_RSG, with NaN): left out, as nlb_tools' bits_per_spike leaves them out. Counted
            # in, they made the loss NaN at every validation, so it never "improved" and the stopping
            # rule silently reduced to co-bps alone.
            known = torch.isfinite(hout)
            total += poisson_nll(log_rates[:, :t_bins, n_heldin:], torch.nan_to_num(hout))[known].double().sum()
            total += torch.exp(log_rates[:, t_bins:]).double().sum()  # target 0: exp(r) - 0 * r
            count += int(mask.sum().item()) + int(known.sum().item()) + log_rates[:, t_bins:].numel()
    finally:
        model.train(was_training)
    value = float(total.item()) / max(1, count)
    return value if math.isfinite(value) else math.inf


def rates_dict(
    train_log_rates: np.ndarray, eval_log_rates: np.ndarray, t_bins: int, n_heldin: int
) -> dict[str, np.ndarray]:
    """NLB submission arrays (spikes per bin, float32) from train / eval trials' log-rates."""
    tr = np.exp(train_log_rates[:, :t_bins].astype(np.float64)).astype(np.float32)
    ev = np.exp(eval_log_rates.astype(np.float64)).astype(np.float32)
    return {
        "train_rates_heldin": tr[:, :, :n_heldin],
        "train_rates_heldout": tr[:, :, n_heldin:],
        "eval_rates_heldin": ev[:, :t_bins, :n_heldin],
        "eval_rates_heldout": ev[:, :t_bins, n_heldin:],
        "eval_rates_heldin_forward": ev[:, t_bins:, :n_heldin],
        "eval_rates_heldout_forward": ev[:, t_bins:, n_heldin:],
    }


def phase_rates(
    model: torch.nn.Module,
    p: PhaseTensors,
    *,
    device: torch.device | str = "cpu",
    batch_size: int = 256,
    bf16: bool = False,
) -> dict[str, dict[str, np.ndarray]]:
    """{nlb_key: submission arrays} of one phase's train and eval trials."""
    cfg = model.cfg
    train = predict_log_rates(model, p.train_heldin, device=device, batch_size=batch_size, bf16=bf16)
    evals = predict_log_rates(model, p.eval_heldin, device=device, batch_size=batch_size, bf16=bf16)
    return {p.nlb_key: rates_dict(train, evals, cfg.t_bins, cfg.n_heldin)}
