"""Evaluation: nlb_tools scoring, ensembles, the spike-smoothing baseline and the EvalAI submission.

Import from the modules: this package file imports nothing, so that a job needing one of them (a scoring
job, the workflow's planning) does not pay for torch, pynwb and scikit-learn at once.
"""
