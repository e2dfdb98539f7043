#!/usr/bin/env bash
# Run by Snakemake inside the freshly created conda environment (see envs/stndt.yaml): nlb-tools without
# its stale pandas pin. The stndt package itself is found through PYTHONPATH, which the Snakefile sets
# to the repository root for every job.
set -euo pipefail
python -m pip install --no-deps "nlb-tools==0.0.4"
