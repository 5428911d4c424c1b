"""Reads a flywheel table the way an outside tool would: the latest manifest (or the version given)
as plain JSON, every data file it names with pyarrow, nothing from flywheel. Prints
{"version", "num_rows", "schema_names", "rows"} as JSON."""

import json
import os
import sys

import pyarrow as pa
import pyarrow.parquet as pq


def main():
    table = sys.argv[1]
    version = int(sys.argv[2]) if len(sys.argv) > 2 else None
    vdir = os.path.join(table, "_versions")
    names = sorted(n for n in os.listdir(vdir) if n.endswith(".json") and not n.startswith("."))
    name = f"{version:020}.json" if version else names[-1]
    with open(os.path.join(vdir, name)) as f:
        manifest = json.load(f)
    tables = [pq.read_table(os.path.join(table, entry["path"])) for entry in manifest["files"]]
    rows = []
    names_out = []
    if tables:
        combined = pa.concat_tables(tables)
        rows = combined.to_pylist()
        names_out = combined.schema.names
    json.dump({"version": manifest["version"], "num_rows": manifest["num_rows"], "schema_names": names_out, "rows": rows}, sys.stdout, default=str)


main()
