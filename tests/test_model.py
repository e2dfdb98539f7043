"""Tests of the STNDT model, masking and objective (tiny shapes; seconds in total)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from stndt.model.config import ModelConfig, ObjectiveConfig
from stndt.model.masking import apply_mask, draw_mask, draw_span_width, expand_spans, mask_heldin, span_expand_prob
from stndt.model.objective import eval_nll, info_nce, poisson_nll, training_loss
from stndt.model.stndt import STNDT, band_mask, dropout, dropout_add, n_parameters

TINY = ModelConfig(
    n_heldin=6,
    n_heldout=2,
    t_bins=10,
    t_forward=2,
    n_layers=2,
    n_heads=2,
    ff_hidden=16,
    context_forward=3,
    context_backward=4,
)


def _counts(cfg: ModelConfig, batch: int = 5, seed: int = 0, rate: float = 1.5) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.poisson(torch.full((batch, cfg.n_time, cfg.n_neurons), rate), generator=g)


def _model(cfg: ModelConfig = TINY, seed: int = 0) -> STNDT:
    torch.manual_seed(seed)
    return STNDT(cfg).eval()


# ----------------------------------------------------------------------------------------------- model
def test_parameter_count_matches_reference_mc_maze():
    cfg = ModelConfig(n_heldin=137, n_heldout=45, t_bins=140, t_forward=40)
    with torch.device("meta"):
        assert n_parameters(STNDT(cfg)) == 1_536_212
        # the reference's spatial value/output projections are never used: 4 layers x 2 x (180^2 + 180)
        lean = STNDT(dataclasses.replace(cfg, keep_unused_spatial_params=False))
        assert n_parameters(lean) == 1_536_212 - 4 * 2 * (180 * 180 + 180)


def _reference_forward(model: STNDT, spikes: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Independent seq-first re-computation with nn.MultiheadAttention, laid out like the reference."""
    cfg = model.cfg
    n, t = cfg.n_neurons, cfg.n_time
    x = spikes.clone()
    x[:, cfg.t_bins :] = 0
    x[:, :, cfg.n_heldin :] = 0
    ones = torch.ones(t, t)
    allowed = (torch.triu(ones, diagonal=-cfg.context_forward) == 1).transpose(0, 1)
    allowed &= torch.triu(ones, diagonal=-cfg.context_backward) == 1
    attn_mask = torch.zeros(t, t).masked_fill(~allowed, float("-inf"))

    def pe(length, dim):
        pos = torch.arange(length, dtype=torch.float).unsqueeze(1)
        div = torch.exp(torch.arange(0, dim, 2).float() * (-math.log(10000.0) / dim))
        table = torch.zeros(length, dim)
        table[:, 0::2] = torch.sin(pos * div)
        table[:, 1::2] = torch.cos(pos * div)
        return table.unsqueeze(1)

    src = model.embedder(x.permute(1, 0, 2)) * math.sqrt(n) + pe(t, n)  # T x B x N
    spatial = model.spatial_embedder(x.permute(2, 0, 1)) * math.sqrt(t) + pe(n, t)  # N x B x T
    weights = []
    for i, layer in enumerate(model.layers):
        if i > 0:
            spatial = src.permute(2, 1, 0)
        mha = nn.MultiheadAttention(n, cfg.n_heads)
        smha = nn.MultiheadAttention(t, cfg.n_heads)
        with torch.no_grad():
            mha.in_proj_weight.copy_(layer.qkv.weight)
            mha.in_proj_bias.copy_(layer.qkv.bias)
            mha.out_proj.weight.copy_(layer.out_proj.weight)
            mha.out_proj.bias.copy_(layer.out_proj.bias)
            smha.in_proj_weight.copy_(torch.cat([layer.spatial_qk.weight, layer.spatial_v_unused.weight]))
            smha.in_proj_bias.copy_(torch.cat([layer.spatial_qk.bias, layer.spatial_v_unused.bias]))
        h = layer.norm1(src)
        src = src + mha(h, h, h, attn_mask=attn_mask)[0]
        src = src + layer.linear2(F.relu(layer.linear1(layer.norm2(src))))
        hs = layer.spatial_norm(spatial)
        _, w = smha(hs, hs, hs)  # head-averaged weights, B x N x N
        weights.append(w)
        mixed = torch.bmm(w, layer.ts_norm1(src).permute(1, 2, 0)).permute(2, 0, 1)
        src = src + mixed
        src = src + layer.ts_linear2(F.relu(layer.ts_linear1(layer.ts_norm2(src))))
    out = model.decoder(model.norm(src))
    return out.permute(1, 0, 2), weights


def test_forward_matches_independent_reference_layout():
    model = _model()
    spikes = _counts(TINY)
    with torch.no_grad():
        out, attn = model(spikes, return_attention=True)
        ref_out, ref_attn = _reference_forward(model, spikes)
    torch.testing.assert_close(out, ref_out, atol=1e-5, rtol=1e-4)
    for a, r in zip(attn, ref_attn):
        torch.testing.assert_close(a, r, atol=1e-6, rtol=1e-5)


def test_layers_start_identical_and_fixup_scaled():
    model = _model()
    a, b = model.layers
    for (name, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        assert torch.equal(pa, pb), name
    cfg = dataclasses.replace(TINY, fixup_init=False, identical_layer_init=False)
    torch.manual_seed(0)
    plain = STNDT(cfg)
    assert not torch.equal(plain.layers[0].linear1.weight, plain.layers[1].linear1.weight)
    # default Linear init bound 1/sqrt(fan_in); fixup shrinks linear1 by 0.67 * L^-1/4
    bound = 1 / math.sqrt(TINY.n_neurons)
    assert plain.layers[0].linear1.weight.abs().max() > 0.5 * bound
    assert a.linear1.weight.abs().max() <= 0.67 * 2**-0.25 * bound + 1e-7


def test_spatial_attention_rows_sum_to_one():
    model = _model()
    _, attn = model(_counts(TINY), return_attention=True)
    assert len(attn) == TINY.n_layers
    for a in attn:
        assert a.shape == (5, TINY.n_neurons, TINY.n_neurons)
        assert (a >= 0).all()
        torch.testing.assert_close(a.sum(-1), torch.ones(5, TINY.n_neurons))


@pytest.mark.parametrize("training", [False, True])
def test_model_never_sees_heldout_or_forward_inputs(training):
    model = _model().train(training)
    spikes = _counts(TINY)
    changed = spikes.clone()
    changed[:, :, TINY.n_heldin :] += 7
    changed[:, TINY.t_bins :, :] += 5
    torch.manual_seed(1)
    a = model(spikes)
    torch.manual_seed(1)
    b = model(changed)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    heldin_changed = spikes.clone()
    heldin_changed[:, 0, 0] += 3
    torch.manual_seed(1)
    assert not torch.allclose(model(heldin_changed), a)


def test_ndt_variant_runs_and_trains():
    cfg = dataclasses.replace(TINY, spatial=False)
    model = _model(cfg).train()
    out, attn = model(_counts(cfg), return_attention=True)
    assert out.shape == (5, cfg.n_time, cfg.n_neurons) and attn == []
    assert not hasattr(model, "spatial_embedder")
    g = torch.Generator().manual_seed(0)
    loss = training_loss(model, _counts(cfg), ObjectiveConfig(), 0, g, cfg.n_heldin, cfg.t_bins)
    loss["loss"].backward()
    assert all(p.grad is not None for p in model.parameters())
    assert loss["contrast"] > 0  # temporal embedding term only


def test_band_mask_values():
    m = band_mask(6, context_forward=1, context_backward=2)
    for i in range(6):
        for j in range(6):
            assert bool(m[i, j]) == (i - 2 <= j <= i + 1)
    assert band_mask(4, -1, -1).all()
    assert torch.equal(band_mask(4, 0, -1), torch.ones(4, 4).tril().bool())


@pytest.mark.parametrize("n_layers", [1, 2])
def test_ndt_output_independent_of_inputs_beyond_context(n_layers):
    """Temporal attention is banded: after L layers bin t sees inputs up to t + L * context_forward."""
    cfg = dataclasses.replace(TINY, spatial=False, n_layers=n_layers, t_bins=16, context_forward=2, context_backward=3)
    model = _model(cfg)
    spikes = _counts(cfg)
    t0 = 12
    changed = spikes.clone()
    changed[:, t0, : cfg.n_heldin] += 4
    with torch.no_grad():
        diff = (model(changed) - model(spikes)).abs().amax(dim=(0, 2))
    reach = n_layers * cfg.context_forward
    assert (diff[: t0 - reach] == 0).all()
    assert (diff[t0 - reach : t0 + 1] > 0).all()  # the band really lets these bins see bin t0


def test_training_attention_path_matches_sdpa_path(monkeypatch):
    """In training the temporal attention is computed explicitly (to apply a cheaper dropout to the
    attention probabilities); with dropout neutralised it must equal the SDPA path used in eval."""
    import stndt.model.stndt as impl

    model = _model()
    spikes = _counts(TINY)
    with torch.no_grad():
        ref = model(spikes)
        monkeypatch.setattr(impl, "dropout", lambda x, p, training: x)
        monkeypatch.setattr(impl, "dropout_add", lambda r, x, p, training: r + x)
        model.train()
        torch.testing.assert_close(model(spikes), ref, atol=1e-5, rtol=1e-5)


def test_bf16_training_step_runs():
    model = _model().train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = training_loss(
            model, _counts(TINY), ObjectiveConfig(), 0, torch.Generator().manual_seed(0), TINY.n_heldin, TINY.t_bins
        )
    out["loss"].backward()
    assert out["loss"].dtype == torch.float32 and torch.isfinite(out["loss"])
    assert all(
        p.grad is not None and p.grad.dtype == torch.float32 for n, p in model.named_parameters() if "unused" not in n
    )


def test_bf16_autocast_close_to_fp32():
    model = _model()
    spikes = _counts(TINY)
    with torch.no_grad():
        ref = model(spikes)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(spikes)
    assert (low.float() - ref).abs().max() < 0.1


# --------------------------------------------------------------------------------------------- dropout
def test_fast_dropout_rate_scale_and_gradient():
    torch.manual_seed(0)
    x = torch.ones(200, 500, requires_grad=True)
    y = dropout(x, 0.3, True)
    kept = y != 0
    assert abs(kept.float().mean().item() - 0.7) < 0.005
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], 1 / 0.7))
    y.sum().backward()
    torch.testing.assert_close(x.grad, y.detach())
    assert dropout(x, 0.3, False) is x
    r = torch.zeros(200, 500)
    torch.manual_seed(0)
    torch.testing.assert_close(dropout_add(r, x, 0.3, True), y.detach())


# --------------------------------------------------------------------------------------------- masking
def test_mask_statistics_match_configured_ratios():
    g = torch.Generator().manual_seed(0)
    shape = (64, 140, 137)
    d = draw_mask(shape, ratio=0.25, token_ratio=0.8, random_ratio=0.5, width=1, generator=g)
    frac = d.mask.float().mean().item()
    zero_frac = (d.zeroed.sum() / d.mask.sum()).item()
    rest = d.mask & ~d.zeroed
    random_frac = (d.randomised.sum() / rest.sum()).item()
    assert abs(frac - 0.25) < 0.003
    assert abs(zero_frac - 0.8) < 0.005
    assert abs(random_frac - 0.5) < 0.01
    assert not (d.zeroed & ~d.mask).any() and not (d.randomised & ~d.mask).any()
    assert not (d.zeroed & d.randomised).any()
    # with span expansion the zero / random / keep split is drawn separately; same proportions
    s = draw_mask(shape, ratio=0.25, token_ratio=0.6, random_ratio=0.3, width=3, generator=g)
    assert abs((s.zeroed.sum() / s.mask.sum()).item() - 0.6) < 0.005
    assert abs((s.randomised.sum() / (s.mask & ~s.zeroed).sum()).item() - 0.3) < 0.01


def test_apply_mask_zero_random_keep():
    g = torch.Generator().manual_seed(1)
    heldin = torch.poisson(torch.full((8, 30, 20), 2.0), generator=g)
    d = draw_mask(tuple(heldin.shape), 0.5, 0.4, 0.5, 1, g)
    out = apply_mask(heldin, d, g)
    assert (out[d.zeroed] == 0).all()
    kept = ~d.zeroed & ~d.randomised
    assert torch.equal(out[kept], heldin[kept])
    high = heldin.masked_fill(d.zeroed, 0).max()
    r = out[d.randomised]
    assert (r >= 0).all() and (r < high).all() and (r == r.round()).all()
    assert (r != heldin[d.randomised]).any()  # really redrawn, not copied
    assert heldin.max() > 0 and not torch.equal(out, heldin)


def _reference_expand(mask: torch.Tensor, width: int) -> torch.Tensor:
    """Span expansion as the reference does it (conv1d over time, padding width // 2)."""
    b, t, n = mask.shape
    m = mask.permute(0, 2, 1).reshape(b * n, 1, t).float()
    out = F.conv1d(m, torch.ones(1, 1, width), padding=width // 2).clamp(0, 1)
    if width % 2 == 0:
        out = out[..., :-1]
    return out.reshape(b, n, t).permute(0, 2, 1).bool()


@pytest.mark.parametrize("width", [2, 3, 4, 7])
def test_span_expansion_matches_conv_placement(width):
    g = torch.Generator().manual_seed(width)
    mask = torch.rand((3, 15, 4), generator=g) < 0.1
    assert torch.equal(expand_spans(mask, width), _reference_expand(mask, width))


def test_span_ramp_and_width_draws():
    assert span_expand_prob(0, 10, 20) == 0.0
    assert span_expand_prob(15, 10, 20) == 0.5
    assert span_expand_prob(99, 10, 20) == 1.0
    g = torch.Generator().manual_seed(0)
    assert draw_span_width(5, 0.0, g) == 1 and draw_span_width(1, 1.0, g) == 1
    widths = [draw_span_width(4, 1.0, g) for _ in range(400)]
    assert set(widths) == {1, 2, 3, 4}
    half = [draw_span_width(4, 0.5, g) > 1 for _ in range(2000)]
    assert abs(sum(half) / 2000 - 0.5 * 0.75) < 0.05  # expanded half the time, width 1 a quarter of those
    # spans keep the overall masked fraction near the ratio (ratio / width, then expanded by width)
    d = draw_mask((32, 140, 50), 0.2, 1.0, 0.0, 4, g)
    assert 0.15 < d.mask.float().mean().item() < 0.2


# Tiny deterministic case, checked by hand: torch.Generator().manual_seed(1) gives, for a (1, 8, 1)
# draw, u = [0.758, 0.279, 0.403, 0.735, 0.029, 0.800, 0.397, 0.754].
_U_SEED1 = [0.758, 0.279, 0.403, 0.735, 0.029, 0.800, 0.397, 0.754]


@pytest.mark.parametrize(
    "width, ref_bins, expand_bins",
    [
        # w = 3: p = 0.6 / 3 = 0.2 -> only bin 4 (u = 0.029); a span of 3 centred on it covers bins 3, 4, 5
        (3, [4], [3, 4, 5]),
        # w = 2: p = 0.3 -> bins 1 and 4; an even span covers [s, s + 1] (conv padding 1, last column cropped)
        (2, [1, 4], [1, 2, 4, 5]),
    ],
)
def test_span_modes_exact_positions_hand_checked(width, ref_bins, expand_bins):
    assert torch.rand((1, 8, 1), generator=torch.Generator().manual_seed(1)).flatten().tolist() == pytest.approx(
        _U_SEED1, abs=5e-4
    )
    ref = draw_mask((1, 8, 1), 0.6, 0.5, 0.0, width, torch.Generator().manual_seed(1), span_mode="reference")
    exp = draw_mask((1, 8, 1), 0.6, 0.5, 0.0, width, torch.Generator().manual_seed(1), span_mode="expand")
    assert ref.mask.flatten().nonzero().flatten().tolist() == ref_bins
    assert exp.mask.flatten().nonzero().flatten().tolist() == expand_bins
    # reference: zeroed where u < p * token_ratio = 0.1 (w = 3) or 0.15 (w = 2): bin 4 only
    assert ref.zeroed.flatten().nonzero().flatten().tolist() == [4]
    assert not ref.randomised.any()  # random_ratio 0


def test_span_modes_masked_fraction():
    # ratio 0.3, w = 3 -> p = 0.1 per entry, on 400 x 10 x 50 = 200,000 entries.
    # reference: fraction p = 0.1 (= ratio / w). iid Bernoulli: sd sqrt(0.09 / 2e5) = 6.7e-4; tol 0.004 ~ 6 sd.
    # expand (T = 10): 8 interior bins are covered by 3 sources, the 2 edge bins by 2, so
    # E = (8 (1 - 0.9^3) + 2 (1 - 0.9^2)) / 10 = (8 x 0.271 + 2 x 0.19) / 10 = 0.2548 (near ratio, not p).
    # An entry correlates with at most 4 neighbours: sd <= sqrt(5 x 0.19 / 2e5) = 2.2e-3; tol 0.01 ~ 4.6 sd.
    shape = (400, 10, 50)
    ref = draw_mask(shape, 0.3, 1.0, 0.0, 3, torch.Generator().manual_seed(0), span_mode="reference")
    exp = draw_mask(shape, 0.3, 1.0, 0.0, 3, torch.Generator().manual_seed(0), span_mode="expand")
    assert ref.mask.float().mean().item() == pytest.approx(0.1, abs=0.004)
    assert exp.mask.float().mean().item() == pytest.approx(0.2548, abs=0.01)
    # width 1 is the same draw in both modes
    a = draw_mask(shape, 0.3, 0.8, 0.5, 1, torch.Generator().manual_seed(5), span_mode="reference")
    b = draw_mask(shape, 0.3, 0.8, 0.5, 1, torch.Generator().manual_seed(5), span_mode="expand")
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    # token / random split among masked entries is the configured one in reference mode too
    r = draw_mask(shape, 0.3, 0.6, 0.3, 3, torch.Generator().manual_seed(2), span_mode="reference")
    assert (r.zeroed.sum() / r.mask.sum()).item() == pytest.approx(0.6, abs=0.01)
    assert (r.randomised.sum() / (r.mask & ~r.zeroed).sum()).item() == pytest.approx(0.3, abs=0.02)
    with pytest.raises(ValueError, match="span_mode"):
        draw_mask(shape, 0.3, 1.0, 0.0, 3, torch.Generator(), span_mode="full")


def test_mask_span_mode_config_and_objective_wiring():
    assert ObjectiveConfig().mask_span_mode == "expand"  # params.json without the key were trained so
    with pytest.raises(ValueError, match="mask_span_mode"):
        ObjectiveConfig(mask_span_mode="full")
    assert ObjectiveConfig.from_dict({"mask_span_mode": "reference"}).mask_span_mode == "reference"
    batch = _counts(TINY, batch=4, seed=3)
    heldin = batch[:, : TINY.t_bins, : TINY.n_heldin]
    seen = {}
    for mode in ("reference", "expand"):
        # ramp done at epoch 5: every batch draws a width in 1..3 (same draws for both modes)
        cfg = ObjectiveConfig(
            mask_ratio=0.3,
            mask_max_span=3,
            mask_span_ramp_start=0,
            mask_span_ramp_end=1,
            contrastive=False,
            mask_span_mode=mode,
        )
        model = _FixedRates(0.0)
        training_loss(model, batch, cfg, 5, torch.Generator().manual_seed(16), TINY.n_heldin, TINY.t_bins)
        g = torch.Generator().manual_seed(16)  # draws width 3
        width = draw_span_width(3, 1.0, g)
        masked, _ = mask_heldin(heldin, 0.3, cfg.mask_token_ratio, cfg.mask_random_ratio, width, g, mode)
        assert torch.equal(model.seen[0][:, : TINY.t_bins, : TINY.n_heldin], masked)
        seen[mode] = masked
    assert width == 3 and not torch.equal(seen["reference"], seen["expand"])


def test_same_seed_same_masks():
    heldin = _counts(TINY)[:, : TINY.t_bins, : TINY.n_heldin]
    a = mask_heldin(heldin, 0.3, 0.8, 0.5, 1, torch.Generator().manual_seed(42))
    b = mask_heldin(heldin, 0.3, 0.8, 0.5, 1, torch.Generator().manual_seed(42))
    c = mask_heldin(heldin, 0.3, 0.8, 0.5, 1, torch.Generator().manual_seed(43))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])


# ------------------------------------------------------------------------------------------- objective
class _FixedRates(nn.Module):
    """Stands in for the model: constant log-rate, records its input."""

    def __init__(self, log_rate: float):
        super().__init__()
        self.log_rate = log_rate
        self.seen: list[torch.Tensor] = []

    def forward(self, x):
        self.seen.append(x.clone())
        return torch.full(x.shape, self.log_rate)


def test_masked_loss_hand_checked():
    # 1 trial, 2 trial bins + 1 forward bin, 2 held-in + 1 held-out neuron; mask everything held-in
    batch = torch.tensor([[[1.0, 0.0, 2.0], [3.0, 1.0, 0.0], [0.0, 4.0, 1.0]]])
    model = _FixedRates(math.log(2.0))
    cfg = ObjectiveConfig(mask_ratio=1.0, mask_token_ratio=1.0, contrastive=False)
    out = training_loss(model, batch, cfg, 0, torch.Generator().manual_seed(0), n_heldin=2, t_bins=2)
    # every entry is in the loss: mean(2 - y log 2) over the 9 counts (sum 12)
    expected = (9 * 2.0 - 12 * math.log(2.0)) / 9
    assert out["masked_nll"].item() == pytest.approx(expected, rel=1e-6)
    assert out["loss"].item() == pytest.approx(expected, rel=1e-6) and out["contrast"].item() == 0.0
    assert torch.count_nonzero(model.seen[0]) == 0  # everything zeroed or hidden


def test_masked_loss_equals_direct_computation():
    batch = _counts(TINY, batch=4, seed=3)
    model = _FixedRates(0.3)
    cfg = ObjectiveConfig(mask_ratio=0.3, contrastive=False)
    out = training_loss(model, batch, cfg, 0, torch.Generator().manual_seed(7), TINY.n_heldin, TINY.t_bins)
    heldin = batch[:, : TINY.t_bins, : TINY.n_heldin]
    masked, mask = mask_heldin(
        heldin, 0.3, cfg.mask_token_ratio, cfg.mask_random_ratio, 1, torch.Generator().manual_seed(7)
    )
    seen = model.seen[0]
    assert torch.equal(seen[:, : TINY.t_bins, : TINY.n_heldin], masked)
    assert seen[:, TINY.t_bins :].abs().sum() == 0 and seen[:, :, TINY.n_heldin :].abs().sum() == 0
    in_loss = torch.ones_like(batch, dtype=torch.bool)
    in_loss[:, : TINY.t_bins, : TINY.n_heldin] = mask
    nll = [math.exp(0.3) - y * 0.3 for y in batch[in_loss].tolist()]
    assert out["masked_nll"].item() == pytest.approx(sum(nll) / len(nll), rel=1e-5)


def _plain_info_nce(z1: torch.Tensor, z2: torch.Tensor, tau: float) -> float:
    z = [v / v.norm() for v in torch.cat([z1, z2]).double()]
    b = z1.shape[0]
    total = 0.0
    for i in range(2 * b):
        pos = i + b if i < b else i - b
        denom = sum(math.exp(float(z[i] @ z[j]) / tau) for j in range(2 * b) if j != i)
        total += -math.log(math.exp(float(z[i] @ z[pos]) / tau) / denom)
    return total / (2 * b)


def test_info_nce_equals_plain_computation():
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(5, 12, generator=g), torch.randn(5, 12, generator=g)
    z2[:2] = z1[:2] + 0.1  # some near-positives
    assert info_nce(z1, z2, 0.07).item() == pytest.approx(_plain_info_nce(z1, z2, 0.07), rel=1e-5)


def test_training_loss_contrast_term_is_lambda_times_both_embedding_terms():
    model = _model().train()
    batch = _counts(TINY, batch=6, seed=5)
    cfg = ObjectiveConfig(contrast_lambda=0.3, contrast_mask_ratio=0.2)
    out = training_loss(model, batch, cfg, 0, torch.Generator().manual_seed(11), TINY.n_heldin, TINY.t_bins)
    # replay the same draws: main mask, then the two contrast views
    g = torch.Generator().manual_seed(11)
    heldin = batch[:, : TINY.t_bins, : TINY.n_heldin]
    mask_heldin(heldin, cfg.mask_ratio, cfg.mask_token_ratio, cfg.mask_random_ratio, 1, g)
    views = []
    for _ in range(2):
        v, _ = mask_heldin(heldin, cfg.contrast_mask_ratio, cfg.contrast_token_ratio, cfg.contrast_random_ratio, 1, g)
        views.append(F.pad(v, (0, TINY.n_heldout, 0, TINY.t_forward)))
    with torch.no_grad():
        (t1, s1), (t2, s2) = model.embed(views[0]), model.embed(views[1])
        emb = model.embedder(views[0]) * math.sqrt(TINY.n_neurons)  # embedder output, no position code
        torch.testing.assert_close(t1, emb)
    expected = 0.3 * (
        _plain_info_nce(t1.flatten(1), t2.flatten(1), 0.07) + _plain_info_nce(s1.flatten(1), s2.flatten(1), 0.07)
    )
    assert out["contrast"].item() == pytest.approx(expected, rel=1e-4)
    assert out["loss"].item() == pytest.approx(out["masked_nll"].item() + expected, rel=1e-4)
    out["loss"].backward()
    assert model.embedder.weight.grad.abs().sum() > 0


def test_contrast_schedule_switch():
    model = _model().train()
    batch = _counts(TINY)
    paper = ObjectiveConfig(contrast_start_epoch=100)
    early = training_loss(model, batch, paper, 99, torch.Generator().manual_seed(0), TINY.n_heldin, TINY.t_bins)
    late = training_loss(model, batch, paper, 100, torch.Generator().manual_seed(0), TINY.n_heldin, TINY.t_bins)
    assert early["contrast"].item() == 0.0 and late["contrast"].item() > 0.0
    off = training_loss(
        model,
        batch,
        ObjectiveConfig(contrastive=False),
        500,
        torch.Generator().manual_seed(0),
        TINY.n_heldin,
        TINY.t_bins,
    )
    assert off["contrast"].item() == 0.0


def test_training_loss_reproducible_from_generator():
    model = _model().train()
    batch = _counts(TINY)
    runs = []
    for _ in range(2):
        torch.manual_seed(0)  # dropout
        runs.append(
            training_loss(
                model, batch, ObjectiveConfig(), 0, torch.Generator().manual_seed(5), TINY.n_heldin, TINY.t_bins
            )["loss"].item()
        )
    assert runs[0] == runs[1]


def test_eval_nll_regions():
    model = _FixedRates(0.0)
    batch = _counts(TINY)
    out = eval_nll(model, batch, TINY.n_heldin, TINY.t_bins)
    assert out["heldout_nll"].item() == pytest.approx(1.0)  # exp(0) - y * 0
    torch.testing.assert_close(poisson_nll(torch.zeros(3), torch.tensor([0.0, 1.0, 2.0])), torch.ones(3))


def test_config_validation_names_field():
    with pytest.raises(ValueError, match="mask_ratio"):
        ObjectiveConfig(mask_ratio=0.0)
    with pytest.raises(ValueError, match="n_heads"):
        ModelConfig(n_heldin=5, n_heldout=0, t_bins=10, t_forward=0, n_heads=2)
    with pytest.raises(ValueError, match="bogus"):
        ObjectiveConfig.from_dict({"bogus": 1})
    assert ModelConfig.from_dict(TINY.to_dict()) == TINY
    with pytest.raises(ValueError, match="spikes"):
        _model()(torch.zeros(2, 3, 4))


# ---------------------------------------------------------------------------------------- search space
# Integer ranges of the reference's configs/*.json, all Ray randint(low, high) (high EXCLUDED; Ray 1.11's
# SkOptSearch maps it to skopt Integer(low, high - 1)): what the published search could sample, inclusive.
_PUBLISHED_INT_RANGES = {
    "mc_maze": {
        "context_forward": (1, 99),
        "context_backward": (1, 99),
        "warmup_epochs": (0, 6999),
        "mask_max_span": (1, 6),
    },
    "mc_rtt": {
        "context_forward": (1, 99),
        "context_backward": (1, 99),
        "warmup_epochs": (0, 6999),
        "mask_max_span": (1, 6),
    },
    "area2_bump": {"context_forward": (4, 99), "context_backward": (4, 99), "warmup_epochs": (0, 6999)},
    "dmfc_rsg": {
        "context_forward": (40, 239),
        "context_backward": (40, 239),
        "warmup_epochs": (0, 1999),
        "mask_max_span": (1, 6),
    },
}


@pytest.mark.parametrize("layout", sorted(_PUBLISHED_INT_RANGES))
def test_search_space_int_ranges_and_span_mode_match_published_search(layout):
    from stndt.train.search import space as ss

    space = ss.load_search_spaces(ss.DEFAULT_SPACES_FILE)[layout]
    ints = {k: (v["low"], v["high"]) for k, v in space.items() if isinstance(v, dict) and v.get("int")}
    assert ints == _PUBLISHED_INT_RANGES[layout]  # every int range, none missing, none extra
    assert space["mask_span_mode"] == "reference"  # published MASK_MODE "full": no span expansion
    draws = [ss.sample_params(space, 0, i) for i in range(300)]
    for name, (low, high) in ints.items():  # inclusive: both ends reachable where the range is small
        values = {d[name] for d in draws}
        assert min(values) >= low and max(values) <= high
        if high - low < 10:
            assert values == set(range(low, high + 1))
