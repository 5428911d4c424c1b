"""Reads the latest version of a flywheel table file by file with pyarrow and prints, as JSON,
whether every data file has the same schema as the manifest ("files_agree"), the column names
and Arrow types of the files, and the rows (NaN and infinities written as "nan", "inf", "-inf")."""

import json
import math
import os
import sys

import pyarrow.parquet as pq


def plain(v):
    if isinstance(v, float) and not math.isfinite(v):
        return repr(v)
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [plain(x) for x in v]
    return v


def main():
    table = sys.argv[1]
    vdir = os.path.join(table, "_versions")
    name = sorted(n for n in os.listdir(vdir) if n.endswith(".json") and not n.startswith("."))[-1]
    with open(os.path.join(vdir, name)) as f:
        manifest = json.load(f)
    names = [f["name"] for f in manifest["schema"]["fields"]]
    paths = [os.path.join(table, e["path"]) for e in manifest["files"]]
    schemas = [pq.read_schema(p) for p in paths]
    agree = all(s.names == names and s.equals(schemas[0], check_metadata=False) for s in schemas)
    rows = [plain(r) for p in paths for r in pq.read_table(p).to_pylist()]
    types = [str(t) for t in schemas[0].types] if schemas else []
    json.dump({"files": len(paths), "files_agree": agree, "names": names, "types": types, "rows": rows}, sys.stdout)


main()
