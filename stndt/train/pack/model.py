"""K STNDT members of one shape as one batched computation: parameters with a leading member axis.

Why not ``torch.vmap`` over ``functional_call(STNDT)``: the members differ in Python-float settings that
vmap cannot batch (dropout rates, the temporal context band), the model's CPU dropout is an
``autograd.Function`` without a vmap rule, and vmap's own randomness would not give member i the random
stream it has when trained alone. So this module runs the forward of ``stndt.model.stndt.STNDT`` on
stacked parameters (``torch.func.stack_module_state`` of K real STNDT modules), op for op:

* Linear layers of the whole pack are one ``baddbmm`` per layer (what ``F.linear`` itself calls per
  member, ``addmm``, on each slice: bitwise the same result, forward and backward, on CPU).
* Spatial attention scores and the spatiotemporal mix are one ``bmm`` over members x trials.
* Each member's dropout draws come from that member's own state of torch's global generator (swapped
  in around the draw) through the model's own ``_keep_mask``, in the order ``STNDT.forward`` draws
  them: member i packed sees exactly the dropout masks it sees alone.
* Dropout masks of the whole pack are one buffer; member i's slice is filled from its own stream.
* The temporal attention core (CPU, attention dropout on for every member) is one baddbmm / softmax /
  bmm over members x trials x heads, with each member's band from a cached stack.
* ``exact`` mode (CPU): the few ops whose batched form rounds differently from the solo op run per
  member - LayerNorm (its fused affine backward) and the spatial embedder (a linear on a transposed
  input, which F.linear computes as matmul + add rather than addmm). Then every member's step is
  bitwise the solo step.
  On CUDA LayerNorm is batched (batched GPU kernels do not promise solo rounding anyway) and the
  attention core runs per member, so that SDPA's and F.dropout's random draws are the member's own
  (the CUDA generator state is swapped in like the CPU one).

Training forward only: validation and rates use a real STNDT loaded with the member's weights
(``member_state_dict``), i.e. exactly the solo code path.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor

from stndt.model.config import ModelConfig
from stndt.model.stndt import STNDT, _keep_mask

# ModelConfig fields that change the computation graph: they must agree within a pack. The others
# (dropouts, context band, init switches, position offset) may differ per member.
STRUCTURAL_FIELDS: tuple[str, ...] = (
    "n_heldin",
    "n_heldout",
    "t_bins",
    "t_forward",
    "n_layers",
    "n_heads",
    "ff_hidden",
    "spatial",
    "pre_norm",
    "scale_norm",
    "keep_unused_spatial_params",
)


def check_packable(cfgs: Sequence[ModelConfig]) -> None:
    """Raise ValueError naming the field if the members' architectures differ (they must stack)."""
    for f in STRUCTURAL_FIELDS:
        values = [getattr(c, f) for c in cfgs]
        if len(set(values)) > 1:
            raise ValueError(
                f"cannot pack members whose '{f}' differs ({values}); "
                f"packed members may differ only in {_free_fields()}"
            )


def _free_fields() -> str:
    from dataclasses import fields

    return ", ".join(f.name for f in fields(ModelConfig) if f.name not in STRUCTURAL_FIELDS)


def _generator_of(device: torch.device) -> torch.Generator:
    """torch's default (global) generator of `device`: the one dropout draws from."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return torch.cuda.default_generators[index]
    return torch.default_generator


def seeded_state(seed: int, device: torch.device) -> Tensor:
    """State of `device`'s global generator right after torch.manual_seed(seed), without touching it."""
    return torch.Generator(device=device).manual_seed(seed).get_state()


class MemberRNG:
    """One state of the device's global generator per member (train_member's dropout stream)."""

    def __init__(self, device: torch.device, states: Sequence[Tensor]):
        self.generator = _generator_of(device)
        self.states = list(states)

    @contextmanager
    def member(self, i: int) -> Iterator[None]:
        """Draws inside come from member i's stream, which then advances; the caller's state is kept."""
        outer = self.generator.get_state()
        self.generator.set_state(self.states[i])
        try:
            yield
        finally:
            self.states[i] = self.generator.get_state()
            self.generator.set_state(outer)

    def subset(self, keep: Sequence[int]) -> MemberRNG:
        out = MemberRNG.__new__(MemberRNG)
        out.generator, out.states = self.generator, [self.states[i] for i in keep]
        return out


class PackedSTNDT:
    """Training forward of K same-shape STNDT / NDT members on stacked parameters.

    Per-member pieces take their slices with one ``unbind`` (never ``x[i]`` in a loop): indexing a
    tensor K times puts K full-size zero-filled gradients into the backward, O(K^2) memory traffic.
    """

    def __init__(self, models: Sequence[STNDT], rng: MemberRNG, exact: bool | None = None):
        if not models:
            raise ValueError("a pack needs at least one member")
        self.cfgs = [m.cfg for m in models]
        check_packable(self.cfgs)
        cfg = self.cfgs[0]
        device = next(models[0].parameters()).device
        self.device = device
        self.exact = device.type == "cpu" if exact is None else exact
        params, _ = torch.func.stack_module_state(list(models))
        self.params: dict[str, Tensor] = dict(params)
        self.pe_time = torch.stack([m.pe_time for m in models])
        self.pe_space = torch.stack([m.pe_space for m in models]) if cfg.spatial else None
        self.context_mask = [m.context_mask for m in models]
        self.context_bias = [m.context_bias for m in models]
        self.ln_eps = models[0].layers[0].norm1.eps
        self.scale_norm = models[0].norm if cfg.scale_norm else None  # module, called functionally
        self.scale, self.spatial_scale = models[0].scale, getattr(models[0], "spatial_scale", None)
        self.rng = rng
        self.training = True
        self._casts: dict[str, Tensor] = {}
        self._bands: dict[tuple, Tensor] = {}

    # ------------------------------------------------------------------------------ bookkeeping
    @property
    def size(self) -> int:
        return len(self.cfgs)

    def subset(self, keep: Sequence[int]) -> PackedSTNDT:
        """The pack of members `keep` (positions), sharing no autograd history with this one."""
        out = PackedSTNDT.__new__(PackedSTNDT)
        out.__dict__.update(self.__dict__)
        idx = torch.tensor(list(keep), dtype=torch.long, device=self.device)
        out.cfgs = [self.cfgs[i] for i in keep]
        out.params = {k: v.detach()[idx].requires_grad_(v.requires_grad) for k, v in self.params.items()}
        out.pe_time = self.pe_time[idx]
        out.pe_space = None if self.pe_space is None else self.pe_space[idx]
        out.context_mask = [self.context_mask[i] for i in keep]
        out.context_bias = [self.context_bias[i] for i in keep]
        out.rng = self.rng.subset(keep)
        out._casts = {}
        out._bands = {}
        return out

    def member_state_dict(self, i: int) -> dict[str, Tensor]:
        """Member i's weights under STNDT's state-dict names (views: copy before training on)."""
        return {k: v.detach()[i] for k, v in self.params.items()}

    def parameters(self) -> list[Tensor]:
        return list(self.params.values())

    # ------------------------------------------------------------------------------- primitives
    def _p(self, name: str) -> list[float]:
        return [float(getattr(c, name)) for c in self.cfgs]

    def _keep(self, i: int, x: Tensor, p: float) -> Tensor:
        """Member i's dropout keep-mask for its slice x, drawn as STNDT's own dropout draws it, written
        into x itself (a slice of the pack's mask buffer: no per-member tensors to stack)."""
        with self.rng.member(i):
            if x.device.type == "cpu":
                return _keep_mask(x, p, out=x)
            return x.copy_(F.dropout(torch.ones_like(x), p, True))

    def _keeps(self, x: Tensor, ps: Sequence[float]) -> Tensor | None:
        """The pack's keep-masks for x (K, ...): member k's own draws in slice k (None: no dropout)."""
        if not self.training or not any(p > 0 for p in ps):
            return None
        keep = torch.empty(x.shape, dtype=x.dtype, device=x.device)
        for i, (slot, p) in enumerate(zip(keep.unbind(0), ps)):
            self._keep(i, slot, p) if p > 0 else slot.fill_(1.0)
        return keep

    def _dropout(self, x: Tensor, ps: Sequence[float]) -> Tensor:
        keep = self._keeps(x, ps)
        return x if keep is None else x * keep

    def _dropout_add(self, residual: Tensor, x: Tensor, ps: Sequence[float]) -> Tensor:
        keep = self._keeps(x, ps)
        return residual + x if keep is None else torch.addcmul(residual, x, keep)

    def clear_casts(self) -> None:
        """Forget the step's low-precision weight copies (call at each autocast region's start)."""
        self._casts = {}

    def _low_precision(self, name: str) -> Tensor:
        """Parameter `name` as a linear layer under autocast receives it: cast ONCE per autocast region.

        Autocast caches the cast of a leaf parameter, so a weight used twice in one step (the
        embedders: training forward and contrast views) has one cast node whose gradients add up in
        bfloat16 before the cast back. A stacked parameter reaches its op through a view, which autocast
        does not cache, so the cache is kept here; otherwise the embedders' gradients would round
        differently from the solo step's.
        """
        p = self.params[name]
        kind = self.device.type
        if not torch.is_autocast_enabled(kind):
            return p
        casts = self.__dict__.setdefault("_casts", {})
        if name not in casts:
            casts[name] = p.to(torch.get_autocast_dtype(kind))
        return casts[name]

    def _linear(self, x: Tensor, name: str) -> Tensor:
        """x (K, ..., in) -> (K, ..., out) with member k's weights on slice k."""
        w, b = self._low_precision(f"{name}.weight"), self._low_precision(f"{name}.bias")
        if self.exact and not x[0].is_contiguous():
            # F.linear takes another route (matmul, then add) for a non-contiguous input.
            return torch.stack([F.linear(*a) for a in zip(x.unbind(0), w.unbind(0), b.unbind(0))])
        k, n_out = x.shape[0], w.shape[1]
        out = torch.baddbmm(b.unsqueeze(1), x.reshape(k, -1, x.shape[-1]), w.transpose(1, 2))
        return out.view(*x.shape[:-1], n_out)

    def _layer_norm(self, x: Tensor, name: str) -> Tensor:
        w, b = self.params[f"{name}.weight"], self.params[f"{name}.bias"]
        shape = (x.shape[-1],)
        if self.exact:
            return torch.stack(
                [
                    F.layer_norm(xi, shape, wi, bi, self.ln_eps)
                    for xi, wi, bi in zip(x.unbind(0), w.unbind(0), b.unbind(0))
                ]
            )
        view = (w.shape[0],) + (1,) * (x.dim() - 2) + shape
        return torch.addcmul(b.view(view), F.layer_norm(x, shape, eps=self.ln_eps), w.view(view))

    def _norm(self, name: str, x: Tensor, pre: bool) -> Tensor:
        return self._layer_norm(x, name) if self.cfgs[0].pre_norm == pre else x

    # ---------------------------------------------------------------------------------- forward
    def visible(self, spikes: Tensor) -> Tensor:
        """STNDT.visible per member: held-in trial bins of (K, B, T, N) spikes, zero elsewhere."""
        cfg = self.cfgs[0]
        if spikes.dim() != 4 or spikes.shape[0] != self.size or spikes.shape[2:] != (cfg.n_time, cfg.n_neurons):
            raise ValueError(
                f"spikes: expected ({self.size}, batch, {cfg.n_time}, {cfg.n_neurons}), got {tuple(spikes.shape)}"
            )
        heldin = spikes[:, :, : cfg.t_bins, : cfg.n_heldin].float()
        return F.pad(heldin, (0, cfg.n_heldout, 0, cfg.t_forward))

    def embed(self, spikes: Tensor) -> tuple[Tensor, Tensor | None]:
        """STNDT.embed per member: scaled embedder outputs (K, B, T, N) and (K, B, N, T) or None."""
        x = self.visible(spikes)
        temporal = self._linear(x, "embedder") * self.scale
        spatial = None
        if self.cfgs[0].spatial:
            spatial = self._linear(x.transpose(2, 3), "spatial_embedder") * self.spatial_scale
        return temporal, spatial

    def __call__(self, spikes: Tensor) -> Tensor:
        """(K, B, T, N) counts -> (K, B, T, N) log-rates; member k's model on slice k."""
        temporal, spatial = self.embed(spikes)
        p_emb = self._p("dropout_embedding")
        x = self._dropout(temporal + self.pe_time.unsqueeze(1), p_emb)
        s = self._dropout(spatial + self.pe_space.unsqueeze(1), p_emb) if spatial is not None else None
        for layer in range(self.cfgs[0].n_layers):
            x = self._temporal(layer, x)
            if s is not None:
                attn = self._spatial_weights(layer, s)
                x = self._mix(layer, x, attn)
                s = x.transpose(2, 3)
        if self.scale_norm is not None:
            scale = self.params["norm.scale"]
            x = torch.stack(
                [
                    torch.func.functional_call(self.scale_norm, {"scale": si}, (xi,))
                    for si, xi in zip(scale.unbind(0), x.unbind(0))
                ]
            )
        else:
            x = self._layer_norm(x, "norm")
        return self._linear(self._dropout(x, self._p("dropout_rates")), "decoder")

    def _temporal(self, layer: int, x: Tensor) -> Tensor:
        pre, p = f"layers.{layer}.", self._p("dropout")
        h = self._norm(pre + "norm1", x, True)
        qkv = self._linear(h, pre + "qkv")
        a = self._attend_pack(qkv)
        x = self._norm(pre + "norm1", self._dropout_add(x, self._linear(a, pre + "out_proj"), p), False)
        h = self._norm(pre + "norm2", x, True)
        h = self._linear(self._dropout(F.relu(self._linear(h, pre + "linear1")), p), pre + "linear2")
        return self._norm(pre + "norm2", self._dropout_add(x, h, p), False)

    def _attend_pack(self, qkv: Tensor) -> Tensor:
        """The banded attention core of every member, (K, B, T, 3N) -> (K, B, T, N).

        On CPU with attention dropout on for all members (train_member's explicit path), the whole
        pack is one baddbmm / softmax / bmm over members x trials x heads, each member's band added
        from a cached (K*B*H, T, T) stack and each member's dropout mask drawn into its slice: the
        same arithmetic on each matrix as the solo step. Otherwise (SDPA, mixed settings) per member.
        """
        k_, b, t, n3 = qkv.shape
        heads = self.cfgs[0].n_heads
        n = n3 // 3
        hd = n // heads
        ps = [c.dropout if self.training else 0.0 for c in self.cfgs]
        banded = [bias is not None for bias in self.context_bias]
        if qkv.device.type != "cpu" or not all(p > 0 for p in ps) or len(set(banded)) > 1:
            return torch.stack([self._attend(i, qkv_i) for i, qkv_i in enumerate(qkv.unbind(0))])
        qkv = qkv.view(k_, b, t, 3, heads, hd).permute(3, 0, 1, 4, 2, 5)
        q, k, v = qkv.reshape(3, k_ * b * heads, t, hd).unbind(0)
        band = self._band(b, heads, q.dtype) if banded[0] else None
        a = _dropout_attention(q, k, v, band, lambda w: self._keeps(w.view(k_, b * heads, t, t), ps).view(w.shape))
        return a.view(k_, b, heads, t, hd).transpose(2, 3).reshape(k_, b, t, n)

    def _band(self, b: int, heads: int, dtype: torch.dtype) -> Tensor:
        """Every member's additive band repeated over its B*H attention matrices, (K*B*H, T, T).

        Built once per batch size and in the dtype baddbmm computes in (autocast's, if on), so
        autocast does not cast this large constant at every call; the values are those the solo
        step's (T, T) band broadcasts to."""
        kind = self.device.type
        if torch.is_autocast_enabled(kind):
            dtype = torch.get_autocast_dtype(kind)
        key = (b, heads, dtype)
        if key not in self._bands:
            t = self.context_bias[0].shape[-1]
            band = torch.stack(self.context_bias).to(dtype).view(self.size, 1, t, t)
            self._bands = {key: band.expand(self.size, b * heads, t, t).reshape(-1, t, t)}
        return self._bands[key]

    def _attend(self, i: int, qkv: Tensor) -> Tensor:
        """Member i's banded multi-head attention core, (B, T, 3N) -> (B, T, N), as EncoderLayer.temporal."""
        b, t, n3 = qkv.shape
        heads = self.cfgs[0].n_heads
        n = n3 // 3
        hd = n // heads
        qkv = qkv.view(b, t, 3, heads, hd).permute(2, 0, 3, 1, 4)
        p_attn = self.cfgs[i].dropout if self.training else 0.0
        if p_attn > 0 and qkv.device.type == "cpu":
            q, k, v = qkv.reshape(3, b * heads, t, hd).unbind(0)
            a = _dropout_attention(
                q, k, v, self.context_bias[i], lambda w: self._keep(i, torch.empty_like(w), p_attn)
            ).view(b, heads, t, hd)
        else:
            q, k, v = qkv.unbind(0)
            with self.rng.member(i):
                a = F.scaled_dot_product_attention(q, k, v, attn_mask=self.context_mask[i], dropout_p=p_attn)
        return a.transpose(1, 2).reshape(b, t, n)

    def _spatial_weights(self, layer: int, s: Tensor) -> Tensor:
        """Head-averaged spatial attention (K*B, N, N) of spatial tokens (K, B, N, T)."""
        k_, b, n, t = s.shape
        heads = self.cfgs[0].n_heads
        hd = t // heads
        h = self._layer_norm(s, f"layers.{layer}.spatial_norm") if self.cfgs[0].pre_norm else s
        qk = self._linear(h, f"layers.{layer}.spatial_qk").view(k_ * b, n, 2, heads, hd)
        q, k = qk.permute(2, 0, 3, 1, 4).reshape(2, k_ * b * heads, n, hd).unbind(0)
        scores = torch.baddbmm(q.new_zeros(()), q, k.transpose(1, 2), beta=0.0, alpha=hd**-0.5)
        probs = torch.softmax(scores.float().view(k_ * b, heads, n, n), dim=-1)
        return functools.reduce(torch.add, probs.unbind(1)) / heads

    def _mix(self, layer: int, x: Tensor, attn: Tensor) -> Tensor:
        pre, p = f"layers.{layer}.", self._p("dropout")
        k_, b, t, n = x.shape
        h = self._norm(pre + "ts_norm1", x, True)
        mixed = torch.bmm(h.reshape(k_ * b, t, n), attn.transpose(1, 2)).view(k_, b, t, n)
        z = self._norm(pre + "ts_norm1", self._dropout_add(x, mixed, p), False)
        h = self._norm(pre + "ts_norm2", z, True)
        h = self._linear(self._dropout(F.relu(self._linear(h, pre + "ts_linear1")), p), pre + "ts_linear2")
        return self._norm(pre + "ts_norm2", self._dropout_add(z, h, p), False)


def _dropout_attention(
    q: Tensor, k: Tensor, v: Tensor, band: Tensor | None, keep_of: Callable[[Tensor], Tensor]
) -> Tensor:
    """EncoderLayer.temporal's CPU attention with dropout on (M, T, hd) queries, keys and values: scaled
    scores plus the additive band (None: full context), softmax, times the keep-mask keep_of(weights),
    times v. The one home of that arithmetic for one member and for a whole pack."""
    hd = q.shape[-1]
    if band is None:
        scores = torch.bmm(q, k.transpose(1, 2)) * hd**-0.5
    else:
        scores = torch.baddbmm(band, q, k.transpose(1, 2), alpha=hd**-0.5)
    weights = torch.softmax(scores, dim=-1)
    return torch.bmm(weights * keep_of(weights), v)
