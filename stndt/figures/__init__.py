"""Figures of the pipeline: the data overview, one module per paper figure (fig2_member_metrics,
fig3_ensemble, fig4_attention, fig5_neuron_dropping, training_curves) and what they share (common,
style). Each figure function writes one PNG + PDF pair and returns its matplotlib Figure."""
