#!/usr/bin/env bash
# Install the Debian/Ubuntu packages of a single-node SLURM test cluster (munge + slurmctld + slurmd +
# client tools), quietly. tests/slurm/cluster.sh starts the daemons; this script only installs.
# About 3 MB with --no-install-recommends, a few seconds. No-op when everything is already installed.
# The packages' install scripts print that starting the services "was denied by policy" in
# containers without systemd: harmless, cluster.sh starts the daemons itself.
set -euo pipefail

if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null \
    && command -v munged >/dev/null; then
    echo "install_slurm.sh: SLURM and munge already installed ($(slurmd -V))"
    exit 0
fi
if ! command -v apt-get >/dev/null; then
    echo "install_slurm.sh: ERROR: apt-get not found; install slurmctld, slurmd, slurm-client and munge" \
        "with this system's package manager" >&2
    exit 1
fi
sudo=""
if [[ "$(id -u)" != 0 ]]; then
    command -v sudo >/dev/null || { echo "install_slurm.sh: ERROR: needs root (or sudo)" >&2; exit 1; }
    sudo="sudo"
fi
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
if ! { $sudo apt-get update -qq && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    --no-install-recommends slurmctld slurmd slurm-client munge; } >"$log" 2>&1; then
    echo "install_slurm.sh: ERROR: apt-get failed:" >&2
    tail -n 30 "$log" >&2
    exit 1
fi
echo "install_slurm.sh: installed $(slurmd -V) and $(munged --version 2>&1 | head -n 1)"
