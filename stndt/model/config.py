"""Configuration of the STNDT model and of its training objective.

Defaults follow the published MC_Maze reference configuration (trungle93/STNDT `configs/mc_maze.yaml`
on top of its `src/config/default.py`) unless the project brief fixes another value. Both configs are
frozen dataclasses so they can be hashed, logged and stored in checkpoints unchanged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

# How a mask span width w > 1 acts (ObjectiveConfig.mask_span_mode); see masking.py's docstring. Here, not
# in masking.py, so that reading a config (the workflow does it while planning) does not import torch.
SPAN_MODES: tuple[str, ...] = ("reference", "expand")


def _check(condition: bool, cls: str, field: str, message: str) -> None:
    if not condition:
        raise ValueError(f"{cls}.{field}: {message}")


@dataclass(frozen=True)
class ModelConfig:
    """Shape and regularisation of one STNDT (or NDT, with ``spatial=False``) model.

    ``t_bins``/``t_forward`` are the trial and forward-prediction bins, ``n_heldin``/``n_heldout`` the
    neuron counts; the model works on ``T = t_bins + t_forward`` bins and ``N = n_heldin + n_heldout``
    neurons and never sees the held-out columns or the forward bins.

    Reference per-dataset settings (configs/*.yaml): mc_maze, mc_rtt 4 layers / 2 heads; area2_bump
    4 layers / 1 head; dmfc_rsg 6 layers / 2 heads. n_heads must divide N (and T for STNDT).
    """

    n_heldin: int
    n_heldout: int
    t_bins: int
    t_forward: int
    n_layers: int = 4
    n_heads: int = 2
    ff_hidden: int = 128
    # Banded temporal context: bin t attends to bins [t - context_backward, t + context_forward].
    # A negative value means "unlimited" in that direction (the reference's -1).
    context_forward: int = 50
    context_backward: int = 50
    dropout: float = 0.1  # residual, feed-forward and temporal attention-probability dropout
    dropout_rates: float = 0.2  # dropout on the final features before the read-out
    dropout_embedding: float = 0.2  # dropout after embedding + position encoding
    spatial: bool = True  # False -> NDT (no spatial embedder, attention or mixing block)
    # Switches that reproduce the reference configuration (mc_maze.yaml); the defaults are its values.
    pre_norm: bool = True  # MODEL.PRE_NORM
    scale_norm: bool = False  # MODEL.SCALE_NORM: ScaleNorm instead of the final LayerNorm
    fixup_init: bool = True  # MODEL.FIXUP_INIT (T-Fixup scaling, see stndt.py for exactly which)
    position_offset: bool = False  # MODEL.POSITION.OFFSET: positions start at 1 instead of 0
    # The reference builds one encoder layer and deep-copies it, so all layers start identical.
    identical_layer_init: bool = True
    # The reference's spatial attention is a full nn.MultiheadAttention whose value and output
    # projections are never used (only its weight matrix is). Keeping them (no gradient ever reaches
    # them) makes the parameter count and state dict match the reference: 1,536,212 on MC_Maze.
    keep_unused_spatial_params: bool = True

    @property
    def n_neurons(self) -> int:
        return self.n_heldin + self.n_heldout

    @property
    def n_time(self) -> int:
        return self.t_bins + self.t_forward

    def __post_init__(self) -> None:
        name = type(self).__name__
        for f in ("n_heldin", "t_bins", "n_layers", "n_heads", "ff_hidden"):
            v = getattr(self, f)
            _check(
                isinstance(v, int) and not isinstance(v, bool) and v >= 1,
                name,
                f,
                f"must be a positive integer, got {v!r}",
            )
        for f in ("n_heldout", "t_forward"):
            v = getattr(self, f)
            _check(
                isinstance(v, int) and not isinstance(v, bool) and v >= 0,
                name,
                f,
                f"must be a non-negative integer, got {v!r}",
            )
        for f in ("context_forward", "context_backward"):
            v = getattr(self, f)
            _check(isinstance(v, int) and not isinstance(v, bool), name, f, f"must be an integer, got {v!r}")
        for f in ("dropout", "dropout_rates", "dropout_embedding"):
            v = getattr(self, f)
            _check(0.0 <= float(v) < 1.0, name, f, f"must be in [0, 1), got {v!r}")
        _check(
            self.n_neurons % self.n_heads == 0,
            name,
            "n_heads",
            f"must divide the number of neurons {self.n_neurons} (temporal token width)",
        )
        if self.spatial:
            _check(
                self.n_time % self.n_heads == 0,
                name,
                "n_heads",
                f"must divide the number of bins {self.n_time} (spatial token width)",
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        """Build from a dict, rejecting unknown keys by name (e.g. from a checkpoint or params.json)."""
        return _from_dict(cls, d)


@dataclass(frozen=True)
class ObjectiveConfig:
    """Masked-modelling + contrastive objective (reference TRAIN.* / MODEL.LAMBDA, TEMPERATURE).

    Span ramp: ``mask_span_ramp_start``/``_end`` are in EPOCHS (the reference counts one "update" per
    pass over the training set). Before the start no span expansion happens; between start and end a
    batch is expanded with probability rising linearly to 1; the span width is then drawn uniformly in
    [1, mask_max_span] and the mask ratio divided by it, as in the reference; ``mask_span_mode`` says
    whether the mask is then also expanded into spans (see the field's comment). (Reference yamls: ramp
    8000-12000 for mc_maze, mc_rtt, dmfc_rsg; area2_bump keeps the code default 600-1200; released
    contrast mask ratio 0.05; the reference's own default mask_token_ratio is 1.0, searched in [0.5, 1].)
    """

    mask_ratio: float = 0.25
    mask_token_ratio: float = 0.8  # of masked entries: fraction set to zero (the "mask token")
    mask_random_ratio: float = 0.5  # of the masked entries not zeroed: fraction set to a random count
    mask_max_span: int = 1
    mask_span_ramp_start: int = 8000  # epochs (reference mc_maze.yaml)
    mask_span_ramp_end: int = 12000  # epochs
    contrastive: bool = True
    contrast_lambda: float = 0.1
    temperature: float = 0.07
    contrast_mask_ratio: float = 0.1
    contrast_token_ratio: float = 0.5  # reference mc_maze.yaml CONTRAST_MASK_TOKEN_RATIO
    contrast_random_ratio: float = 0.5  # reference mc_maze.yaml CONTRAST_MASK_RANDOM_RATIO
    contrast_max_span: int = 1  # reference CONTRAST_MASK_MAX_SPAN (shares the span ramp)
    # What a span width w > 1 does (stndt.model.masking): "reference" = the published MASK_MODE "full":
    # mask with probability ratio / w and do NOT expand into spans (config/search_spaces.yaml fixes
    # this for the paper runs); "expand" = also grow the mask into w-bin spans along time (masked
    # fraction near ratio, as the paper describes). The default stays "expand" because params.json
    # files written before this field existed were trained that way. Applies to the contrast views too.
    mask_span_mode: str = "expand"
    # 0 = released schedule (both terms from the first step); k > 0 = paper schedule: masked modelling
    # alone for epochs < k, then the contrastive term is added.
    contrast_start_epoch: int = 0

    def __post_init__(self) -> None:
        name = type(self).__name__
        for f in ("mask_ratio", "contrast_mask_ratio"):
            v = getattr(self, f)
            _check(0.0 < float(v) <= 1.0, name, f, f"must be in (0, 1], got {v!r}")
        for f in ("mask_token_ratio", "mask_random_ratio", "contrast_token_ratio", "contrast_random_ratio"):
            v = getattr(self, f)
            _check(0.0 <= float(v) <= 1.0, name, f, f"must be in [0, 1], got {v!r}")
        for f in ("mask_max_span", "contrast_max_span"):
            v = getattr(self, f)
            _check(
                isinstance(v, int) and not isinstance(v, bool) and v >= 1,
                name,
                f,
                f"must be an integer >= 1, got {v!r}",
            )
        _check(
            self.mask_span_mode in SPAN_MODES,
            name,
            "mask_span_mode",
            f"must be one of {', '.join(SPAN_MODES)}, got {self.mask_span_mode!r}",
        )
        _check(
            self.mask_span_ramp_end > self.mask_span_ramp_start,
            name,
            "mask_span_ramp_end",
            f"must exceed mask_span_ramp_start ({self.mask_span_ramp_start}), got {self.mask_span_ramp_end}",
        )
        _check(
            float(self.contrast_lambda) >= 0.0, name, "contrast_lambda", f"must be >= 0, got {self.contrast_lambda!r}"
        )
        _check(float(self.temperature) > 0.0, name, "temperature", f"must be > 0, got {self.temperature!r}")
        _check(
            isinstance(self.contrast_start_epoch, int) and self.contrast_start_epoch >= 0,
            name,
            "contrast_start_epoch",
            f"must be an integer >= 0, got {self.contrast_start_epoch!r}",
        )

    def contrast_active(self, epoch: int) -> bool:
        """Whether the contrastive term is part of the loss at this epoch (switch + schedule)."""
        return self.contrastive and self.contrast_lambda > 0 and epoch >= self.contrast_start_epoch

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ObjectiveConfig:
        return _from_dict(cls, d)


def _from_dict(cls: type, d: dict[str, Any]):
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return cls(**d)
