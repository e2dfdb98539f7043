# Stage 3: scoring, ensembles, baselines, submission.
