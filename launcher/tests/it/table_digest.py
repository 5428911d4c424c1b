"""Reads a flywheel table with pyarrow only and prints {"num_rows", "rows", "digest"}: the manifest's
row count, the rows read, and a SHA-256 of the rows as canonical JSON (in order). Columns are
taken in the order given on the command line (after the table) or as stored."""

import hashlib
import json
import os
import sys

import pyarrow as pa
import pyarrow.parquet as pq

table, columns = sys.argv[1], sys.argv[2:]
vdir = os.path.join(table, "_versions")
name = sorted(n for n in os.listdir(vdir) if n.endswith(".json") and not n.startswith("."))[-1]
manifest = json.load(open(os.path.join(vdir, name)))
parts = [pq.read_table(os.path.join(table, f["path"])) for f in manifest["files"]]
rows = pa.concat_tables(parts).to_pylist() if parts else []
if columns:
    rows = [{c: r[c] for c in columns} for r in rows]
digest = hashlib.sha256(json.dumps(rows, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
json.dump({"num_rows": manifest["num_rows"], "rows": len(rows), "digest": digest}, sys.stdout)
