#!/bin/bash
# The MPI poll side by side (issue 16): the adaptive poll against the old fixed 500 us sleep
# (FLYWHEEL_MPI_POLL_FIXED_US=500), on a real `mpirun --oversubscribe` job.
#   busy: 33 ranks, builtin:identity over 200,000 rows, chunk_rows 10 (20,000 planned chunks, the
#         last eighth cut finer: 27,500 dispatched); the coordinator's log line gives its
#         dispatch rate and per-message handling time.
#   idle: 5 ranks, a Python mapper that sleeps 50 ms a row (the coordinator mostly waits); the
#         CPU time every rank used, from /usr/bin/time.
# Usage: benchmarks/mpi-poll.sh [FLYWHEEL_BINARY] [ROUNDS]   (a build with --features mpi)
set -euo pipefail
fw=$(realpath "${1:-target/debug/flywheel}")
rounds=${2:-2}
py=${FLYWHEEL_TEST_PYTHON:-$(pwd)/.venv/bin/python}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cd "$dir"
"$py" - <<'PY'
import pyarrow as pa, pyarrow.parquet as pq
n = 200_000
pq.write_table(pa.table({"id": pa.array(range(n), pa.int64()), "text": [f"row {i}" for i in range(n)]}),
               "in.parquet", row_group_size=10_000)
pq.write_table(pa.table({"id": pa.array(range(1200), pa.int64())}), "small.parquet")
PY
printf 'import time\n\ndef f(row):\n    time.sleep(0.05)\n    return row\n' > slow.py
printf 'input = "%s/in.parquet"\noutput = "%s/out"\nmapper = "builtin:identity"\nchunk_rows = 10\n' "$dir" "$dir" > busy.toml
printf 'input = "%s/small.parquet"\noutput = "%s/out-idle"\nmapper = "%s/slow.py:f"\nchunk_rows = 10\n' "$dir" "$dir" "$dir" > idle.toml
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 FLYWHEEL_LOG=info FLYWHEEL_TEST_PYTHON="$py"
for round in $(seq "$rounds"); do
  for mode in fixed adaptive; do
    if [ "$mode" = fixed ]; then export FLYWHEEL_MPI_POLL_FIXED_US=500; else unset FLYWHEEL_MPI_POLL_FIXED_US; fi
    rm -rf out out-idle
    timeout 600 mpirun --oversubscribe -n 33 "$fw" run busy.toml > busy.log 2>&1
    echo "busy $mode round $round: $(grep -o 'coordinator: .*' busy.log)"
    timeout 600 mpirun --oversubscribe -n 5 sh -c 'exec /usr/bin/time -f "rank $OMPI_COMM_WORLD_RANK user %U s sys %S s wall %e s" "$0" run idle.toml' "$fw" > idle.log 2>&1
    echo "idle $mode round $round: $(grep -h '^rank ' idle.log | sort | tr '\n' ';')"
  done
done
