"""STNDT model (NDT with spatial=False), BERT-style masking and the masked + contrastive objective.

Import from the modules (`stndt.model.stndt`, `.config`, `.masking`, `.objective`): this package file
imports nothing, so that reading a config (the workflow does, while planning) does not import torch.
"""
