"""The one home of facts about NLB datasets and NLB metric names.

Every other module (download, synthetic generator, preprocessing, evaluation, tables) reads these
tables instead of repeating dataset names, dandiset ids or metric names.
"""

from __future__ import annotations

from dataclasses import dataclass

# Metric names exactly as `nlb_tools.evaluation.evaluate` reports them.
CO_BPS = "co-bps"
VEL_R2 = "vel R2"
PSTH_R2 = "psth R2"
FP_BPS = "fp-bps"
TP_CORR = "tp corr"
METRICS: tuple[str, ...] = (CO_BPS, VEL_R2, PSTH_R2, FP_BPS, TP_CORR)
# Ground-truth comparison for synthetic data (R2 of predicted vs true rates); not an NLB metric.
RATE_R2 = "rate R2"
# For tp corr (dmfc_rsg) more negative is better, as in the benchmark's leaderboard.
LOWER_IS_BETTER: frozenset[str] = frozenset({TP_CORR})

PHASES: tuple[str, ...] = ("val", "test")
# nlb_tools trial splits of each phase: (train trials, eval trials). The val phase evaluates locally on
# the 'val' split; the test phase trains on train+val and predicts the hidden 'test' split.
PHASE_SPLITS: dict[str, tuple[str | list[str], str]] = {"val": ("train", "val"), "test": (["train", "val"], "test")}
SUPPORTED_BIN_WIDTHS_MS: tuple[int, ...] = (5, 20)  # the bin widths nlb_tools' evaluate() scores
# The NLB'21 challenge on EvalAI (nlb_tools' README: eval.ai/web/challenges/challenge-page/1256), which scores
# submissions on the hidden test split. Its phase ids are not published in any text we found.
NLB_EVALAI_CHALLENGE = 1256


@dataclass(frozen=True)
class NLBDataset:
    """One NLB'21 dataset: where it lives on DANDI and which metrics the benchmark defines for it."""

    name: str  # nlb_tools' dataset name (selects its alignment windows and metrics)
    dandiset: str  # DANDI archive id
    dandi_dir: str  # folder of the dandiset holding the train/test NWB files
    family: str  # layout family the synthetic generator follows: mc_maze, mc_rtt, area2_bump, dmfc_rsg
    metrics: tuple[str, ...]
    smooth_kern_sd_ms: float = 50.0  # NLB spike-smoothing baseline: kernel sd and GLM alpha, as tuned by
    smooth_alpha: float = 0.01  # the NLB authors per dataset


_BEHAVIOUR_MAZE = (CO_BPS, VEL_R2, PSTH_R2, FP_BPS)

NLB_DATASETS: dict[str, NLBDataset] = {
    d.name: d
    for d in (
        NLBDataset("mc_maze", "000128", "sub-Jenkins", "mc_maze", _BEHAVIOUR_MAZE, 50, 0.01),
        NLBDataset("mc_rtt", "000129", "sub-Indy", "mc_rtt", (CO_BPS, VEL_R2, FP_BPS), 30, 0.1),
        NLBDataset("area2_bump", "000127", "sub-Han", "area2_bump", _BEHAVIOUR_MAZE, 30, 0.01),
        NLBDataset("dmfc_rsg", "000130", "sub-Haydn", "dmfc_rsg", (CO_BPS, TP_CORR, PSTH_R2, FP_BPS), 60, 0.001),
        NLBDataset("mc_maze_large", "000138", "sub-Jenkins", "mc_maze", _BEHAVIOUR_MAZE, 40, 0.1),
        NLBDataset("mc_maze_medium", "000139", "sub-Jenkins", "mc_maze", _BEHAVIOUR_MAZE, 60, 0.1),
        NLBDataset("mc_maze_small", "000140", "sub-Jenkins", "mc_maze", _BEHAVIOUR_MAZE, 60, 0.1),
    )
}
LAYOUTS: tuple[str, ...] = tuple(NLB_DATASETS)
# NLB'21 sizes (Pei et al. 2021): held-in / held-out neurons and training trials of the val phase (the
# 'train' split). Used by `stndt.plan` before a dataset's tensors exist; trial counts are approximate.
NLB_SIZES: dict[str, tuple[int, int, int]] = {
    "mc_maze": (137, 45, 1721),
    "mc_rtt": (98, 32, 810),
    "area2_bump": (49, 16, 273),
    "dmfc_rsg": (40, 14, 754),
    "mc_maze_large": (122, 40, 375),
    "mc_maze_medium": (114, 38, 188),
    "mc_maze_small": (107, 35, 75),
}
SCALING_DATASETS: tuple[str, ...] = ("mc_maze_large", "mc_maze_medium", "mc_maze_small")
# nlb_tools' evaluate() files the three scaling sizes under one split (`mc_maze_scaling_split`), each metric
# prefixed with the size's training-trial count (its `scaling_tcount`): "[100] co-bps" is MC_Maze-Small's.
SCALING_PREFIX: dict[str, str] = {"mc_maze_large": "[500]", "mc_maze_medium": "[250]", "mc_maze_small": "[100]"}


def nlb_dataset(layout: str) -> NLBDataset:
    """Look up a layout by name, with an error that lists the valid names."""
    try:
        return NLB_DATASETS[layout]
    except KeyError:
        raise ValueError(f"unknown NLB layout {layout!r}; expected one of {', '.join(LAYOUTS)}") from None


def nlb_key(layout: str, bin_width_ms: int) -> str:
    """Name nlb_tools uses for a dataset's group in target and submission files (`mc_maze`, `mc_maze_20`)."""
    return layout if bin_width_ms == 5 else f"{layout}_{bin_width_ms}"
