"""The hyperparameter search: the seeded search space of every member (space.py) and the Bayesian
search in waves (waves.py). Importing this package loads neither; both stay free of torch, so the
workflow's planning code can import them.
"""
