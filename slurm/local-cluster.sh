#!/usr/bin/env bash
# A one-node Slurm cluster on this machine (munge + slurmctld + slurmd), for flywheel's tests and
# for trying `flywheel submit` on a laptop. Needs root and Debian's slurm-wlm packages
# (slurmctld slurmd slurm-client munge libpmix2); works without systemd.
#
#   slurm/local-cluster.sh start    # write config, start the daemons, wait until the node is idle
#   slurm/local-cluster.sh stop     # stop the daemons and any leftover job steps
#   slurm/local-cluster.sh status
#
# With --nodes N (and --gpus-per-node G) the same commands run a multi-node cluster with fake
# GPUs instead, alongside this one (slurm/local-multi-cluster.sh; it prints its SLURM_CONF):
#   slurm/local-cluster.sh start --nodes 4 --gpus-per-node 2
#   slurm/local-cluster.sh stop --nodes 4
#
# The node advertises FLYWHEEL_SLURM_CPUS CPUs (default 8, whatever the machine has) so a job with
# 4 worker tasks (the first also coordinates) fit on a 2-core machine.
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
  {
    cat <<CONF
ClusterName=flywheel-local
SlurmctldHost=${HOST}(127.0.0.1)
ReturnToService=2
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
StateSaveLocation=$STATE
SlurmdSpoolDir=$SPOOL
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
NodeName=${HOST} NodeAddr=127.0.0.1 CPUs=${CPUS} RealMemory=${mem} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
CONF
    cat "$(dirname "$0")/local-common.conf"
  } > "$CONF_DIR/slurm.conf"
}

# This cluster's daemons and job steps: processes of these names in this machine's own network
# namespace, except the multi-node cluster's slurmctld (started with its own -f config), so
# stopping this cluster leaves that one running.
own_pids() {
  local here p
  here=$(readlink /proc/self/ns/net)
  for p in $(pgrep -x "$1" || true); do
    [ "$(readlink "/proc/$p/ns/net" 2>/dev/null)" = "$here" ] || continue
    # (its slurmscriptd child renames itself: look at the parent too)
    local parent
    parent=$(awk '/^PPid:/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
    cat "/proc/$p/cmdline" "/proc/$parent/cmdline" 2>/dev/null | tr '\0' ' ' | grep -q -- '-f /etc/slurm-' && continue
    echo "$p"
  done
}

stop() {
  local n p
  for n in slurmd slurmctld slurmstepd; do for p in $(own_pids $n); do kill "$p" 2>/dev/null || true; done; done
  for _ in $(seq 1 50); do [ -n "$(own_pids slurmd)$(own_pids slurmctld)$(own_pids slurmstepd)" ] || break; sleep 0.1; done
  for n in slurmd slurmctld slurmstepd; do for p in $(own_pids $n); do kill -9 "$p" 2>/dev/null || true; done; done
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

# --nodes/--gpus-per-node: the multi-node cluster.
case " $* " in
  *" --nodes "*|*" --gpus-per-node "*) exec "$(dirname "$0")/local-multi-cluster.sh" "$@" ;;
esac

case "${1:-}" in
  start) start ;;
  stop) stop; echo "local-cluster: stopped" ;;
  status) timeout 5 sinfo ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
