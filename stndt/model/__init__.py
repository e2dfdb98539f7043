"""STNDT model (NDT with spatial=False), BERT-style masking and the masked + contrastive objective."""

from .config import ModelConfig, ObjectiveConfig
from .objective import eval_nll, info_nce, training_loss
from .stndt import STNDT, band_mask, n_parameters, sinusoid_table

__all__ = [
    "ModelConfig",
    "ObjectiveConfig",
    "STNDT",
    "band_mask",
    "eval_nll",
    "info_nce",
    "n_parameters",
    "sinusoid_table",
    "training_loss",
]
