"""Evaluation: nlb_tools scoring, ensembles, the spike-smoothing baseline and the EvalAI submission."""

from stndt.datasets import RATE_R2
from stndt.evaluate.ensemble import (
    average_rates,
    choose_size,
    ensemble_curve,
    ensemble_rates,
    honest_estimate,
    rank_members,
    select_ensemble,
)
from stndt.evaluate.metrics import (
    RATE_KEYS,
    EvaluationError,
    co_bps,
    has_targets,
    load_rates,
    load_targets,
    rate_r2,
    score,
)
from stndt.evaluate.smoothing import smoothing_rates
from stndt.evaluate.submission import SubmissionError, check_submission, write_submission
from stndt.evaluate.subsets import split_halves, subset_eval_trials

__all__ = [
    "average_rates",
    "choose_size",
    "ensemble_curve",
    "ensemble_rates",
    "honest_estimate",
    "rank_members",
    "select_ensemble",
    "split_halves",
    "subset_eval_trials",
    "RATE_KEYS",
    "RATE_R2",
    "EvaluationError",
    "co_bps",
    "has_targets",
    "load_rates",
    "load_targets",
    "rate_r2",
    "score",
    "smoothing_rates",
    "SubmissionError",
    "check_submission",
    "write_submission",
]
