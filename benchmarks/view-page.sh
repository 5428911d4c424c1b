#!/usr/bin/env bash
# flywheel view's deep pages (issue 20): page 10,000 of a 10,000,000-row table must be served in
# under a second. Generates the table (pyarrow writes the ids, `flywheel map` publishes them as
# a table of 10 files), starts `flywheel view`, and times the requests a page makes for page
# 10,000 at 50 rows a page (rows 499,950..500,000): the version's info and its rows.
#
#   benchmarks/view-page.sh                  # the debug build (target/debug/flywheel)
#   FLYWHEEL=target/release/flywheel benchmarks/view-page.sh
#   benchmarks/view-page.sh --rows 1000000 --page 100
#
# Prints each request's time (median of --runs) and the largest; docs/benchmarks.md keeps them.
set -euo pipefail
cd "$(dirname "$0")/.."

rows=10000000
page=10000
runs=5
while [ $# -gt 0 ]; do
  case "$1" in
    --rows) rows=$2; shift ;;
    --page) page=$2; shift ;;
    --runs) runs=$2; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

py=${FLYWHEEL_TEST_PYTHON:-.venv/bin/python}
"$py" -c "import pyarrow" 2>/dev/null || { echo "needs a Python with pyarrow ($py); run scripts/test.sh once" >&2; exit 2; }
if [ -z "${FLYWHEEL:-}" ]; then
  cargo build -q -p flywheel
  FLYWHEEL=target/debug/flywheel
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/flywheel-view-bench.XXXXXX")
viewer=""
cleanup() { [ -n "$viewer" ] && kill "$viewer" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

start=$(date +%s)
"$py" - "$work/ids.parquet" "$rows" <<'PY'
import sys
import pyarrow as pa, pyarrow.compute as pc, pyarrow.parquet as pq
path, n = sys.argv[1], int(sys.argv[2])
ids = pa.array(range(n), type=pa.int64())
text = pc.binary_join_element_wise(pa.array(["row"] * n), pc.cast(ids, pa.string()), " ")
pq.write_table(pa.table({"id": ids, "text": text, "score": pc.divide(pc.cast(ids, pa.float64()), 7.0)}), path, row_group_size=100_000)
PY
"$FLYWHEEL" map --input "$work/ids.parquet" --output "$work/big" --mapper builtin:identity \
  --workers 2 --chunk-rows $((rows / 10)) >/dev/null
echo "table: $rows rows in 10 files, made in $(( $(date +%s) - start ))s"

"$FLYWHEEL" view "$work/big" --port 0 >"$work/view.out" 2>"$work/view.err" &
viewer=$!
for _ in $(seq 100); do [ -s "$work/view.out" ] && break; sleep 0.1; done
url=$(head -1 "$work/view.out" | sed 's/^flywheel view: //')
[ -n "$url" ] || { echo "flywheel view printed no address" >&2; cat "$work/view.err" >&2; exit 1; }

"$py" - "$url" "$page" "$runs" <<'PY'
import sys, time, urllib.request, json, statistics
url, page, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
base, token = url.split("/?token=")
per = 50
offset = (page - 1) * per
hdr = {"Cookie": f"flywheel_view_token={token}"}
def get(path):
    t = time.perf_counter()
    with urllib.request.urlopen(urllib.request.Request(base + path, headers=hdr)) as r:
        body = r.read()
    return time.perf_counter() - t, body
for name, path in [("page (HTML)", f"/t/big@1?page={page}"), ("info", "/api/info?t=big@1"),
                   ("rows", f"/api/rows?t=big@1&offset={offset}&limit={per}")]:
    times = []
    for _ in range(runs):
        dt, body = get(path)
        times.append(dt)
    if name == "rows":
        rows = json.loads(body)["rows"]
        assert rows[0][0]["v"] == offset and len(rows) == per, rows[0]
    print(f"{name:12} median {statistics.median(times)*1000:8.1f} ms   max {max(times)*1000:8.1f} ms   ({runs} runs)")
PY
