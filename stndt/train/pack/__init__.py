"""Packed training: K members of one shape trained as one batched computation.

train.py (train_pack and its step for stndt.train.driver), model.py (PackedSTNDT: the STNDT forward on
stacked parameters), loss.py (the training loss of every member in one step) and optim.py (per-member
clipping and AdamW). Importing this package loads none of them (they need torch).
"""
