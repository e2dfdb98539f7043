"""Figures of the pipeline: the data overview, one module per paper figure (FIGURES) and what they share
(common, style). Each figure function writes one PNG + PDF pair and returns its matplotlib Figure."""

#: The paper's figures of every dataset, by the name of their module, their command
#: (`python -m stndt.cli figure NAME`), their files (results/paper/figures/{dataset}_NAME.png) and their
#: report caption (workflow/report/NAME.rst). The one list of them: the workflow and the CLI read it.
FIGURES: tuple[str, ...] = (
    "fig2_member_metrics",
    "fig3_ensemble",
    "fig4_attention",
    "fig5_neuron_dropping",
    "training_curves",
)
