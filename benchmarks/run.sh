#!/usr/bin/env bash
# flywheel's benchmark suite in one command (docs/benchmarks.md records its results):
#   - installs the Python baselines' packages (pyarrow, HF datasets) into .venv-bench;
#   - builds flywheel and flywheel-bench (release; with MPI where mpicc and mpirun exist);
#   - generates a seeded dialogues table and runs every case beside its baseline, printing
#     ratios (medians of --runs runs).
#
#   benchmarks/run.sh                    # full: 1,000,000 rows, median of 3
#   benchmarks/run.sh --quick            # small data, 1 run, the debug build (what CI runs)
#   benchmarks/run.sh [--quick] CASE…    # only these cases (see flywheel-bench --help)
#   benchmarks/run.sh -- --rows 200000   # anything after -- goes to flywheel-bench
#   benchmarks/run.sh [--quick] scale    # only the coordinator at cluster scale (issue 16):
#                                        # 8,192 workers x 1M chunks (quick: 512 x 100,000)
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
cases=()
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --) shift; extra=("$@"); break ;;
    *) cases+=("$1") ;;
  esac
  shift
done

if ! .venv-bench/bin/python -c "import pyarrow, datasets" >/dev/null 2>&1; then
  echo "== creating .venv-bench with pyarrow and HF datasets"
  python3 -m venv .venv-bench
  .venv-bench/bin/pip install -q --disable-pip-version-check pyarrow datasets
fi

features=()
if command -v mpicc >/dev/null 2>&1 && command -v mpirun >/dev/null 2>&1; then
  features=(--features mpi)
fi
target=${CARGO_TARGET_DIR:-target}
if [ "$quick" = 1 ]; then
  profile=debug
  cargo build -q -p flywheel
  cargo build -q -p flywheel-benchmarks "${features[@]}"
  args=(--rows 20000 --runs 1 --memory-mb 16 --skew-rows 2000 --mpi-chunks 2000)
  scale=(--workers 512 --chunks 100000)
else
  profile=release
  # `flywheel query` (DataFusion) is not measured here and is most of a release build's time.
  cargo build -q --release -p flywheel --no-default-features
  cargo build -q --release -p flywheel-benchmarks "${features[@]}"
  args=()
  scale=(--workers 8192 --chunks 1000000)
fi

echo "== $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $profile build, $(date -u +%F)"
# The scale case runs on its own (flywheel-bench runs it alone): with every case, or when named.
others=()
run_scale=0
[ ${#cases[@]} -eq 0 ] && run_scale=1
for c in "${cases[@]}"; do
  if [ "$c" = scale ]; then run_scale=1; else others+=("$c"); fi
done
if [ "$run_scale" = 1 ]; then
  "$target/$profile/flywheel-bench" scale "${scale[@]}"
  [ ${#cases[@]} -gt 0 ] && [ ${#others[@]} -eq 0 ] && exit 0
fi
cases=("${others[@]}")
exec "$target/$profile/flywheel-bench" --flywheel "$target/$profile/flywheel" \
  --python .venv-bench/bin/python --hf-python .venv-bench/bin/python \
  "${args[@]}" "${extra[@]}" "${cases[@]}"
