#!/usr/bin/env bash
# flywheel's test command (the README's second command). It sets up what the tests need, then runs
# them with cargo-nextest (cargo test if nextest is missing):
#   - a Python venv in .venv with the independent readers the tests check tables with: pyarrow, numpy,
#     h5py, DuckDB (with its Delta extension), deltalake, Polars and Hugging Face datasets;
#   - in CI or with FLYWHEEL_TEST_ML=1: a venv with torch and transformers in .venv-ml, for the
#     shipped generate/embed mappers' tests (tiny random models on CPU);
#   - as root on Debian/Ubuntu: the system packages for the cluster build (Open MPI, Slurm, munge,
#     HDF5, libclang, iproute2), Chromium and chromedriver (the viewer's browser test) and the
#     local Slurm clusters (slurm/local-cluster.sh): one node, and 4 nodes x 2 fake GPUs in
#     network namespaces. Set FLYWHEEL_NO_APT=1 to skip installing;
#   - the default build's tests, then, where MPI and HDF5 are installed, the all-features build's
#     tests (mpirun and sbatch end to end).
# Without root or MPI the cluster tests are skipped and say so. In CI (CI=true) nothing may be
# skipped: FLYWHEEL_TEST_REQUIRE_ALL=1 turns every skip into a failure. Every skip is also
# counted: a test that skips appends a line to $FLYWHEEL_TEST_SKIPS, and the last lines of this
# script's output say how many tests skipped and why (or "no test skipped").
set -euo pipefail
cd "$(dirname "$0")/.."

# One file of skips per build (default, all-features), named in $FLYWHEEL_TEST_SKIPS while the
# build's tests run.
SKIPS="$(mktemp -d "${TMPDIR:-/tmp}/flywheel-skips.XXXXXX")"
skip() { printf '%s\t%s\n' "$2" "$3" >>"$SKIPS/$1"; }
summary() {
  # A test skipped in both builds is one line, naming both.
  local lines
  lines=$(cd "$SKIPS" && for b in *; do if [ -f "$b" ]; then awk -F '\t' -v b="$b" '{ print $1 "\t" $2 "\t" b }' "$b"; fi; done |
    awk -F '\t' '{ k = $1 " (" $2 ")"; if (!(k in seen)) { order[++n] = k; seen[k] = $3 } else seen[k] = seen[k] ", " $3 }
      END { for (i = 1; i <= n; i++) print "   " order[i] " [" seen[order[i]] "]" }')
  if [ -z "$lines" ]; then
    echo "== no test skipped"
  else
    local n
    n=$(printf '%s\n' "$lines" | wc -l)
    if [ "$n" -eq 1 ]; then echo "== 1 test skipped:"; else echo "== $n tests skipped:"; fi
    printf '%s\n' "$lines"
  fi
  rm -rf "$SKIPS"
}
trap summary EXIT

APT_PACKAGES=(slurmctld slurmd slurm-client munge libpmix2 openmpi-bin libopenmpi-dev libhdf5-dev libclang-dev pkg-config clang iproute2 util-linux chromium chromium-driver)

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && [ "${FLYWHEEL_NO_APT:-0}" != 1 ]; then
  missing=()
  for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "== installing ${missing[*]}"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=600 "${missing[@]}"
  fi
fi

# The outside readers the tests compare tables with, pinned: duckdb-ext-delta ships the Delta
# extension built for exactly this duckdb (no download at LOAD time).
# numpy: the seeding tests draw from its global generator in a mapper.
READERS=(pyarrow h5py numpy "duckdb==1.4.4" "duckdb-ext-delta==1.4.4.20260205" "deltalake==1.6.6"
  "polars==2.1.0" "datasets==5.2.0")
if ! .venv/bin/python -c "import pyarrow, h5py, numpy, deltalake, polars, datasets, duckdb_ext, duckdb
assert duckdb.__version__ == '1.4.4'" >/dev/null 2>&1; then
  echo "== setting up .venv with ${READERS[*]}"
  [ -x .venv/bin/python ] || python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check "${READERS[@]}"
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
    SLURM_CONF=/etc/slurm-flywheel-multi/slurm.conf timeout 10 sinfo -h -o %T 2>/dev/null | grep -qE 'idle|mixed|alloc' ||
      slurm/local-cluster.sh start --nodes 4 --gpus-per-node 2
  fi
fi

# run_tests BUILD [cargo args]: the workspace's tests, their skips recorded in $SKIPS/BUILD.
if cargo nextest --version >/dev/null 2>&1; then
  run_tests() { local b=$1; shift; FLYWHEEL_TEST_SKIPS="$SKIPS/$b" cargo nextest run --workspace --no-fail-fast "$@"; }
else
  run_tests() { local b=$1; shift; FLYWHEEL_TEST_SKIPS="$SKIPS/$b" cargo test --workspace --no-fail-fast "$@"; }
fi

echo "== default build (no MPI, no HDF5)"
run_tests default
if [ "$cluster" = 1 ]; then
  echo "== all-features build (mpi, hdf5): mpirun and Slurm end to end"
  run_tests all-features --all-features
else
  echo "SKIPPED: the all-features build (mpirun/Slurm tests): Open MPI and HDF5 development packages are not installed"
  skip all-features "the all-features build" "Open MPI and HDF5 development packages are not installed"
  if [ "${FLYWHEEL_TEST_REQUIRE_ALL:-0}" = 1 ]; then exit 1; fi
fi
