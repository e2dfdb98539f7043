"""Per-member gradient clipping and AdamW on parameters stacked along a leading member axis.

Each member has its own learning rate (warm-up / cosine at its own settings), weight decay, epsilon
and clipping threshold, and must get the update torch.optim.AdamW + clip_grad_norm_ give it alone.
The arithmetic below is torch's single-tensor AdamW (torch/optim/adam.py, decoupled weight decay,
non-capturable) written with per-member factors of shape (K, 1, ..., 1) where torch uses Python
scalars: a Python scalar enters a float32 kernel as float32, so a float32 factor tensor holding the
same value gives bitwise the same update. Settings shared by every member (betas, the step count)
stay Python scalars, exactly as torch uses them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor
from torch.nn.utils import get_total_norm


def _per_member(values: Sequence[float], like: Tensor) -> Tensor:
    """(K, 1, ..., 1) tensor of `values` in like's dtype/device, broadcasting over a member's slice."""
    return torch.tensor(list(values), dtype=like.dtype, device=like.device).view(-1, *([1] * (like.dim() - 1)))


@torch.no_grad()
def clip_grad_norms_(params: Sequence[Tensor], max_norms: Sequence[float]) -> Tensor:
    """clip_grad_norm_ for each member separately; returns the (K,) total norms before clipping.

    Member k's norm is torch's get_total_norm of its gradient slices (the function clip_grad_norm_
    itself calls, on tensors of the solo shapes), and its clip coefficient is computed with the same
    expression, so both match the solo step exactly.
    """
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(len(max_norms))
    totals, coefs = [], []
    for k, max_norm in enumerate(max_norms):
        total = get_total_norm([g[k] for g in grads])
        totals.append(total)
        coefs.append(torch.clamp(float(max_norm) / (total + 1e-6), max=1.0))
    coef = torch.stack(coefs)
    for g in grads:
        g.mul_(coef.to(g.dtype).view(-1, *([1] * (g.dim() - 1))))
    return torch.stack(totals)


class PackedAdamW:
    """AdamW over stacked parameters, one set of hyperparameters per member (leading axis)."""

    def __init__(
        self,
        params: Mapping[str, Tensor],
        weight_decay: Sequence[float],
        eps: Sequence[float],
        betas: tuple[float, float] = (0.9, 0.999),
    ):
        self.params = dict(params)
        self.weight_decay = [float(w) for w in weight_decay]
        self.eps = [float(e) for e in eps]
        self.betas = betas
        self.step_count = 0
        # Lazily created, as torch does: only parameters that ever get a gradient have moments.
        self.exp_avg: dict[str, Tensor] = {}
        self.exp_avg_sq: dict[str, Tensor] = {}

    def zero_grad(self) -> None:
        for p in self.params.values():
            p.grad = None

    @torch.no_grad()
    def step(self, lrs: Sequence[float]) -> None:
        """One AdamW step with member k's learning rate lrs[k] (torch's set-to-none semantics: a
        parameter without a gradient is neither moved nor decayed)."""
        beta1, beta2 = self.betas
        self.step_count += 1
        step = float(self.step_count)  # torch keeps the step as a float tensor and reads it back
        bias_correction1 = 1 - beta1**step
        bias_correction2_sqrt = (1 - beta2**step) ** 0.5
        for name, p in self.params.items():
            g = p.grad
            if g is None:
                continue
            if name not in self.exp_avg:
                self.exp_avg[name] = torch.zeros_like(p, memory_format=torch.preserve_format)
                self.exp_avg_sq[name] = torch.zeros_like(p, memory_format=torch.preserve_format)
            exp_avg, exp_avg_sq = self.exp_avg[name], self.exp_avg_sq[name]
            p.mul_(_per_member([1 - lr * wd for lr, wd in zip(lrs, self.weight_decay)], p))
            exp_avg.lerp_(g, 1 - beta1)
            exp_avg_sq.mul_(beta2).addcmul_(g, g, value=1 - beta2)
            denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(_per_member(self.eps, p))
            # torch: p.addcdiv_(exp_avg, denom, value=-step_size) = p + (-step_size * exp_avg) / denom
            neg_step = _per_member([-(lr / bias_correction1) for lr in lrs], p)
            p.addcdiv_(exp_avg * neg_step, denom)

    # ------------------------------------------------------------------------------ pack changes
    def rebind(self, params: Mapping[str, Tensor], keep: Sequence[int]) -> None:
        """Follow a shrunken pack: new parameter tensors, members `keep` (positions) of the state."""
        idx = torch.tensor(list(keep), dtype=torch.long, device=next(iter(params.values())).device)
        self.params = dict(params)
        self.weight_decay = [self.weight_decay[i] for i in keep]
        self.eps = [self.eps[i] for i in keep]
        self.exp_avg = {k: v[idx] for k, v in self.exp_avg.items()}
        self.exp_avg_sq = {k: v[idx] for k, v in self.exp_avg_sq.items()}

    def state_dict(self) -> dict:
        return {
            "step": self.step_count,
            "exp_avg": {k: v.cpu() for k, v in self.exp_avg.items()},
            "exp_avg_sq": {k: v.cpu() for k, v in self.exp_avg_sq.items()},
        }

    def load_state_dict(self, state: Mapping) -> None:
        device = next(iter(self.params.values())).device
        self.step_count = int(state["step"])
        self.exp_avg = {k: v.to(device) for k, v in state["exp_avg"].items()}
        self.exp_avg_sq = {k: v.to(device) for k, v in state["exp_avg_sq"].items()}
