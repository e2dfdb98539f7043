"""STNDT reproducibility pipeline: data, model, training, evaluation and figures for NLB'21."""

__version__ = "0.1.0"
