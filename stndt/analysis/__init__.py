"""Analyses behind the paper's figures: STNDT spatial attention (Fig. 4) and neuron dropping (Fig. 5).

The entry point of the dropping analysis is `stndt.analysis.neuron_dropping.neuron_dropping`; it is not
re-exported here, where its name would hide the submodule of the same name.
"""

from stndt.analysis.attention import (
    attention_ranking,
    model_attention,
    rank_by_attention,
    received_attention,
    spatial_attention,
)
from stndt.analysis.neuron_dropping import dropping_grid, member_ranking, random_orders, select_members

__all__ = [
    "attention_ranking",
    "model_attention",
    "rank_by_attention",
    "received_attention",
    "spatial_attention",
    "dropping_grid",
    "member_ranking",
    "random_orders",
    "select_members",
]
