#!/usr/bin/env bash
# A one-node SLURM cluster on localhost, with accounting, for tests/test_slurm.py.
#
#   .ci/slurm.sh start    install (Debian packages, if missing), configure, start the daemons
#   .ci/slurm.sh stop     cancel the test jobs and stop every daemon this script started
#   .ci/slurm.sh status   show the daemons, the node and the accounting association
#
# Needs root and Debian (apt-get); no systemd: the daemons are started directly. The node
# declares this machine's CPUs and memory (from `slurmd -C`) and 4 fake GPUs (gres entries whose
# device files are links to /dev/null), enough to schedule, allocate and account them. sacct needs
# accounting storage, which in Slurm 22.05 means slurmdbd + MariaDB, so both run too.
# Start and stop are idempotent. Settings (environment):
#   OVERSPEC_SLURM_STATE    state, spool and log directory   (default /var/lib/overspec-slurm)
#   OVERSPEC_SLURM_ACCOUNT  account the test jobs charge      (default overspec-ci)
#   OVERSPEC_SLURM_USERS    users added to that account       (default: the caller)
#   OVERSPEC_SLURM_GPUS     fake GPUs on the node             (default 4)
set -euo pipefail

STATE=${OVERSPEC_SLURM_STATE:-/var/lib/overspec-slurm}
ACCOUNT=${OVERSPEC_SLURM_ACCOUNT:-overspec-ci}
USERS=${OVERSPEC_SLURM_USERS:-$(id -un)}
GPUS=${OVERSPEC_SLURM_GPUS:-4}
CLUSTER=overspec
CONF_DIR=$(dirname "${SLURM_CONF:-/etc/slurm/slurm.conf}")
MARKER="# written by overspec .ci/slurm.sh"
PACKAGES=(munge slurmctld slurmd slurm-client slurmdbd mariadb-server)
MYSQL_SOCKET=/run/mysqld/mysqld.sock

log() { printf '[slurm.sh %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# True when the pid file names a live process.
running() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

# Wait up to $1 seconds for the command that follows to succeed.
wait_for() {
    local limit=$1; shift
    local t0=$SECONDS
    until "$@" >/dev/null 2>&1; do
        (( SECONDS - t0 >= limit )) && return 1
        sleep 0.5
    done
}

install_packages() {
    local missing=()
    for cmd in munged slurmctld slurmd sbatch sacct slurmdbd mariadbd; do
        command -v "$cmd" >/dev/null 2>&1 || [[ -x /usr/sbin/$cmd ]] || missing+=("$cmd")
    done
    ((${#missing[@]} == 0)) && return 0
    [[ $(id -u) == 0 ]] || die "missing ${missing[*]}; run this script as root to install ${PACKAGES[*]}"
    log "installing ${PACKAGES[*]} (missing: ${missing[*]})"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
}

write_configs() {
    mkdir -p "$CONF_DIR" "$STATE"/{ctld,d,log}
    if [[ -e $CONF_DIR/slurm.conf ]] && ! grep -qF "$MARKER" "$CONF_DIR/slurm.conf"; then
        die "$CONF_DIR/slurm.conf exists and was not written by this script; move it away or set SLURM_CONF"
    fi
    local host node_hw
    host=$(hostname -s)
    # `slurmd -C` prints the node line slurmd itself will accept: CPUs, sockets, cores, memory.
    node_hw=$(slurmd -C | head -1 | sed -E 's/^NodeName=[^ ]+ //')
    cat >"$CONF_DIR/slurm.conf" <<EOF
$MARKER: a one-node test cluster, not for production
ClusterName=$CLUSTER
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
# No cgroups in a container: track processes by parent pid, no task binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
# cons_tres is what accepts --gpus=N (cons_res only knows --gres).
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Without a default, a job with no --mem takes the whole node's memory and jobs run one by one.
DefMemPerCPU=1024
SchedulerType=sched/backfill
GresTypes=gpu
# sacct reads slurmdbd; gres/gpu in the TRES list makes ReqTRES/AllocTRES show GPUs.
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStorageTRES=gres/gpu
# Keep sbatch --comment in accounting: the Snakemake plugin writes the rule name there.
AccountingStoreFlags=job_comment
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
MinJobAge=300
KillWait=5
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=$host NodeAddr=127.0.0.1 $node_hw Gres=gpu:$GPUS State=UNKNOWN
PartitionName=cpu Nodes=$host Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$host MaxTime=INFINITE State=UP
EOF
    # slurmd 22.05 drops a gpu gres without File= ("Removing file-less GPU") and wants character
    # devices, so each fake GPU is a link to /dev/null. With task/none nothing opens or constrains
    # them, and Slurm sets CUDA_VISIBLE_DEVICES in GPU jobs as it does on real GPU nodes.
    mkdir -p "$STATE/fake-dev"
    local i
    for ((i = 0; i < GPUS; i++)); do ln -sfn /dev/null "$STATE/fake-dev/nvidia$i"; done
    cat >"$CONF_DIR/gres.conf" <<EOF
$MARKER
NodeName=$host Name=gpu File=$STATE/fake-dev/nvidia[0-$((GPUS - 1))]
EOF
    if [[ ! -s $STATE/dbpass ]]; then
        (umask 077; head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$STATE/dbpass")
    fi
    (umask 077; cat >"$CONF_DIR/slurmdbd.conf" <<EOF
$MARKER
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=root
PidFile=$STATE/slurmdbd.pid
LogFile=$STATE/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=$(cat "$STATE/dbpass")
StorageLoc=slurm_acct_db
EOF
    )
    chmod 600 "$CONF_DIR/slurmdbd.conf"
}

start_munge() {
    if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then return 0; fi
    [[ -s /etc/munge/munge.key ]] || (umask 077; mungekey --create --force && chown munge:munge /etc/munge/munge.key)
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    runuser -u munge -- /usr/sbin/munged
    wait_for 10 sh -c 'munge -n | unmunge' || die "munged did not start (see /var/log/munge/munged.log)"
    echo started >"$STATE/munged.ours"
}

start_mariadb() {
    if mariadb-admin --socket=$MYSQL_SOCKET ping >/dev/null 2>&1; then return 0; fi
    mkdir -p /run/mysqld "$STATE/mysql" && chown mysql:mysql /run/mysqld "$STATE/mysql"
    if [[ ! -d /var/lib/mysql/mysql ]]; then
        mariadb-install-db --user=mysql --datadir=/var/lib/mysql --skip-test-db >/dev/null
    fi
    # No TCP listener: slurmdbd reaches it through the default socket.
    setsid mariadbd --user=mysql --datadir=/var/lib/mysql --socket=$MYSQL_SOCKET --skip-networking \
        --pid-file="$STATE/mysql/mariadb.pid" --log-error="$STATE/mysql/mariadb.log" </dev/null >/dev/null 2>&1 &
    wait_for 60 mariadb-admin --socket=$MYSQL_SOCKET ping || die "MariaDB did not start (see $STATE/mysql/mariadb.log)"
    mariadb --socket=$MYSQL_SOCKET -u root <<EOF
CREATE USER IF NOT EXISTS 'slurm'@'localhost';
ALTER USER 'slurm'@'localhost' IDENTIFIED BY '$(cat "$STATE/dbpass")';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
EOF
}

start_slurmdbd() {
    running "$STATE/slurmdbd.pid" || slurmdbd
    wait_for 60 sacctmgr -n list cluster || die "slurmdbd did not answer (see $STATE/log/slurmdbd.log)"
    # The cluster, the account and its users must exist before slurmctld registers and jobs charge.
    sacctmgr -nP list cluster format=cluster | grep -qx "$CLUSTER" || sacctmgr -i add cluster "$CLUSTER" >/dev/null
    sacctmgr -nP list account format=account | grep -qx "$ACCOUNT" \
        || sacctmgr -i add account "$ACCOUNT" cluster="$CLUSTER" description="overspec CI" organization=overspec >/dev/null
    for user in $USERS; do
        sacctmgr -nP list assoc user="$user" account="$ACCOUNT" format=user | grep -qx "$user" \
            || sacctmgr -i add user "$user" account="$ACCOUNT" cluster="$CLUSTER" >/dev/null
    done
}

node_state() { sinfo -h -N -n "$(hostname -s)" -o %T 2>/dev/null | head -1; }

start_slurm() {
    running "$STATE/slurmctld.pid" || slurmctld
    wait_for 30 scontrol ping || die "slurmctld did not start (see $STATE/log/slurmctld.log)"
    running "$STATE/slurmd.pid" || slurmd
    wait_for 30 sh -c "sinfo -h -N -o %T | grep -Eq '^(idle|mixed|allocated)'" || {
        log "node state: $(node_state); reason: $(sinfo -h -N -o %E)"
        scontrol update nodename="$(hostname -s)" state=resume 2>/dev/null || true
        wait_for 15 sh -c "sinfo -h -N -o %T | grep -Eq '^(idle|mixed|allocated)'" \
            || die "node did not become idle (see $STATE/log/slurmd.log)"
    }
}

start() {
    local t0=$SECONDS
    install_packages
    local t_install=$((SECONDS - t0))
    write_configs
    start_munge
    start_mariadb
    start_slurmdbd
    start_slurm
    log "SLURM ready: install ${t_install}s, configure+start $((SECONDS - t0 - t_install))s; node $(hostname -s): $(node_state)"
}

# Stop one daemon by its pid file, waiting for it to exit.
stop_pidfile() {
    local name=$1 pidfile=$2
    running "$pidfile" || return 0
    local pid; pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    if kill -0 "$pid" 2>/dev/null; then
        log "$name ($pid) ignored SIGTERM; killing it"
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
}

stop() {
    if running "$STATE/slurmctld.pid"; then
        for user in $USERS; do scancel --user="$user" 2>/dev/null || true; done
        sleep 1
    fi
    stop_pidfile slurmd "$STATE/slurmd.pid"
    stop_pidfile slurmctld "$STATE/slurmctld.pid"
    stop_pidfile slurmdbd "$STATE/slurmdbd.pid"
    stop_pidfile mariadb "$STATE/mysql/mariadb.pid"
    if [[ -e $STATE/munged.ours ]]; then
        stop_pidfile munged /run/munge/munged.pid
        rm -f "$STATE/munged.ours"
    fi
    log "SLURM stopped"
}

status() {
    for pidfile in slurmctld slurmd slurmdbd mysql/mariadb; do
        local f=$STATE/$pidfile.pid
        if running "$f"; then echo "${pidfile#*/}: running ($(cat "$f"))"; else echo "${pidfile#*/}: stopped"; fi
    done
    sinfo -N -o '%N %T %c %m %G %P' 2>/dev/null || true
    sacctmgr -nP list assoc format=cluster,account,user 2>/dev/null || true
}

case ${1:-} in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
