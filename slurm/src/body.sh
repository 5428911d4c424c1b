export FLYWHEEL_JOB_ID="${FLYWHEEL_JOB_ID:-slurm-$SLURM_JOB_ID}"
export FLYWHEEL_CHECKPOINT_GRACE=@GRACE@
continue_job() {
  sbatch --parsable --dependency=afterany:"$SLURM_JOB_ID" --export=ALL,FLYWHEEL_RESUME=1 @SCRIPT@
}
# One step of the ranks (srun options in "$@"), waited for across the signals trapped below.
run_step() {
  srun --mpi=@MPI@ "$@" @FLYWHEEL@ run @JOB@ &
  srun_pid=$!
  while true; do
    wait $srun_pid
    rc=$?
    kill -0 $srun_pid 2>/dev/null || break
  done
}
# The job's nodes that still run a task: those Slurm lists for the job now (with --no-kill the
# list shrinks; SLURM_JOB_NODELIST keeps the lost ones) that answer a one-task step in time.
# Steps here --overlap: until Slurm declares the lost node down, the dead step still holds its
# share of every node, though its tasks there are gone.
live_nodes() {
  local list node
  list=$(scontrol show job -o "$SLURM_JOB_ID" | tr ' ' '\n' | sed -n 's/^NodeList=//p')
  for node in $(scontrol show hostnames "$list"); do
    if timeout @PROBE@ srun --overlap --nodes=1 --ntasks=1 --nodelist="$node" --mpi=none true >/dev/null 2>&1; then
      echo "$node"
    fi
  done
}
interrupted=0
trap 'echo "flywheel: time limit near: submitting a continuation, checkpointing"; interrupted=1; continue_job || true; kill -USR1 $srun_pid 2>/dev/null || true' USR1
trap 'interrupted=1; kill -TERM $srun_pid 2>/dev/null || true' TERM
set +e
run_step
# A step that ended because a node was lost runs again on the nodes left, resuming from the
# journal (accepted chunks are not redone), at most @RETRIES@ time(s); then a continuation.
nodes_now=${SLURM_JOB_NUM_NODES:-1}
retries_left=@RETRIES@
while [ "$rc" -ne 0 ] && [ "$interrupted" -eq 0 ]; do
  live=$(live_nodes | paste -sd, -)
  n=$(echo "$live" | tr ',' '\n' | grep -c .)
  [ "$n" -lt "$nodes_now" ] || break
  echo "flywheel: the step ended (exit $rc) with $((nodes_now - n)) of $nodes_now node(s) lost; live: ${live:-none}"
  if [ "$retries_left" -le 0 ] || [ "$n" -eq 0 ]; then
    echo "flywheel: no step retries left in this allocation: submitting a continuation"
    continue_job || true
    break
  fi
  retries_left=$((retries_left - 1))
  nodes_now=$n
  echo "flywheel: starting a new step on $live, resuming"
  export FLYWHEEL_RESUME=1
  run_step --overlap --nodes="$n" --ntasks=$((n * @TASKS_PER_NODE@)) --ntasks-per-node=@TASKS_PER_NODE@ --nodelist="$live"
done
exit $rc
