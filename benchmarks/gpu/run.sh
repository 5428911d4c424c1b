#!/usr/bin/env bash
# The GPU check (issue 10), for a machine with one NVIDIA GPU, CUDA, PyTorch, transformers and
# pyarrow. Builds flywheel if cargo is there, else uses a carried x86-64 build in gpu-bin/flywheel.
# Prints NVML as flywheel sees it beside nvidia-smi, then times batch inference over 20,000
# prompts with a small random-weight causal LM: flywheel (1 worker owning the GPU) against the
# same mapper in a plain batched loop, and the seed's unbatched per-row generate.
#   benchmarks/gpu/run.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-${OUT:-/tmp/flywheel-gpu}}
mkdir -p "$OUT"
N=${FLYWHEEL_GPU_PROMPTS:-20000}
BATCH=${FLYWHEEL_GPU_BATCH:-256}
TOKENS=${FLYWHEEL_GPU_TOKENS:-32}
PY=${PYTHON:-python3}

if command -v cargo >/dev/null 2>&1; then
  cargo build --release -p flywheel >/dev/null
  FW=target/release/flywheel
else
  FW=gpu-bin/flywheel
fi
echo "== flywheel: $($FW --version)"

echo "== NVML as flywheel sees it"
$FW gpus | tee "$OUT/gpus.txt"
echo "== nvidia-smi"
nvidia-smi --query-gpu=name,driver_version,memory.used,memory.total,utilization.gpu --format=csv | tee "$OUT/nvidia-smi.txt"

WORK=$(mktemp -d)
$PY benchmarks/gpu/bench_lm.py setup "$WORK" "$N"

echo "== flywheel map, 1 worker owning the GPU"
start=$(date +%s.%N)
$FW map --input "$WORK/prompts.parquet" --output "$WORK/stories" --workers 1 --chunk-rows 2048 \
  --python "$PY" --mapper examples/story_telling.py:StoryTelling \
  --mapper-arg model="$WORK/model" --mapper-arg max_new_tokens="$TOKENS" --mapper-arg temperature=0 \
  --mapper-arg batch_size="$BATCH" --json > "$OUT/flywheel-report.json"
end=$(date +%s.%N)
$PY - "$OUT/flywheel-report.json" "$start" "$end" <<'PYEOF' | tee "$OUT/flywheel.json"
import json, sys
r = json.load(open(sys.argv[1]))
wall = float(sys.argv[3]) - float(sys.argv[2])
rep = r["report"]
print(json.dumps({"case": "flywheel map (1 worker)", "rows": rep["rows_out"], "seconds": rep["wall_s"],
                  "rows_per_s": rep["rows_per_s"], "gpu": rep["gpu"], "process_seconds": wall}))
PYEOF

echo "== baselines"
$PY benchmarks/gpu/bench_lm.py batched "$WORK" "$BATCH" "$TOKENS" | tee "$OUT/plain.json"
$PY benchmarks/gpu/bench_lm.py per-row "$WORK" "$TOKENS" | tee "$OUT/per-row.json"
