"""Figures of the pipeline (each function writes one PNG + PDF pair)."""
