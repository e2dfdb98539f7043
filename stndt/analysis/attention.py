"""Spatial attention of a trained STNDT member on the val eval trials (the paper's Fig. 4 and the
ordering of its neuron-dropping analysis, Fig. 5).

STNDT's spatial attention A (B, N, N) is row-stochastic: row i says how neuron i's features are mixed
from all neurons' features (out_i = sum_j A[i, j] x_j). The attention a neuron j *receives* is therefore
the column sum sum_i A[i, j]; the paper ranks neurons by it in layer 1 ("descending order of layer-1
spatial attention") to find the neurons the model relies on most.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from stndt.train.checkpoint import load_member
from stndt.train.data import load_phase_tensors, model_input


def model_attention(model: torch.nn.Module, heldin: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Per-layer head-averaged spatial attention (layers, trials, N, N) float32 for held-in spikes.

    `heldin` is (trials, t_bins, n_heldin); held-out columns and forward bins are zero, exactly what the
    model sees in training and inference. The model is put in eval mode (no dropout) for the call.
    """
    cfg = model.cfg
    if not cfg.spatial:
        raise ValueError("model has no spatial attention (spatial=False, an NDT member)")
    heldin = np.asarray(heldin, dtype=np.float32)
    if heldin.ndim != 3 or heldin.shape[1:] != (cfg.t_bins, cfg.n_heldin):
        raise ValueError(f"held-in spikes: expected shape (trials, {cfg.t_bins}, {cfg.n_heldin}), got {heldin.shape}")
    x = model_input(heldin, cfg.n_heldout, cfg.t_forward)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    chunks = []
    try:
        with torch.no_grad():
            for i in range(0, len(x), batch_size):
                _, attn = model(torch.from_numpy(x[i : i + batch_size]).to(device), return_attention=True)
                chunks.append(torch.stack(attn).float().cpu().numpy())  # (layers, b, N, N)
    finally:
        model.train(was_training)
    if not chunks:
        return np.zeros((cfg.n_layers, 0, cfg.n_neurons, cfg.n_neurons), dtype=np.float32)
    return np.concatenate(chunks, axis=1)


def _trial_index(trials: Sequence[int] | np.ndarray | None, n: int, where: Path) -> np.ndarray:
    if trials is None:
        return np.arange(n)
    idx = np.asarray(trials)
    if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"trials: expected a 1-d list of integer trial indices, got {idx.dtype} {idx.shape}")
    if idx.size and (idx.min() < -n or idx.max() >= n):
        raise IndexError(f"trials {idx.tolist()}: out of range for the {n} eval trials of {where}")
    return idx


def spatial_attention(
    member_dir: str | os.PathLike, tensors_path: str | os.PathLike, trials: Sequence[int] | np.ndarray | None = None
) -> np.ndarray:
    """Spatial attention (layers, trials, N, N) of an STNDT member on val eval trials `trials`
    (indices into eval_spikes_heldin of `tensors_path`; None = all). N = held-in + held-out neurons,
    held-in first; each row sums to 1."""
    tensors_path = Path(tensors_path)
    model, _ = load_member(member_dir)
    p = load_phase_tensors(tensors_path)
    idx = _trial_index(trials, len(p.eval_heldin), tensors_path)
    return model_attention(model, p.eval_heldin[idx])


def received_attention(attention: np.ndarray, n_heldin: int, layer: int = 0) -> np.ndarray:
    """Attention received by each held-in neuron in `layer`: column sums of A, averaged over trials.

    Every query row (held-in and held-out neurons) counts, since every neuron's output mixes in the
    attended neurons' features. Returns (n_heldin,).
    """
    attention = np.asarray(attention)
    if attention.ndim != 4 or attention.shape[2] != attention.shape[3]:
        raise ValueError(f"attention: expected (layers, trials, N, N), got {attention.shape}")
    if not 0 < n_heldin <= attention.shape[3]:
        raise ValueError(f"n_heldin={n_heldin}: must be in 1..{attention.shape[3]}")
    return attention[layer].sum(axis=1).mean(axis=0)[:n_heldin]


def rank_by_attention(received: np.ndarray) -> np.ndarray:
    """Neuron indices by descending received attention; ties go to the lower index (reproducible)."""
    received = np.asarray(received, dtype=np.float64)
    return np.lexsort((np.arange(len(received)), -received))


def attention_ranking(member_dir: str | os.PathLike, tensors_path: str | os.PathLike) -> np.ndarray:
    """Held-in neuron indices (0..n_heldin-1), most attended first by layer-1 attention received
    (column sums averaged over all val eval trials of `tensors_path`)."""
    model, _ = load_member(member_dir)
    p = load_phase_tensors(tensors_path)
    attn = model_attention(model, p.eval_heldin)
    return rank_by_attention(received_attention(attn, model.cfg.n_heldin, layer=0))
