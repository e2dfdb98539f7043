#!/usr/bin/env bash
# A real single-node SLURM cluster (munged + slurmctld + slurmd) on this machine, for tests and CI.
#
#   tests/slurm/cluster.sh start    # write slurm.conf, start the daemons, wait until the node is idle
#   tests/slurm/cluster.sh status   # show the daemons and the node; exit 0 only when the node is usable
#   tests/slurm/cluster.sh stop     # stop the daemons this script started, by their pid files
#
# Why: the workflow's SLURM profile must be exercised against a real scheduler, not a mock; a local
# cluster starts in a few seconds, so CI (and the pytest fixture in tests/test_slurm.py) starts one
# every time and stops it afterwards.
#
# It installs nothing (.ci/install_slurm.sh does that) and needs root (it writes /etc/slurm/slurm.conf).
# Both `start` and `stop` are idempotent: running daemons are kept, stopped ones are not an error.
#
# Exit codes: 0 success; 1 a daemon failed to start / the node did not become idle;
#             2 usage error; 3 a prerequisite is missing (binary, root, munge key) - nothing was started.
#
# Settings (environment):
#   STNDT_SLURM_PARTITION   partition name (default: debug; the test profile uses debug)
#   STNDT_SLURM_MIN_JOB_AGE seconds finished jobs stay visible to squeue/scontrol (default: 7200, so a run
#                           slowed by a busy machine still sees its first jobs; the plugin needs >= 3x its init seconds)
#   STNDT_SLURM_WAIT        seconds to wait for the node to become idle (default: 60)
set -uo pipefail
# The daemons live in sbin, which a non-login shell may lack.
export PATH="$PATH:/usr/sbin:/sbin"

readonly CONF_DIR=/etc/slurm
readonly CONF="$CONF_DIR/slurm.conf"
readonly RUN_DIR=/run/slurm
readonly LOG_DIR=/var/log/slurm
readonly CTLD_PID="$RUN_DIR/slurmctld.pid"
readonly SLURMD_PID="$RUN_DIR/slurmd.pid"
readonly MUNGE_RUN=/run/munge
readonly MUNGE_PID="$MUNGE_RUN/munged.pid"
readonly MUNGE_KEY=/etc/munge/munge.key
# Marker: munged was started by this script, so `stop` may stop it (a munged we found running is left).
readonly MUNGE_MARK="$RUN_DIR/munged.started-by-cluster-sh"
readonly PARTITION="${STNDT_SLURM_PARTITION:-debug}"
readonly MIN_JOB_AGE="${STNDT_SLURM_MIN_JOB_AGE:-7200}"
readonly WAIT_S="${STNDT_SLURM_WAIT:-60}"

log() { echo "cluster.sh: $*"; }
err() { echo "cluster.sh: ERROR: $*" >&2; }

# pid_alive FILE: true when FILE names a running process.
pid_alive() {
    local f="$1" pid
    [[ -s "$f" ]] || return 1
    pid="$(tr -dc '0-9' <"$f")"
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null
}

check_prereqs() {
    local missing=() b
    for b in munged munge unmunge slurmctld slurmd sinfo scontrol sbatch squeue; do
        command -v "$b" >/dev/null 2>&1 || missing+=("$b")
    done
    if ((${#missing[@]})); then
        err "SLURM/munge binaries not found on PATH: ${missing[*]} (install them with .ci/install_slurm.sh)"
        exit 3
    fi
    if [[ "$(id -u)" != 0 ]]; then
        err "must run as root (writes $CONF and starts slurmd/slurmctld); running as uid $(id -u)"
        exit 3
    fi
    if ! id munge >/dev/null 2>&1; then
        err "user 'munge' does not exist (the munge package creates it; install with .ci/install_slurm.sh)"
        exit 3
    fi
}

start_munge() {
    if pid_alive "$MUNGE_PID"; then
        log "munged already running (pid $(cat "$MUNGE_PID"))"
    else
        if [[ ! -s "$MUNGE_KEY" ]]; then
            log "no $MUNGE_KEY, creating one"
            mungekey --create --keyfile="$MUNGE_KEY" || { err "could not create $MUNGE_KEY"; exit 3; }
            chown munge:munge "$MUNGE_KEY" && chmod 0400 "$MUNGE_KEY"
        fi
        install -d -o munge -g munge -m 0755 "$MUNGE_RUN"
        rm -f "$MUNGE_PID"
        if ! runuser -u munge -- munged --force; then
            err "munged failed to start (see /var/log/munge/munged.log)"
            exit 1
        fi
        touch "$MUNGE_MARK"
        log "munged started"
    fi
    local i
    for ((i = 0; i < 50; i++)); do
        munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    err "munge credentials do not round-trip (munge -n | unmunge fails)"
    exit 1
}

write_conf() {
    local node_line host
    # `slurmd -C` reports the node's real CPUs/memory; using it keeps the node from being drained for
    # "low RealMemory" and lets jobs use every core.
    node_line="$(slurmd -C | head -n 1)"
    if [[ "$node_line" != NodeName=* ]]; then
        err "unexpected 'slurmd -C' output: $node_line"
        exit 1
    fi
    host="$(hostname -s)"
    install -d -m 0755 "$CONF_DIR" "$RUN_DIR" "$LOG_DIR" /var/spool/slurmctld /var/spool/slurmd
    local tmp="$CONF.tmp.$$"
    cat >"$tmp" <<EOF
# Written by tests/slurm/cluster.sh - a single-node test cluster; overwritten on every start.
ClusterName=stndt-test
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
# No cgroups in containers: plain process tracking, no task affinity.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Without a per-CPU default a job without --mem takes the whole node and jobs run one at a time.
DefMemPerCPU=1000
# No slurmdbd: sacct does not work, so the snakemake plugin must use squeue (see the test profile).
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
# Finished jobs stay visible to squeue/scontrol this long (the plugin's squeue status check and the
# test's scontrol check depend on it).
MinJobAge=$MIN_JOB_AGE
ReturnToService=2
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
SlurmctldTimeout=30
SlurmdTimeout=60
$node_line State=UNKNOWN
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
    mv -f "$tmp" "$CONF"
    log "wrote $CONF (${node_line%% *}, partition $PARTITION)"
}

node_name() { sed -n 's/^NodeName=\([^ ]*\).*/\1/p' "$CONF" | head -n 1; }

node_state() { sinfo -h -N -n "$(node_name)" -o '%T' 2>/dev/null | head -n 1; }

wait_idle() {
    local t0=$SECONDS state=""
    while ((SECONDS - t0 < WAIT_S)); do
        state="$(node_state)"
        case "$state" in
            idle | mixed | allocated | completing) log "node $(node_name) is $state"; return 0 ;;
        esac
        sleep 0.5
    done
    err "node $(node_name) not idle after ${WAIT_S}s (state: '${state:-unknown}')"
    scontrol show node "$(node_name)" >&2 2>/dev/null || true
    tail -n 20 "$LOG_DIR/slurmctld.log" "$LOG_DIR/slurmd.log" >&2 2>/dev/null || true
    exit 1
}

cmd_start() {
    check_prereqs
    install -d -m 0755 "$RUN_DIR" "$LOG_DIR"
    start_munge
    if pid_alive "$CTLD_PID" && pid_alive "$SLURMD_PID" && [[ -s "$CONF" ]]; then
        log "slurmctld (pid $(cat "$CTLD_PID")) and slurmd (pid $(cat "$SLURMD_PID")) already running"
        wait_idle
        return 0
    fi
    # One daemon without the other: restart both on a fresh config, so they agree.
    stop_daemon slurmd "$SLURMD_PID"
    stop_daemon slurmctld "$CTLD_PID"
    write_conf
    # -i: ignore saved state (jobs of an earlier cluster), so every start is clean.
    if ! slurmctld -i; then
        err "slurmctld failed to start (see $LOG_DIR/slurmctld.log)"
        tail -n 20 "$LOG_DIR/slurmctld.log" >&2 2>/dev/null || true
        exit 1
    fi
    if ! slurmd; then
        err "slurmd failed to start (see $LOG_DIR/slurmd.log)"
        tail -n 20 "$LOG_DIR/slurmd.log" >&2 2>/dev/null || true
        exit 1
    fi
    wait_idle
}

# stop_daemon NAME PIDFILE: SIGTERM, wait up to 15 s, then SIGKILL. A missing/stale pid file is fine.
stop_daemon() {
    local name="$1" f="$2" pid i
    if ! pid_alive "$f"; then
        rm -f "$f"
        return 0
    fi
    pid="$(tr -dc '0-9' <"$f")"
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < 150; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "$name (pid $pid) ignored SIGTERM, sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null
        sleep 0.2
    fi
    rm -f "$f"
    log "stopped $name (pid $pid)"
}

cmd_stop() {
    # Each daemon takes ~2 s to exit; stop the two SLURM daemons together, munged (their auth) last.
    stop_daemon slurmd "$SLURMD_PID" &
    stop_daemon slurmctld "$CTLD_PID" &
    wait
    if [[ -e "$MUNGE_MARK" ]]; then
        stop_daemon munged "$MUNGE_PID"
        rm -f "$MUNGE_MARK"
    elif pid_alive "$MUNGE_PID"; then
        log "munged (pid $(cat "$MUNGE_PID")) was not started by this script; left running"
    fi
}

cmd_status() {
    local ok=0 name f
    for name in munged slurmctld slurmd; do
        case $name in
            munged) f="$MUNGE_PID" ;;
            slurmctld) f="$CTLD_PID" ;;
            slurmd) f="$SLURMD_PID" ;;
        esac
        if pid_alive "$f"; then
            echo "$name: running (pid $(cat "$f"))"
        else
            echo "$name: not running"
            ok=1
        fi
    done
    if ((ok == 0)) && [[ -s "$CONF" ]]; then
        local state
        state="$(node_state)"
        echo "node $(node_name): ${state:-unknown}"
        case "$state" in
            idle | mixed | allocated | completing) ;;
            *) ok=1 ;;
        esac
    fi
    return $ok
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    *)
        echo "usage: $0 start|stop|status" >&2
        exit 2
        ;;
esac
