#!/usr/bin/env bash
# A multi-node Slurm cluster with fake GPUs on this machine, for flywheel's tests: N slurmd nodes,
# each in its own network namespace on a bridge this script creates, all sharing this machine's
# filesystem (as cluster nodes share NFS/Lustre), each declaring Gres=gpu:G backed by device
# nodes made with mknod, so Slurm itself allocates and binds GPUs. Its GPUs answer NVML through
# the fake libnvidia-ml.so.1 of slurm/fake-nvml (test support, never shipped; docs/testing.md).
#
# It runs alongside the one-node cluster of local-cluster.sh and shares nothing with it but
# munge: its own config (select it with SLURM_CONF=/etc/slurm-flywheel-multi/slurm.conf), cluster
# name, slurmctld port, state, pid and log files. Use it through local-cluster.sh:
#
#   slurm/local-cluster.sh start --nodes 4 --gpus-per-node 2
#   slurm/local-cluster.sh stop --nodes 4      # removes everything start created
#   slurm/local-cluster.sh status --nodes 4
#   slurm/local-multi-cluster.sh lose-node 3     # node3 crashes: every process in it killed
#   slurm/local-multi-cluster.sh restore-node 3  # its slurmd again, back in service
#
# Environment: FAKE_NVML_STATE (default /var/tmp/flywheel-fake-nvml), FLYWHEEL_FAKE_NVML_LIB (the
# built libflywheel_fake_nvml.so; default: built here with cargo), FLYWHEEL_SLURM_CPUS (CPUs a
# node advertises, default 4).
set -euo pipefail

NAME=flywheel-multi
CONF_DIR=/etc/slurm-$NAME
CONF=$CONF_DIR/slurm.conf
STATE=/var/spool/slurmctld-$NAME
SPOOL_PREFIX=/var/spool/slurmd-$NAME
TMP_PREFIX=/var/tmp/slurm-$NAME-tmp
LOGS=/var/log/slurm-$NAME
RUN_STATE=/run/$NAME.state
CTLD_PID=/run/slurmctld-$NAME.pid
CTLD_PORT=6827
BRIDGE=fwmulti0
NET=10.213.7
NVML_LIB_DIR=/var/lib/flywheel-fake-nvml
NVML_STATE=${FAKE_NVML_STATE:-/var/tmp/flywheel-fake-nvml}
CPUS=${FLYWHEEL_SLURM_CPUS:-4}
HOST=$(hostname -s)
HOSTS_MARK="# $NAME"
REPO=$(cd "$(dirname "$0")/.." && pwd)

say() { echo "local-cluster: $*"; }
die() { echo "local-cluster: $*" >&2; exit 1; }

# The fake NVML library: given, or built from this checkout.
fake_nvml_lib() {
  local lib=${FLYWHEEL_FAKE_NVML_LIB:-}
  if [ -z "$lib" ]; then
    command -v cargo >/dev/null 2>&1 || die "cargo not found: build slurm/fake-nvml or set FLYWHEEL_FAKE_NVML_LIB"
    (cd "$REPO" && cargo build -q -p flywheel-fake-nvml) >&2 || die "building slurm/fake-nvml failed"
    lib=${CARGO_TARGET_DIR:-$REPO/target}/debug/libflywheel_fake_nvml.so
  fi
  [ -f "$lib" ] || die "fake NVML library $lib not found"
  echo "$lib"
}

write_conf() {
  local nodes=$1 gpus=$2 mem
  mem=$(awk '/MemTotal/ {print int($2/1024/8)}' /proc/meminfo)
  mkdir -p "$CONF_DIR" "$STATE" "$LOGS"
  {
    cat <<CONF
# Written by slurm/local-multi-cluster.sh: $nodes nodes x $gpus fake GPUs, one network namespace each.
ClusterName=$NAME
SlurmctldHost=${HOST}(${NET}.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=6818
GresTypes=gpu
ReturnToService=1
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=/run/slurmd-$NAME-%n.pid
StateSaveLocation=$STATE
SlurmdSpoolDir=$SPOOL_PREFIX-%n
TmpFS=$TMP_PREFIX-%n
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd-%n.log
TaskProlog=$CONF_DIR/task-prolog.sh
NodeName=DEFAULT CPUs=$CPUS RealMemory=$mem Gres=gpu:$gpus State=UNKNOWN
CONF
    cat "$(dirname "$0")/local-common.conf"
  } > "$CONF"
  for k in $(seq 1 "$nodes"); do echo "NodeName=node$k NodeAddr=${NET}.$((10 + k))" >> "$CONF"; done
  echo "PartitionName=gpu Nodes=node[1-$nodes] Default=YES MaxTime=INFINITE State=UP" >> "$CONF"
  echo "NodeName=node[1-$nodes] Name=gpu File=/dev/nvidia[0-$((gpus - 1))]" > "$CONF_DIR/gres.conf"
  # Every task of this cluster loads the fake NVML and finds its GPUs' state; nothing outside
  # this cluster's tasks has this directory on its library path.
  cat > "$CONF_DIR/task-prolog.sh" <<PROLOG
#!/bin/sh
echo "export LD_LIBRARY_PATH=$NVML_LIB_DIR\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
echo "export FAKE_NVML_STATE=$NVML_STATE"
# Open MPI over what these nodes have: shared memory inside a node, TCP over the bridge between
# them; no fabric libraries (UCX, libfabric, PSM) probed, as there is no fabric here.
echo "export OMPI_MCA_pml=ob1"
echo "export OMPI_MCA_btl=self,vader,tcp"
echo "export OMPI_MCA_btl_tcp_if_include=${NET}.0/24"
echo "export OMPI_MCA_mtl=^ofi,psm,psm2"
echo "export OMPI_MCA_osc=^ucx"
PROLOG
  chmod 755 "$CONF_DIR/task-prolog.sh"
}

# One fake GPU file per (node, GPU), all idle and healthy.
write_gpu_state() {
  local nodes=$1 gpus=$2
  mkdir -p "$NVML_STATE"
  rm -f "$NVML_STATE"/node*-gpu*
  for k in $(seq 1 "$nodes"); do
    for g in $(seq 0 $((gpus - 1))); do
      printf 'uuid=GPU-fa4e%04d-0000-4000-8000-%012d\nname=Fake NVML GPU\npci_bus_id=00000000:%02X:00.0\nutil=0\nmem_used_mb=0\nmem_total_mb=81559\necc_uncorrected=0\nlost=0\n' \
        "$k" "$g" $((g + 1)) > "$NVML_STATE/node$k-gpu$g"
    done
  done
}

start_network() {
  local nodes=$1
  ip link add "$BRIDGE" type bridge
  ip addr add "${NET}.1/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  for k in $(seq 1 "$nodes"); do
    ip netns add "$NAME-node$k"
    ip link add "fwm$k" type veth peer name eth0 netns "$NAME-node$k"
    ip link set "fwm$k" master "$BRIDGE" up
    ip -n "$NAME-node$k" link set lo up
    ip -n "$NAME-node$k" addr add "${NET}.$((10 + k))/24" dev eth0
    ip -n "$NAME-node$k" link set eth0 up
    echo "${NET}.$((10 + k)) node$k $HOSTS_MARK" >> /etc/hosts
  done
}

make_devices() {
  local gpus=$1 made=()
  for g in $(seq 0 $((gpus - 1))); do
    if [ ! -e "/dev/nvidia$g" ]; then mknod -m 666 "/dev/nvidia$g" c 195 "$g"; made+=("/dev/nvidia$g"); fi
  done
  echo "devices=${made[*]:-}" >> "$RUN_STATE"
}

wait_idle() {
  local nodes=$1 gpus=$2
  for _ in $(seq 1 120); do
    local idle
    idle=$(SLURM_CONF=$CONF timeout 5 sinfo -h -N -o '%N %T' 2>/dev/null | awk '$2 == "idle"' | wc -l || true)
    if [ "$idle" -ge "$nodes" ]; then
      say "$nodes nodes idle with gpu:$gpus (cluster $NAME)"
      say "SLURM_CONF=$CONF"
      say "fake NVML state: FAKE_NVML_STATE=$NVML_STATE (files node<K>-gpu<I>; write ecc_uncorrected=1 or lost=1 to make a GPU sick)"
      return 0
    fi
    SLURM_CONF=$CONF timeout 5 sinfo -h -N -o '%N %T' 2>/dev/null | awk '$2 ~ /down|drain|\*/ {print $1}' |
      while read -r n; do SLURM_CONF=$CONF timeout 5 scontrol update NodeName="$n" State=RESUME >/dev/null 2>&1 || true; done
    sleep 0.5
  done
  tail -n 20 "$LOGS"/*.log >&2 || true
  die "the $nodes nodes did not become idle; see $LOGS"
}

start() {
  local nodes=$1 gpus=$2 lib
  [ "$nodes" -ge 1 ] && [ "$nodes" -le 64 ] || die "--nodes must be 1..64 (got $nodes)"
  [ "$gpus" -ge 1 ] && [ "$gpus" -le 16 ] || die "--gpus-per-node must be 1..16 (got $gpus)"
  for t in ip nsenter unshare mknod slurmctld slurmd sinfo; do
    command -v "$t" >/dev/null 2>&1 || die "'$t' not found (needs iproute2, util-linux, slurmctld, slurmd, slurm-client)"
  done
  lib=$(fake_nvml_lib)
  stop
  echo "nodes=$nodes" > "$RUN_STATE"
  write_conf "$nodes" "$gpus"
  write_gpu_state "$nodes" "$gpus"
  mkdir -p "$NVML_LIB_DIR"
  cp "$lib" "$NVML_LIB_DIR/libnvidia-ml.so.1"
  make_devices "$gpus"
  start_network "$nodes"
  slurmctld -i -f "$CONF" || { tail -n 20 "$LOGS/slurmctld.log" >&2; exit 1; }
  for k in $(seq 1 "$nodes"); do start_node "$k"; done
  wait_idle "$nodes" "$gpus"
}

# Starts node K's slurmd in its namespace.
start_node() {
  local k=$1
  mkdir -p "$SPOOL_PREFIX-node$k" "$TMP_PREFIX-node$k"
  # nsenter, not `ip netns exec`: that remounts /sys and slurmd loses /sys/fs/cgroup.
  nsenter --net="/run/netns/$NAME-node$k" unshare --uts \
    sh -c "hostname node$k && exec slurmd -f '$CONF' -N node$k" ||
    { tail -n 20 "$LOGS/slurmd-node$k.log" >&2; exit 1; }
}

# Takes node K away as a crashed machine goes: every process in its namespace (its slurmd,
# slurmstepd and the tasks they run) killed at once.
lose_node() {
  local k=$1 p
  [ -e "/run/netns/$NAME-node$k" ] || die "no node$k in this cluster"
  for p in $(ip netns pids "$NAME-node$k"); do kill -9 "$p" 2>/dev/null || true; done
  say "node$k lost (every process in its namespace killed)"
}

# Brings a lost node back: its slurmd again, and the node returned to service.
restore_node() {
  local k=$1
  [ -e "/run/netns/$NAME-node$k" ] || die "no node$k in this cluster"
  start_node "$k"
  for _ in $(seq 1 240); do
    SLURM_CONF=$CONF timeout 5 scontrol update NodeName="node$k" State=RESUME >/dev/null 2>&1 || true
    if SLURM_CONF=$CONF timeout 5 sinfo -h -n "node$k" -o %T 2>/dev/null | grep -qxE 'idle|mixed|allocated'; then
      say "node$k back in service"
      return 0
    fi
    sleep 0.5
  done
  die "node$k did not come back into service; see $LOGS/slurmd-node$k.log"
}

# Every process of this cluster: its slurmctld and everything in its nodes' namespaces.
cluster_pids() {
  local ns
  [ -f "$CTLD_PID" ] && cat "$CTLD_PID"
  pgrep -f "slurmctld.* -f $CONF" || true
  for ns in $(ip netns list 2>/dev/null | awk -v p="$NAME-node" 'index($1, p) == 1 {print $1}'); do
    ip netns pids "$ns" 2>/dev/null || true
  done
}

stop() {
  local pids p
  pids=$(cluster_pids | sort -u | tr '\n' ' ')
  for p in $pids; do kill "$p" 2>/dev/null || true; done
  for _ in $(seq 1 50); do
    local alive=0
    for p in $pids; do if kill -0 "$p" 2>/dev/null && ! grep -q '^State:.*Z' "/proc/$p/status" 2>/dev/null; then alive=1; fi; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for p in $pids; do kill -9 "$p" 2>/dev/null || true; done
  for ns in $(ip netns list 2>/dev/null | awk -v p="$NAME-node" 'index($1, p) == 1 {print $1}'); do
    ip netns delete "$ns" 2>/dev/null || true
  done
  ip link show "$BRIDGE" >/dev/null 2>&1 && ip link delete "$BRIDGE"
  for v in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//' | grep -E '^fwm[0-9]+$' || true); do
    ip link delete "$v" 2>/dev/null || true
  done
  if grep -q "$HOSTS_MARK\$" /etc/hosts; then
    # /etc/hosts may be a bind mount: rewrite it in place.
    grep -v "$HOSTS_MARK\$" /etc/hosts > "/etc/hosts.$NAME.tmp" || true
    cat "/etc/hosts.$NAME.tmp" > /etc/hosts
    rm -f "/etc/hosts.$NAME.tmp"
  fi
  if [ -f "$RUN_STATE" ]; then
    for d in $(sed -n 's/^devices=//p' "$RUN_STATE"); do rm -f "$d"; done
  fi
  rm -rf "$SPOOL_PREFIX"-* "$TMP_PREFIX"-* "$STATE" "$LOGS" "$NVML_LIB_DIR" "$CONF_DIR" "$RUN_STATE" "$CTLD_PID" /run/slurmd-$NAME-*.pid
  rm -f "$NVML_STATE"/node*-gpu*
  rmdir "$NVML_STATE" 2>/dev/null || true
}

usage() { echo "usage: $0 start|stop|status --nodes N [--gpus-per-node G] | lose-node K | restore-node K" >&2; exit 2; }

cmd=${1:-}; shift || true
case "$cmd" in
  lose-node) lose_node "${1:?lose-node needs a node number}"; exit 0 ;;
  restore-node) restore_node "${1:?restore-node needs a node number}"; exit 0 ;;
esac
nodes=4; gpus=2
while [ $# -gt 0 ]; do
  case "$1" in
    --nodes) nodes=${2:?--nodes needs a number}; shift 2 ;;
    --gpus-per-node) gpus=${2:?--gpus-per-node needs a number}; shift 2 ;;
    *) usage ;;
  esac
done
case "$cmd" in
  start) start "$nodes" "$gpus" ;;
  stop) stop; say "stopped $NAME" ;;
  status) SLURM_CONF=$CONF timeout 5 sinfo -N -o '%N %T %G' ;;
  *) usage ;;
esac
