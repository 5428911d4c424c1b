#!/usr/bin/env bash
# flywheel's test command (the README's second command). It sets up what the tests need, then runs
# them with cargo-nextest (cargo test if nextest is missing):
#   - a Python venv with pyarrow and DuckDB in .venv (the independent readers the tests check tables with);
#   - in CI or with FLYWHEEL_TEST_ML=1: a venv with torch and transformers in .venv-ml, for the
#     shipped generate/embed mappers' tests (tiny random models on CPU);
#   - as root on Debian/Ubuntu: the system packages for the cluster build (Open MPI, Slurm, munge,
#     HDF5, libclang) and a one-node Slurm cluster (slurm/local-cluster.sh). Set FLYWHEEL_NO_APT=1
#     to skip installing;
#   - the default build's tests, then, where MPI and HDF5 are installed, the all-features build's
#     tests (mpirun and sbatch end to end).
# Without root or MPI the cluster tests are skipped and say so. In CI (CI=true) nothing may be
# skipped: FLYWHEEL_TEST_REQUIRE_ALL=1 turns every skip into a failure. Every skip is also
# counted: a test that skips appends a line to $FLYWHEEL_TEST_SKIPS, and the last lines of this
# script's output say how many tests skipped and why (or "no test skipped").
set -euo pipefail
cd "$(dirname "$0")/.."

FLYWHEEL_TEST_SKIPS="$(mktemp "${TMPDIR:-/tmp}/flywheel-skips.XXXXXX")"
export FLYWHEEL_TEST_SKIPS
skip() { printf '%s\t%s\n' "$1" "$2" >>"$FLYWHEEL_TEST_SKIPS"; }
summary() {
  # One line per skipped test (a test run by both builds counts once per build).
  local n
  n=$(wc -l <"$FLYWHEEL_TEST_SKIPS")
  if [ "$n" -eq 0 ]; then
    echo "== no test skipped"
  else
    if [ "$n" -eq 1 ]; then echo "== 1 test skipped:"; else echo "== $n tests skipped:"; fi
    sort "$FLYWHEEL_TEST_SKIPS" | awk -F '\t' '{ printf "   %s (%s)\n", $1, $2 }'
  fi
  rm -f "$FLYWHEEL_TEST_SKIPS"
}
trap summary EXIT

APT_PACKAGES=(slurmctld slurmd slurm-client munge libpmix2 openmpi-bin libopenmpi-dev libhdf5-dev libclang-dev pkg-config clang)

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && [ "${FLYWHEEL_NO_APT:-0}" != 1 ]; then
  missing=()
  for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "== installing ${missing[*]}"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=600 "${missing[@]}"
  fi
fi

if ! .venv/bin/python -c "import pyarrow, h5py, duckdb" >/dev/null 2>&1; then
  echo "== creating .venv with pyarrow, h5py and duckdb"
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check pyarrow h5py duckdb
fi
export FLYWHEEL_TEST_PYTHON="$PWD/.venv/bin/python"

# The shipped mappers' tests (flywheel:generate, flywheel:embed) run tiny random models on CPU
# with torch and transformers: a large install (about 6 GB with PyPI's torch), so only in CI or
# when asked; elsewhere those tests say SKIPPED.
if [ "${CI:-}" = true ] || [ "${FLYWHEEL_TEST_ML:-0}" = 1 ]; then
  if ! .venv-ml/bin/python -c "import torch, transformers, pyarrow" >/dev/null 2>&1; then
    echo "== creating .venv-ml with torch, transformers and pyarrow"
    python3 -m venv .venv-ml
    .venv-ml/bin/pip install -q --disable-pip-version-check pyarrow torch transformers
  fi
  export FLYWHEEL_TEST_ML_PYTHON="$PWD/.venv-ml/bin/python"
fi

cluster=0
if command -v mpirun >/dev/null 2>&1 && pkg-config --exists ompi 2>/dev/null && pkg-config --exists hdf5 2>/dev/null; then
  cluster=1
  if [ "$(id -u)" = 0 ] && command -v slurmctld >/dev/null 2>&1; then
    timeout 10 sinfo -h -o %T 2>/dev/null | grep -qE 'idle|mixed|alloc' || slurm/local-cluster.sh start
  fi
fi

if cargo nextest --version >/dev/null 2>&1; then
  run_tests() { cargo nextest run --workspace --no-fail-fast "$@"; }
else
  run_tests() { cargo test --workspace --no-fail-fast "$@"; }
fi

echo "== default build (no MPI, no HDF5)"
run_tests
if [ "$cluster" = 1 ]; then
  echo "== all-features build (mpi, hdf5): mpirun and Slurm end to end"
  run_tests --all-features
else
  echo "SKIPPED: the all-features build (mpirun/Slurm tests): Open MPI and HDF5 development packages are not installed"
  skip "the all-features build" "Open MPI and HDF5 development packages are not installed"
  if [ "${FLYWHEEL_TEST_REQUIRE_ALL:-0}" = 1 ]; then exit 1; fi
fi
