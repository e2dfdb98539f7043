"""STNDT: spatiotemporal neural data transformer (Le & Shlizerman, NeurIPS 2022); NDT when spatial=False.

Layout is batch-first throughout: spikes (B, T, N) with T = trial + forward bins and N = held-in +
held-out neurons. Two token views of the same array are embedded:

* temporal tokens: T tokens of width N -> Linear(N, N) * sqrt(N) + sinusoid(time) -> dropout
* spatial tokens:  N tokens of width T -> Linear(T, T) * sqrt(T) + sinusoid(neuron) -> dropout

Each layer (pre-norm, as the reference configuration) does

    x = x + drop(TemporalMHA(LN(x), banded context mask))
    x = x + drop(FF(LN(x)))
    A = mean_heads softmax(Q K^T / sqrt(d_head)) on LN(spatial tokens)   # (B, N, N), rows sum to 1
    z = x + drop(LN(x) @ A^T)           # neuron i <- attention-weighted mix of all neurons' features
    z = z + drop(FF2(LN(z)))

and the next layer's spatial tokens are z transposed. A final LayerNorm, rate dropout and a linear
read-out give N log-rates per bin.

Faithfulness notes (checked against trungle93/STNDT src/model.py; documented, not guessed):

* Parameter count: the reference's spatial attention is a full ``nn.MultiheadAttention`` whose value and
  output projections are computed and thrown away (only the weights are used). They get no gradient.
  ``keep_unused_spatial_params=True`` keeps them as parameters (never computed) so the count matches
  the reference's 1,536,212 on MC_Maze; without them it is 1,275,572 (4 layers x 2 x (180*180 + 180)).
* T-Fixup: the reference scales ``linear1``, ``linear2`` and the temporal ``out_proj`` weights by
  0.67 * L^-1/4. Its value-projection branch looks for a parameter named ``self_attn.v_proj.weight``,
  which ``nn.MultiheadAttention`` does not have when q/k/v share a width, so values are NOT scaled, and
  the spatial-mixing feed-forward (created after the scaling) is not scaled either. We do the same.
* The reference deep-copies one initialised layer, so all layers start identical
  (``identical_layer_init``). Embedding init: temporal embedder weight U(-0.1, 0.1), spatial embedder
  PyTorch default; read-out weight U(-0.1, 0.1), bias 0; attention in-projections Xavier-uniform over
  the packed (3d, d) matrix with zero biases, as ``nn.MultiheadAttention``.
* Context: bin t attends to [t - context_backward, t + context_forward]; a negative value is unlimited.
  (The reference also treats context_backward == 0 as unlimited; the searched ranges start at 1.)
  The band only limits TEMPORAL attention: spatial tokens span the whole trial, so in STNDT every
  output bin depends on every visible input bin through A. NDT (spatial=False) is banded per layer.
* Temporal attention-probability dropout uses ``dropout`` (as nn.TransformerEncoderLayer); spatial
  attention has none (nn.MultiheadAttention default 0).

Speed (CPU, see benchmarks/train_step.py): temporal attention runs through
F.scaled_dot_product_attention with the cached boolean band as attn_mask on GPUs and, on CPU, whenever
attention dropout is off (evaluation, inference, dropout 0). PyTorch's fused CPU attention kernels
cannot apply dropout, so in CPU training SDPA would drop to its unfused math path and draw the dropout
mask with bernoulli_; we run that same math path ourselves (baddbmm with the cached additive band,
softmax, dropout, bmm) with the cheaper dropout below. Spatial attention is computed explicitly because its
weights are the output.
The random stream of dropout is not the one nn.Dropout would draw (seeded from torch's global generator
all the same).
"""

from __future__ import annotations

import copy
import functools
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import ModelConfig

INIT_RANGE = 0.1  # reference init_weights(): embedder / decoder weights ~ U(-0.1, 0.1)


def sinusoid_table(n_pos: int, dim: int, offset: bool = False) -> Tensor:
    """Transformer sinusoid position encoding (n_pos, dim); odd `dim` drops the last cosine frequency."""
    pos = torch.arange(n_pos, dtype=torch.float32).unsqueeze(1) + (1.0 if offset else 0.0)
    div = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(n_pos, dim)
    table[:, 0::2] = torch.sin(pos * div)
    table[:, 1::2] = torch.cos(pos * div[: dim // 2])
    return table


def band_mask(n: int, context_forward: int, context_backward: int) -> Tensor:
    """Boolean (n, n) mask, True where query bin i may attend key bin j: i - back <= j <= i + fwd."""
    idx = torch.arange(n)
    offset = idx.unsqueeze(0) - idx.unsqueeze(1)  # j - i
    allowed = torch.ones(n, n, dtype=torch.bool)
    if context_forward >= 0:
        allowed &= offset <= context_forward
    if context_backward >= 0:
        allowed &= offset >= -context_backward
    return allowed


def _keep_mask(x: Tensor, p: float, out: Tensor | None = None) -> Tensor:
    """Dropout keep-mask already scaled by 1/(1-p), in x's dtype.

    PyTorch's CPU dropout draws one Mersenne-Twister number per element through bernoulli_, which
    costs about 13 ms per (64, 180, 182) activation on this 2-core CPU - more than the matmuls around
    it. Here one 64-bit draw yields four 16-bit uniforms, compared against round(p * 2^16): about 4x
    cheaper, and p is realised to within 2^-17. Draws use the global torch generator like dropout.
    `out` (contiguous, x's shape) receives the mask in place: a packed model fills member slices.
    """
    n = x.numel()
    bits = torch.randint(-(2**63), 2**63 - 1, ((n + 3) // 4,), dtype=torch.int64, device=x.device)
    uniform16 = bits.view(torch.int16)[:n].view(x.shape)
    keep = torch.empty(x.shape, dtype=x.dtype, device=x.device) if out is None else out
    torch.ge(uniform16, -32768 + round(p * 65536), out=keep)
    return keep.mul_(1.0 / (1.0 - p))


class _Dropout(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, p: float) -> Tensor:
        keep = _keep_mask(x, p)
        ctx.save_for_backward(keep)
        return x * keep

    @staticmethod
    def backward(ctx, grad: Tensor):
        (keep,) = ctx.saved_tensors
        return _masked_grad(grad, keep), None


def _masked_grad(grad: Tensor, keep: Tensor) -> Tensor:
    """grad * keep written straight in keep's (= the input's) dtype: under autocast the incoming
    gradient is often float32 for a bfloat16 input, and this saves a separate cast pass."""
    return torch.mul(grad, keep, out=torch.empty_like(keep))


class _DropoutAdd(torch.autograd.Function):
    """residual + dropout(x) in one pass (addcmul) and one saved mask."""

    @staticmethod
    def forward(ctx, residual: Tensor, x: Tensor, p: float) -> Tensor:
        keep = _keep_mask(x, p)
        ctx.save_for_backward(keep)
        return torch.addcmul(residual, x, keep)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (keep,) = ctx.saved_tensors
        return grad, _masked_grad(grad, keep), None


def dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """Inverted dropout; a cheaper random stream on CPU (see _keep_mask), F.dropout elsewhere."""
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu":
        return F.dropout(x, p, True)
    return _Dropout.apply(x, p)


def dropout_add(residual: Tensor, x: Tensor, p: float, training: bool) -> Tensor:
    """residual + dropout(x)."""
    if not training or p == 0.0:
        return residual + x
    if x.device.type != "cpu" or residual.shape != x.shape:
        return residual + F.dropout(x, p, True)
    return _DropoutAdd.apply(residual, x, p)


class FastDropout(nn.Module):
    """nn.Dropout with the cheaper CPU random stream; same semantics (inverted, identity in eval)."""

    def __init__(self, p: float):
        super().__init__()
        self.p = float(p)

    def forward(self, x: Tensor) -> Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class ScaleNorm(nn.Module):
    """x * g / ||x|| (Transformers without Tears); the reference's MODEL.SCALE_NORM option."""

    def __init__(self, scale: float, eps: float = 1e-5):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(float(scale)))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        return x * (self.scale / torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp(min=self.eps))


def _xavier_packed_(weight: Tensor, fan_in: int, fan_out: int) -> None:
    """Xavier-uniform with the fans of nn.MultiheadAttention's packed in-projection (3d x d)."""
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    with torch.no_grad():
        weight.uniform_(-bound, bound)


class EncoderLayer(nn.Module):
    """One STNDT layer: temporal block, spatial attention weights, spatiotemporal mixing block."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        n, t, h = cfg.n_neurons, cfg.n_time, cfg.n_heads
        self.n_heads = h
        self.pre_norm = cfg.pre_norm
        # temporal block (names mirror nn.TransformerEncoderLayer where it helps comparison)
        self.norm1 = nn.LayerNorm(n)
        self.qkv = nn.Linear(n, 3 * n)
        self.out_proj = nn.Linear(n, n)
        self.norm2 = nn.LayerNorm(n)
        self.linear1 = nn.Linear(n, cfg.ff_hidden)
        self.linear2 = nn.Linear(cfg.ff_hidden, n)
        self.p = cfg.dropout
        _xavier_packed_(self.qkv.weight, n, 3 * n)
        nn.init.zeros_(self.qkv.bias)
        nn.init.zeros_(self.out_proj.bias)
        if cfg.fixup_init:
            gain = 0.67 * cfg.n_layers ** (-0.25)
            with torch.no_grad():
                for w in (self.linear1.weight, self.linear2.weight, self.out_proj.weight):
                    w.mul_(gain)
        self.spatial = cfg.spatial
        if cfg.spatial:
            self.spatial_norm = nn.LayerNorm(t)
            self.spatial_qk = nn.Linear(t, 2 * t)
            _xavier_packed_(self.spatial_qk.weight, t, 3 * t)
            nn.init.zeros_(self.spatial_qk.bias)
            if cfg.keep_unused_spatial_params:
                # Present only for parameter / state-dict parity with the reference; never computed.
                self.spatial_v_unused = nn.Linear(t, t)
                self.spatial_out_unused = nn.Linear(t, t)
                _xavier_packed_(self.spatial_v_unused.weight, t, 3 * t)
                nn.init.zeros_(self.spatial_v_unused.bias)
                nn.init.zeros_(self.spatial_out_unused.bias)
            self.ts_norm1 = nn.LayerNorm(n)
            self.ts_norm2 = nn.LayerNorm(n)
            self.ts_linear1 = nn.Linear(n, cfg.ff_hidden)
            self.ts_linear2 = nn.Linear(cfg.ff_hidden, n)

    def _norm(self, norm: nn.Module, x: Tensor, pre: bool) -> Tensor:
        return norm(x) if self.pre_norm == pre else x

    def temporal(self, x: Tensor, mask: Tensor | None, bias: Tensor | None) -> Tensor:
        """Pre-norm temporal block. `mask` (bool, True = attend) and `bias` (additive) are the band."""
        b, t, n = x.shape
        heads = self.n_heads
        hd = n // heads
        h = self._norm(self.norm1, x, True)
        qkv = self.qkv(h).view(b, t, 3, heads, hd).permute(2, 0, 3, 1, 4)  # 3 x B x H x T x hd
        p_attn = self.p if self.training else 0.0
        if p_attn > 0 and x.device.type == "cpu":
            # The fused CPU SDPA kernels have no dropout: SDPA would fall back to its unfused math
            # path with a bernoulli_ mask. This is that same computation with the cheaper mask.
            # (On GPUs SDPA's fused kernels do apply dropout, so they take the branch below.)
            q, k, v = qkv.reshape(3, b * heads, t, hd).unbind(0)
            if bias is None:
                scores = torch.bmm(q, k.transpose(1, 2)) * hd**-0.5
            else:
                scores = torch.baddbmm(bias, q, k.transpose(1, 2), alpha=hd**-0.5)
            weights = dropout(torch.softmax(scores, dim=-1), self.p, True)
            a = torch.bmm(weights, v).view(b, heads, t, hd)
        else:
            q, k, v = qkv.unbind(0)
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p_attn)
        a = a.transpose(1, 2).reshape(b, t, n)
        x = self._norm(self.norm1, dropout_add(x, self.out_proj(a), self.p, self.training), False)
        h = self._norm(self.norm2, x, True)
        h = self.linear2(dropout(F.relu(self.linear1(h)), self.p, self.training))
        return self._norm(self.norm2, dropout_add(x, h, self.p, self.training), False)

    def spatial_weights(self, s: Tensor) -> Tensor:
        """Head-averaged spatial attention (B, N, N) of spatial tokens s (B, N, T); rows sum to 1."""
        b, n, t = s.shape
        heads = self.n_heads
        hd = t // heads
        h = self.spatial_norm(s) if self.pre_norm else s
        qk = self.spatial_qk(h).view(b, n, 2, heads, hd).permute(2, 0, 3, 1, 4).reshape(2, b * heads, n, hd)
        q, k = qk.unbind(0)
        scores = torch.baddbmm(q.new_zeros(()), q, k.transpose(1, 2), beta=0.0, alpha=hd**-0.5)
        probs = torch.softmax(scores.float().view(b, heads, n, n), dim=-1)
        # Average heads by summing slices, not .mean(1): mean's backward hands softmax a stride-0
        # (expanded) gradient, which sends softmax-backward down a slow path (~10x on CPU).
        return functools.reduce(torch.add, probs.unbind(1)) / heads

    def mix(self, x: Tensor, attn: Tensor) -> Tensor:
        """z = x + drop(LN(x) A^T) (out[b,t,i] = sum_j A[b,i,j] LN(x)[b,t,j]), then the second FF."""
        h = self._norm(self.ts_norm1, x, True)
        mixed = torch.bmm(h, attn.transpose(1, 2))
        z = self._norm(self.ts_norm1, dropout_add(x, mixed, self.p, self.training), False)
        h = self._norm(self.ts_norm2, z, True)
        h = self.ts_linear2(dropout(F.relu(self.ts_linear1(h)), self.p, self.training))
        return self._norm(self.ts_norm2, dropout_add(z, h, self.p, self.training), False)

    def forward(
        self, x: Tensor, s: Tensor | None, mask: Tensor | None, bias: Tensor | None
    ) -> tuple[Tensor, Tensor | None]:
        x = self.temporal(x, mask, bias)
        if not self.spatial:
            return x, None
        attn = self.spatial_weights(s)
        return self.mix(x, attn), attn


class STNDT(nn.Module):
    """STNDT (spatial=True) or NDT (spatial=False) mapping spike counts to per-bin log-rates."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        n, t = cfg.n_neurons, cfg.n_time
        self.embedder = nn.Linear(n, n)
        with torch.no_grad():
            self.embedder.weight.uniform_(-INIT_RANGE, INIT_RANGE)
        self.scale = math.sqrt(n)
        self.register_buffer("pe_time", sinusoid_table(t, n, cfg.position_offset), persistent=False)
        if cfg.spatial:
            self.spatial_embedder = nn.Linear(t, t)
            self.spatial_scale = math.sqrt(t)
            self.register_buffer("pe_space", sinusoid_table(n, t, cfg.position_offset), persistent=False)
        self.embed_dropout = FastDropout(cfg.dropout_embedding)
        first = EncoderLayer(cfg)
        rest = [
            copy.deepcopy(first) if cfg.identical_layer_init else EncoderLayer(cfg) for _ in range(cfg.n_layers - 1)
        ]
        self.layers = nn.ModuleList([first, *rest])
        self.norm = ScaleNorm(n**0.5) if cfg.scale_norm else nn.LayerNorm(n)
        self.rate_dropout = FastDropout(cfg.dropout_rates)
        self.decoder = nn.Linear(n, n)
        with torch.no_grad():
            self.decoder.weight.uniform_(-INIT_RANGE, INIT_RANGE)
            self.decoder.bias.zero_()
        # The band, cached once: boolean for SDPA, additive (0 / -inf) for the training path.
        full = cfg.context_forward < 0 and cfg.context_backward < 0
        mask = None if full else band_mask(t, cfg.context_forward, cfg.context_backward)
        self.register_buffer("context_mask", mask, persistent=False)
        bias = None if full else torch.zeros(t, t).masked_fill(~mask, float("-inf"))
        self.register_buffer("context_bias", bias, persistent=False)

    def visible(self, spikes: Tensor) -> Tensor:
        """The part of the input the model may see: held-in trial bins, zero elsewhere (B, T, N) float."""
        cfg = self.cfg
        if spikes.dim() != 3 or spikes.shape[1:] != (cfg.n_time, cfg.n_neurons):
            raise ValueError(
                f"spikes: expected shape (batch, {cfg.n_time}, {cfg.n_neurons}) "
                f"(t_bins+t_forward, n_heldin+n_heldout), got {tuple(spikes.shape)}"
            )
        heldin = spikes[:, : cfg.t_bins, : cfg.n_heldin].float()
        return F.pad(heldin, (0, cfg.n_heldout, 0, cfg.t_forward))

    def embed(self, spikes: Tensor) -> tuple[Tensor, Tensor | None]:
        """Scaled embedder outputs before position encoding: temporal (B, T, N), spatial (B, N, T).

        These are the vectors the published contrastive loss compares ("embedder" contrast layer).
        The spatial one is None for NDT.
        """
        x = self.visible(spikes)
        temporal = self.embedder(x) * self.scale
        spatial = None
        if self.cfg.spatial:
            spatial = self.spatial_embedder(x.transpose(1, 2)) * self.spatial_scale
        return temporal, spatial

    def forward(self, spikes: Tensor, return_attention: bool = False) -> Tensor | tuple[Tensor, list[Tensor]]:
        """spikes (B, T, N) counts -> log-rates (B, T, N); held-out columns and forward bins are ignored.

        With return_attention, also the per-layer head-averaged spatial attention [(B, N, N)] (empty
        list for NDT).
        """
        temporal, spatial = self.embed(spikes)
        return self.encode(temporal, spatial, return_attention)

    def encode(
        self, temporal: Tensor, spatial: Tensor | None, return_attention: bool = False
    ) -> Tensor | tuple[Tensor, list[Tensor]]:
        """Run position encoding, the layers and the read-out on `embed` outputs."""
        x = self.embed_dropout(temporal + self.pe_time)
        s = self.embed_dropout(spatial + self.pe_space) if spatial is not None else None
        attention: list[Tensor] = []
        for layer in self.layers:
            x, attn = layer(x, s, self.context_mask, self.context_bias)
            if attn is not None:
                if return_attention:
                    attention.append(attn)
                s = x.transpose(1, 2)
        out = self.decoder(self.rate_dropout(self.norm(x)))
        return (out, attention) if return_attention else out


def n_parameters(model: nn.Module) -> int:
    """Number of parameter elements (the reference logs the same count: all params require grad)."""
    return sum(p.numel() for p in model.parameters())
