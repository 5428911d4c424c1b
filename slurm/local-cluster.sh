#!/usr/bin/env bash
# A one-node Slurm cluster on this machine (munge + slurmctld + slurmd), for flywheel's tests and
# for trying `flywheel submit` on a laptop. Needs root and Debian's slurm-wlm packages
# (slurmctld slurmd slurm-client munge libpmix2); works without systemd.
#
#   slurm/local-cluster.sh start    # write config, start the daemons, wait until the node is idle
#   slurm/local-cluster.sh stop     # stop the daemons and any leftover job steps
#   slurm/local-cluster.sh status
#
# The node advertises FLYWHEEL_SLURM_CPUS CPUs (default 8, whatever the machine has) so a job with
# 1 coordinator + 3 workers fits on a 2-core machine.
set -euo pipefail

CPUS=${FLYWHEEL_SLURM_CPUS:-8}
CONF_DIR=/etc/slurm
STATE=/var/spool/slurmctld
SPOOL=/var/spool/slurmd
LOGS=/var/log/slurm
HOST=$(hostname -s)

need() { command -v "$1" >/dev/null 2>&1 || { echo "local-cluster: '$1' not found; install slurmctld slurmd slurm-client munge" >&2; exit 2; }; }

start_munge() {
  if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then return 0; fi
  pkill -x munged 2>/dev/null || true
  mkdir -p /etc/munge /run/munge /var/lib/munge /var/log/munge
  if [ ! -s /etc/munge/munge.key ]; then
    if command -v mungekey >/dev/null 2>&1; then mungekey --create --force >/dev/null 2>&1 || true; fi
    [ -s /etc/munge/munge.key ] || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  fi
  chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge
  chmod 0700 /etc/munge; chmod 0400 /etc/munge/munge.key
  rm -f /run/munge/munge.socket.2 /run/munge/munged.pid
  runuser -u munge -- /usr/sbin/munged
  for _ in $(seq 1 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "local-cluster: munged did not come up" >&2; exit 1
}

write_conf() {
  mkdir -p "$CONF_DIR" "$STATE" "$SPOOL" "$LOGS"
  local mem
  mem=$(awk '/MemTotal/ {print int($2/1024) - 512}' /proc/meminfo)
  cat > "$CONF_DIR/slurm.conf" <<CONF
ClusterName=flywheel-local
SlurmctldHost=${HOST}(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
MpiDefault=pmix
ReturnToService=2
MinJobAge=5
KillWait=10
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
StateSaveLocation=$STATE
SlurmdSpoolDir=$SPOOL
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
SlurmdParameters=config_overrides
NodeName=${HOST} NodeAddr=127.0.0.1 CPUs=${CPUS} RealMemory=${mem} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
CONF
}

stop() {
  pkill -x slurmd 2>/dev/null || true
  pkill -x slurmctld 2>/dev/null || true
  pkill -x slurmstepd 2>/dev/null || true
  for _ in $(seq 1 50); do pgrep -x slurmd >/dev/null || pgrep -x slurmctld >/dev/null || pgrep -x slurmstepd >/dev/null || break; sleep 0.1; done
  for p in slurmd slurmctld slurmstepd; do pkill -9 -x $p 2>/dev/null || true; done
}

start() {
  need slurmctld; need slurmd; need munged; need sinfo
  start_munge
  stop
  write_conf
  slurmctld -i || { tail -n 20 "$LOGS/slurmctld.log" >&2; exit 1; }
  slurmd || { tail -n 20 "$LOGS/slurmd.log" >&2; exit 1; }
  for _ in $(seq 1 120); do
    state=$(timeout 5 sinfo -h -o %T 2>/dev/null | head -n1 || true)
    case "$state" in
      idle|mixed|allocated) echo "local-cluster: node ${HOST} is ${state} (${CPUS} CPUs)"; return 0 ;;
      down*|drain*|*"*") timeout 5 scontrol update NodeName="$HOST" State=RESUME >/dev/null 2>&1 || true ;;
    esac
    sleep 0.5
  done
  echo "local-cluster: node did not become idle; see $LOGS" >&2
  tail -n 20 "$LOGS/slurmctld.log" "$LOGS/slurmd.log" >&2 || true
  exit 1
}

case "${1:-}" in
  start) start ;;
  stop) stop; echo "local-cluster: stopped" ;;
  status) timeout 5 sinfo ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
