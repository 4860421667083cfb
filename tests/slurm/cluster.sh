#!/usr/bin/env bash
# A throw-away single-node SLURM cluster on loopback, for testing profiles/slurm.
#
#   tests/slurm/cluster.sh install              # apt: slurmctld slurmd slurm-client munge (root)
#   tests/slurm/cluster.sh start DIR [--gpus N] [--cpus N] [--mem-mb N]
#   tests/slurm/cluster.sh stop DIR
#   tests/slurm/cluster.sh status DIR
#
# `start` writes everything under DIR (slurm.conf, gres.conf, cgroup.conf, a munge key, state,
# logs, pid files), starts munged + slurmctld + slurmd as the current user (root: slurmd must
# switch to the job's user) on free loopback ports, waits until the node is idle, and writes
# DIR/env (SLURM_CONF=DIR/slurm.conf, DIR/bin first on PATH): source it, then sbatch/squeue/sinfo
# talk to this cluster, and so does srun inside its jobs (DIR/bin/srun). Nothing outside DIR is touched; the system's /etc/munge and /etc/slurm are not read.
#
# The node looks like a GPU node (defaults: 32 CPUs, 128000 MB, 1 GPU) whatever the
# machine has (SlurmdParameters=config_overrides; no cgroups, so nothing is enforced): jobs run,
# and `sbatch --test-only` tells whether a request fits such a node. The GPUs are fake (gres
# backed by files under DIR/dev): they make `--gpus=N` requests schedulable, nothing more.
# `--gpus 0` gives a CPU-only cluster (no GresTypes): any `--gpus` request is refused there.
# No slurmdbd: accounting is off, so `sacct` fails and job status comes from `squeue` (jobs stay
# there MinJobAge=300 s after they end); DIR/log/jobcomp.txt keeps one line per finished job.
#
# `stop` cancels every job, ends the daemons whose pid files are under DIR (checking that each
# pid's command line names DIR; TERM, then KILL after 10 s), then kills what is left of this
# cluster only: processes carrying WSIRISK_SLURM_CLUSTER=DIR in their environment (set for the
# daemons, inherited by slurmstepd) and their descendants. `start` stops what it started when it
# fails.
set -euo pipefail

die() {
    echo "cluster.sh: $*" >&2
    exit 1
}

usage() {
    sed -n '2,8p' "$0" >&2
    exit 2
}

install_packages() {
    # Debian/Ubuntu only; exits non-zero (without side effects) where apt or root is missing.
    [[ $(id -u) == 0 ]] || die "install needs root"
    command -v apt-get > /dev/null || die "install needs apt-get"
    export DEBIAN_FRONTEND=noninteractive
    timeout 120 apt-get update -qq || die "apt-get update failed"
    timeout 300 apt-get install -y -qq --no-install-recommends \
        slurmctld slurmd slurm-client munge > /dev/null || die "apt-get install failed"
    # Debian's packages may start their own daemons (systemd); this script uses its own.
}

# pid file -> pid, only when that process is alive and its command line names DIR.
our_pid() {
    local pidfile=$1 dir=$2 pid
    [[ -s $pidfile ]] || return 1
    pid=$(< "$pidfile")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [[ -r /proc/$pid/cmdline ]] || return 1
    tr '\0' ' ' < "/proc/$pid/cmdline" | grep -qF -- "$dir" || return 1
    echo "$pid"
}

# Processes started under this cluster's daemons (slurmstepd inherits the marker from slurmd)
# and all their descendants.
cluster_procs() {
    local dir=$1 p roots=() all=() pid ppid
    for p in /proc/[0-9]*; do
        grep -qzx -- "WSIRISK_SLURM_CLUSTER=$dir" "$p/environ" 2> /dev/null && roots+=("${p#/proc/}")
    done
    ((${#roots[@]})) || return 0
    all=("${roots[@]}")
    local table
    table=$(ps -eo pid=,ppid=)
    local grew=1
    while ((grew)); do
        grew=0
        while read -r pid ppid; do
            [[ " ${all[*]} " == *" $ppid "* && " ${all[*]} " != *" $pid "* ]] || continue
            all+=("$pid")
            grew=1
        done <<< "$table"
    done
    echo "${all[@]}"
}

stop_cluster() {
    local dir=$1 pidfile pid pids=() i
    [[ -d $dir ]] || return 0
    # 1. cancel every job (their processes belong to slurmstepd, which outlives slurmd)
    if our_pid "$dir/run/slurmctld.pid" "$dir" > /dev/null; then
        local jobs
        jobs=$(SLURM_CONF=$dir/slurm.conf timeout 10 squeue -h -o %i 2> /dev/null || true)
        if [[ -n $jobs ]]; then
            # shellcheck disable=SC2086
            SLURM_CONF=$dir/slurm.conf timeout 10 scancel $jobs 2> /dev/null || true
            for ((i = 0; i < 100; i++)); do
                jobs=$(SLURM_CONF=$dir/slurm.conf timeout 10 squeue -h -t PD,R,CG,S -o %i 2> /dev/null || true)
                [[ -z $jobs ]] && break
                sleep 0.2
            done
        fi
    fi
    # 2. the daemons, from their pid files
    for pidfile in "$dir/run/slurmd.pid" "$dir/run/slurmctld.pid" "$dir/run/munged.pid"; do
        if pid=$(our_pid "$pidfile" "$dir"); then
            kill -TERM "$pid" 2> /dev/null || true
            pids+=("$pid")
        fi
    done
    for ((i = 0; i < 100 && ${#pids[@]}; i++)); do
        local alive=()
        for pid in "${pids[@]}"; do
            kill -0 "$pid" 2> /dev/null && alive+=("$pid")
        done
        pids=("${alive[@]}")
        ((${#pids[@]})) && sleep 0.1
    done
    # 3. whatever is left: daemons that ignored TERM, step daemons and their job processes
    # shellcheck disable=SC2207
    pids+=($(cluster_procs "$dir"))
    for pid in "${pids[@]}"; do
        echo "cluster.sh: killing leftover pid $pid ($(tr '\0' ' ' < /proc/$pid/cmdline 2> /dev/null | cut -c1-80))" >&2
        kill -KILL "$pid" 2> /dev/null || true
    done
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

show_logs() {
    local dir=$1 f
    for f in "$dir"/log/*.log; do
        [[ -f $f ]] || continue
        echo "----- $f (last 30 lines)" >&2
        tail -n 30 "$f" >&2
    done
}

start_cluster() {
    local dir=$1
    shift
    local gpus=1 cpus=32 mem_mb=128000
    while (($#)); do
        case $1 in
            --gpus) gpus=$2; shift 2 ;;
            --cpus) cpus=$2; shift 2 ;;
            --mem-mb) mem_mb=$2; shift 2 ;;
            *) usage ;;
        esac
    done
    [[ $gpus =~ ^[0-9]+$ && $cpus =~ ^[0-9]+$ && $mem_mb =~ ^[0-9]+$ ]] || usage
    for tool in munged slurmctld slurmd sbatch squeue sinfo scontrol; do
        command -v "$tool" > /dev/null || die "$tool not found (tests/slurm/cluster.sh install)"
    done
    [[ $(id -u) == 0 ]] || die "start needs root (slurmd switches to the job's user)"
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    [[ -e $dir/run/slurmctld.pid ]] && our_pid "$dir/run/slurmctld.pid" "$dir" > /dev/null &&
        die "a cluster is already running in $dir"
    mkdir -p "$dir"/{bin,munge,state/ctld,state/d,run,log,dev}
    chmod 700 "$dir/munge"
    local user node=wsirisk-node1 ctld_port slurmd_port
    user=$(id -un)
    ctld_port=$(free_port)
    slurmd_port=$(free_port)
    [[ $ctld_port != "$slurmd_port" ]] || slurmd_port=$(free_port)

    # munge: own key, socket, pid, log and seed under DIR
    head -c 1024 /dev/urandom > "$dir/munge/munge.key"
    chmod 400 "$dir/munge/munge.key"
    local gres_node="" gres_types=""
    if ((gpus > 0)); then
        gres_types="GresTypes=gpu"
        gres_node=" Gres=gpu:$gpus"
        local files=() i
        for ((i = 0; i < gpus; i++)); do
            : > "$dir/dev/gpu$i"
            files+=("$dir/dev/gpu$i")
        done
        (IFS=,; echo "Name=gpu File=${files[*]}") > "$dir/gres.conf"
    else
        : > "$dir/gres.conf"
    fi
    cat > "$dir/cgroup.conf" << EOF
# no cgroup plugin is used (proctrack/linuxproc, task/none); present so no default is read
CgroupAutomount=no
EOF
    cat > "$dir/slurm.conf" << EOF
# written by tests/slurm/cluster.sh: one node on loopback, no accounting
ClusterName=wsirisktest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=$user
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket
StateSaveLocation=$dir/state/ctld
SlurmdSpoolDir=$dir/state/d
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/log/jobcomp.txt
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmdParameters=config_overrides
ReturnToService=2
MinJobAge=300
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
$gres_types
NodeName=$node NodeAddr=127.0.0.1 NodeHostname=localhost CPUs=$cpus RealMemory=$mem_mb$gres_node State=UNKNOWN
PartitionName=main Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
    # snakemake-executor-plugin-slurm-jobstep (0.6.1) removes SLURM_CONF from the environment of
    # the srun it starts inside a job; on a real cluster that srun reads /etc/slurm/slurm.conf.
    # This cluster's config is not there, so put an srun in front that sets it again.
    local srun
    srun=$(command -v srun)
    cat > "$dir/bin/srun" << EOF
#!/bin/sh
SLURM_CONF=$dir/slurm.conf exec $srun "\$@"
EOF
    chmod 755 "$dir/bin/srun"
    cat > "$dir/env" << EOF
export SLURM_CONF=$dir/slurm.conf
export PATH=$dir/bin:\$PATH
EOF
    export SLURM_CONF=$dir/slurm.conf

    trap 'show_logs "$dir"; stop_cluster "$dir"' ERR
    # the marker lets `stop` find step daemons and job processes that outlive slurmd
    local mark=WSIRISK_SLURM_CLUSTER=$dir
    env "$mark" munged --force --socket="$dir/munge/munge.socket" --key-file="$dir/munge/munge.key" \
        --pid-file="$dir/run/munged.pid" --log-file="$dir/log/munged.log" \
        --seed-file="$dir/munge/munged.seed"
    env "$mark" timeout 60 slurmctld -c -i -f "$dir/slurm.conf"
    env "$mark" timeout 60 slurmd -c -f "$dir/slurm.conf" -N "$node"

    local state="" i
    for ((i = 0; i < 600; i++)); do
        state=$(timeout 10 sinfo -h -N -n "$node" -o %T 2> /dev/null || true)
        [[ $state == idle ]] && break
        sleep 0.1
    done
    if [[ $state != idle ]]; then
        show_logs "$dir"
        stop_cluster "$dir"
        die "node $node not idle after 60 s (state: '${state:-none}')"
    fi
    trap - ERR
    echo "cluster.sh: up in $dir (node $node: $cpus CPUs, $mem_mb MB, $gpus GPU(s); ports $ctld_port/$slurmd_port)"
}

(($# >= 1)) || usage
case $1 in
    install) install_packages ;;
    start) (($# >= 2)) || usage; start_cluster "${@:2}" ;;
    stop) (($# == 2)) || usage; stop_cluster "$(cd "$2" 2> /dev/null && pwd || echo "$2")" ;;
    status)
        (($# == 2)) || usage
        SLURM_CONF=$2/slurm.conf timeout 10 sinfo -N -o "%N %T %c %m %G"
        ;;
    *) usage ;;
esac
