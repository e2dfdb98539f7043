#!/usr/bin/env bash
# Install the stndt pipeline into a virtual environment (default: .venv next to this file).
#   bash install.sh            # runtime
#   bash install.sh --test     # runtime + test tools
# nlb-tools 0.0.4 pins pandas<=1.3.4 (no wheel for Python 3.11+) but works unchanged with pandas 2.2/2.3,
# so it is installed with --no-deps after its real dependencies (listed in pyproject.toml).
# Torch: the range in pyproject.toml is loose; install the build you want first (e.g. a CPU or a CUDA wheel)
# and this script keeps it.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${VENV:-$here/.venv}"
extras=""
if [[ "${1:-}" == "--test" ]]; then extras="[test]"; fi
if [[ ! -x "$venv/bin/python" ]]; then
    "${PYTHON:-python3}" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet -e "$here$extras"
"$venv/bin/python" -m pip install --quiet --no-deps "nlb-tools==0.0.4"
"$venv/bin/python" -c "import nlb_tools.make_tensors, stndt; print('stndt installed in', '$venv')"
