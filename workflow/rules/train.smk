# Stage 2: one training job per ensemble member.
