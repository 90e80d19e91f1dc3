#!/usr/bin/env bash
# A single-node SLURM for the cluster tests: `slurm.sh up | down | status | env`.
#
# Runs as root on Debian without systemd: munged (own key and socket), MariaDB + slurmdbd (the
# accounting that `sacct`, hence submitit, reads job states from), slurmctld and slurmd, every
# file under $DEPTHBENCH_SLURM_DIR (default /tmp/depthbench-slurm), every daemon stopped by its
# PID. `up` installs the Debian packages when missing and is idempotent (a running cluster is
# kept); `down` stops what `up` started. Clients find the cluster through $SLURM_CONF:
#   eval "$(tests/cluster/slurm.sh env)"
# A real cluster needs none of this: it has its own daemons and accounting.
set -euo pipefail

D=${DEPTHBENCH_SLURM_DIR:-/tmp/depthbench-slurm}
DB_PORT=${DEPTHBENCH_SLURM_DB_PORT:-3316}
DBD_PORT=${DEPTHBENCH_SLURMDBD_PORT:-6829}
CTLD_PORT=${DEPTHBENCH_SLURMCTLD_PORT:-6827}
SLURMD_PORT=${DEPTHBENCH_SLURMD_PORT:-6828}
PACKAGES="slurmctld slurmd slurm-client slurmdbd munge mariadb-server"
export SLURM_CONF=$D/etc/slurm.conf

say() { echo "slurm.sh: $*" >&2; }

alive() {  # a PID file's process runs (a dead daemon may stay a zombie until PID 1 reaps it)
  local pid
  pid=$(cat "$1" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ -r "/proc/$pid/status" ] || return 1
  ! grep -q '^State:.*[ZX]' "/proc/$pid/status"
}

wait_for() {  # wait_for SECONDS WHAT COMMAND...
  local n=$(( $1 * 5 )) what=$2
  shift 2
  until "$@" >/dev/null 2>&1; do
    n=$((n - 1))
    if [ "$n" -le 0 ]; then say "timed out waiting for $what; logs in $D/log"; exit 1; fi
    sleep 0.2
  done
}

install_packages() {
  local missing=""
  for p in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
  done
  [ -z "$missing" ] && return 0
  say "installing Debian packages:$missing"
  export DEBIAN_FRONTEND=noninteractive
  # policy-rc.d keeps the packages from starting their own daemons
  apt-get update -qq >/dev/null
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
}

write_config() {
  mkdir -p "$D"/{etc,log,run,munge,state,spool,mysql}
  chmod 0755 "$D" "$D/munge"  # munged's socket folder must be readable by every client
  [ -s "$D/etc/munge.key" ] || { dd if=/dev/urandom of="$D/etc/munge.key" bs=1024 count=1 \
    2>/dev/null; chmod 0400 "$D/etc/munge.key"; }
  local node
  node=$(slurmd -C | head -1)
  cat >"$D/etc/slurm.conf" <<EOF
ClusterName=depthbench
SlurmctldHost=$(hostname -s)(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$D/munge/munge.socket.2,cred_expire=10
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool
SlurmctldPidFile=$D/run/slurmctld.pid
SlurmdPidFile=$D/run/slurmd.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_interval=2
KillWait=5
MinJobAge=300
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$DBD_PORT
AccountingStoragePass=$D/munge/munge.socket.2
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  cat >"$D/etc/slurmdbd.conf" <<EOF
AuthType=auth/munge
AuthInfo=socket=$D/munge/munge.socket.2
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=root
PidFile=$D/run/slurmdbd.pid
LogFile=$D/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
EOF
  chmod 0600 "$D/etc/slurmdbd.conf"
}

start_munge() {
  alive "$D/run/munged.pid" && return 0
  munged --force --socket="$D/munge/munge.socket.2" --key-file="$D/etc/munge.key" \
    --pid-file="$D/run/munged.pid" --log-file="$D/log/munged.log" --seed-file="$D/run/munge.seed"
  wait_for 10 munged test -S "$D/munge/munge.socket.2"
}

start_mariadb() {
  alive "$D/run/mariadb.pid" && return 0
  if [ ! -d "$D/mysql/mysql" ]; then
    mariadb-install-db --user=root --datadir="$D/mysql" --auth-root-authentication-method=socket \
      --skip-test-db >"$D/log/mariadb-install.log" 2>&1
  fi
  mariadbd --user=root --datadir="$D/mysql" --socket="$D/run/mysql.sock" --port="$DB_PORT" \
    --bind-address=127.0.0.1 --pid-file="$D/run/mariadb.pid" --log-error="$D/log/mariadb.log" \
    --skip-name-resolve --innodb-buffer-pool-size=32M --performance-schema=OFF \
    >/dev/null 2>&1 &
  wait_for 60 MariaDB mariadb --socket="$D/run/mysql.sock" -e "select 1"
  mariadb --socket="$D/run/mysql.sock" -e "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' \
    IDENTIFIED BY 'slurm'; GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"
}

start_slurm() {
  if ! alive "$D/run/slurmdbd.pid"; then
    slurmdbd  # reads slurmdbd.conf beside $SLURM_CONF
    wait_for 60 slurmdbd sacctmgr -i show cluster
  fi
  sacctmgr -i show cluster format=cluster -n | grep -q depthbench \
    || sacctmgr -i add cluster depthbench >/dev/null
  alive "$D/run/slurmctld.pid" || slurmctld -f "$SLURM_CONF"
  alive "$D/run/slurmd.pid" || slurmd -f "$SLURM_CONF"
  # a node drained by an earlier cluster (its saved state says "Kill task failed" when a job step
  # was still ending as that cluster went down) takes no jobs until resumed
  wait_for 30 "the node to register" sh -c "sinfo -h -o %t | grep -qvE '^(unk|unknown)'"
  if sinfo -h -o %t | grep -qE '^(drain|drng|drained|down)'; then
    say "resuming the node ($(sinfo -h -R -o %E | head -1))"
    scontrol update NodeName=ALL State=RESUME
  fi
  wait_for 60 "the node to be idle" sh -c "sinfo -h -o %t | grep -qx idle"
}

cancel_jobs() {  # cancel every job and give the steps time to end before the daemons go
  alive "$D/run/slurmctld.pid" || return 0
  scancel --full --user="$(id -un)" 2>/dev/null || true
  for _ in $(seq 100); do
    [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break
    sleep 0.2
  done
}

stop() {  # stop NAME: SIGTERM, wait up to 10 s, then SIGKILL
  local f=$D/run/$1.pid pid
  alive "$f" || { rm -f "$f"; return 0; }
  pid=$(cat "$f")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 50); do alive "$f" || break; sleep 0.2; done
  alive "$f" && kill -9 "$pid" 2>/dev/null || true
  rm -f "$f"
}

case "${1:-}" in
  up)
    install_packages
    write_config
    start_munge
    start_mariadb
    start_slurm
    say "up: $(sinfo -h -o '%P %D node(s) %c CPUs %t') (SLURM_CONF=$SLURM_CONF)"
    ;;
  down)
    cancel_jobs
    for d in slurmd slurmctld slurmdbd mariadb munged; do stop "$d"; done
    say "down"
    ;;
  status)
    for d in munged mariadb slurmdbd slurmctld slurmd; do
      if alive "$D/run/$d.pid"; then echo "$d running"; else echo "$d stopped"; fi
    done
    ;;
  env)
    echo "export SLURM_CONF=$SLURM_CONF"
    ;;
  conf)
    echo "$SLURM_CONF"
    ;;
  *)
    echo "usage: $0 up|down|status|env|conf" >&2
    exit 2
    ;;
esac
