#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, for `make test-cluster` (docs/cluster.md).
#
#   scripts/cluster.sh start    install slurm-wlm + munge if missing (root + apt-get), write
#                               /etc/slurm/slurm.conf for this host, start munged, slurmctld and
#                               slurmd (no systemd), wait until sinfo shows the node idle
#   scripts/cluster.sh stop     stop the three daemons by their pid files
#   scripts/cluster.sh status   sinfo, or "not running" (exit 1)
#   scripts/cluster.sh conf     print the slurm.conf that `start` writes (changes nothing)
#
# Every command is idempotent: `start` on a running cluster only checks it, `stop` on a stopped
# one does nothing. Exit status 3 means "cannot run a cluster here" (not root, no apt-get, or a
# slurm.conf that this script did not write); the message says why, and callers skip.
# A site's real cluster needs none of this: point the profile at it (docs/cluster.md).
set -euo pipefail

MARKER="# written by weakloc scripts/cluster.sh"
CONF=/etc/slurm/slurm.conf
GRES_CONF=/etc/slurm/gres.conf
PARTITION=debug
# squeue-based status checks need finished jobs kept visible for at least 3x the first status
# check delay (the profile's slurm-init-seconds-before-status-checks; 40 s when unset).
MIN_JOB_AGE=300

say() { echo "cluster: $*" >&2; }
skip() { say "SKIP: $*"; exit 3; }

alive() {  # alive PIDFILE: the process named in PIDFILE runs
    [[ -s "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

have_slurm() { command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sinfo >/dev/null \
               && command -v munged >/dev/null; }

install_packages() {
    have_slurm && return 0
    [[ $(id -u) -eq 0 ]] || skip "slurm-wlm and munge are not installed and installing them needs root"
    command -v apt-get >/dev/null || skip "slurm-wlm and munge are not installed and there is no apt-get"
    say "installing slurm-wlm and munge with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -qq slurm-wlm munge >/dev/null 2>&1; then
        apt-get update -qq >/dev/null 2>&1 || true
        apt-get install -y -qq slurm-wlm munge >/dev/null 2>&1 || skip "apt-get install slurm-wlm munge failed"
    fi
    have_slurm || skip "slurm-wlm installed but slurmctld/slurmd/sinfo/munged are not on PATH"
}

gpu_count() {  # GPUs slurmd can hand out (NVIDIA device files), 0 without any
    local n=0
    for dev in /dev/nvidia[0-9]*; do [[ -e $dev ]] && n=$((n + 1)); done
    echo "$n"
}

node_line() {  # this host's NodeName line from `slurmd -C`, memory with a 15% margin
    local line mem
    line=$(slurmd -C | head -n 1)
    [[ $line == NodeName=* ]] || { say "slurmd -C printed no NodeName line: $line"; exit 1; }
    mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$line")
    line=$(sed "s/RealMemory=[0-9]*/RealMemory=$((mem * 85 / 100))/" <<<"$line")
    local gpus; gpus=$(gpu_count)
    [[ $gpus -gt 0 ]] && line="$line Gres=gpu:$gpus"
    echo "$line State=UNKNOWN"
}

write_conf() {  # the slurm.conf of CLUSTER.md for this host, on stdout
    local host; host=$(hostname)
    cat <<EOF
$MARKER; \`scripts/cluster.sh stop\` leaves it, \`start\` rewrites it
ClusterName=local
SlurmctldHost=$host
SlurmUser=slurm
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MinJobAge=$MIN_JOB_AGE
EOF
    [[ $(gpu_count) -gt 0 ]] && echo "GresTypes=gpu"
    echo "NodeName=$(node_line | sed 's/^NodeName=//')"
    echo "PartitionName=$PARTITION Nodes=$host Default=YES MaxTime=INFINITE State=UP"
}

node_state() { sinfo -h -N -p "$PARTITION" -o %t 2>/dev/null | head -n 1; }

start() {
    if [[ $(id -u) -ne 0 ]]; then  # someone else's cluster may already run here
        if command -v sinfo >/dev/null && [[ $(node_state) =~ ^(idle|mix|alloc) ]]; then
            say "already running"; sinfo; return 0
        fi
        skip "no SLURM cluster is running and starting one needs root"
    fi
    install_packages
    if [[ -f $CONF ]] && ! head -n 1 "$CONF" | grep -qF "$MARKER"; then
        skip "$CONF exists and was not written by this script; not touching a site's configuration"
    fi
    if alive /run/munge/munged.pid && alive /run/slurm/slurmctld.pid && alive /run/slurm/slurmd.pid; then
        say "already running"
    else
        mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /run/slurm /run/munge /var/log/munge \
                 /var/lib/munge /var/log/slurm /etc/munge
        chown slurm:slurm /var/spool/slurmctld /run/slurm /var/log/slurm
        chown munge:munge /run/munge /var/log/munge /var/lib/munge /etc/munge
        if [[ ! -s /etc/munge/munge.key ]]; then
            dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
            chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key
        fi
        write_conf >"$CONF.tmp" && mv "$CONF.tmp" "$CONF"
        if [[ $(gpu_count) -gt 0 ]]; then
            echo "$MARKER" >"$GRES_CONF"
            echo "Name=gpu File=/dev/nvidia[0-$(( $(gpu_count) - 1 ))]" >>"$GRES_CONF"
        fi
        alive /run/munge/munged.pid || runuser -u munge -- /usr/sbin/munged
        alive /run/slurm/slurmctld.pid || /usr/sbin/slurmctld
        for _ in $(seq 50); do scontrol ping 2>/dev/null | grep -q UP && break; sleep 0.2; done
        alive /run/slurm/slurmd.pid || /usr/sbin/slurmd
    fi
    local state=""
    for _ in $(seq 60); do
        state=$(node_state)
        [[ $state == idle* || $state == mix* || $state == alloc* ]] && { sinfo; return 0; }
        if [[ $state == down* || $state == drain* ]]; then
            scontrol update nodename="$(hostname)" state=resume 2>/dev/null || true
        fi
        sleep 0.5
    done
    say "the node did not become idle (state '${state:-none}'); see /var/log/slurm/slurmctld.log and slurmd.log"
    exit 1
}

stop_one() {  # stop_one PIDFILE NAME
    alive "$1" || return 0
    local pid; pid=$(cat "$1")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || { say "stopped $2"; return 0; }; sleep 0.2; done
    say "$2 (pid $pid) did not stop"
    return 1
}

stop() {
    stop_one /run/slurm/slurmd.pid slurmd
    stop_one /run/slurm/slurmctld.pid slurmctld
    stop_one /run/munge/munged.pid munged
}

status() {
    if command -v sinfo >/dev/null && alive /run/slurm/slurmctld.pid && sinfo >/dev/null 2>&1; then
        sinfo
    else
        say "not running"
        exit 1
    fi
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    conf) command -v slurmd >/dev/null || skip "slurmd is not installed"; write_conf ;;
    *) echo "usage: $0 start|stop|status|conf" >&2; exit 2 ;;
esac
