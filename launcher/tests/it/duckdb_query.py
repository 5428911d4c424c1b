"""Runs SQL with DuckDB over a flywheel table version (its manifest read as plain JSON, its files
with DuckDB's own Parquet reader, registered as the view t). Prints the rows as a JSON array."""

import json
import os
import sys

import duckdb


def main():
    table, version, sql = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    with open(os.path.join(table, "_versions", f"{version:020}.json")) as f:
        manifest = json.load(f)
    files = [os.path.join(table, e["path"]) for e in manifest["files"]]
    con = duckdb.connect()
    con.execute(f"CREATE VIEW t AS SELECT * FROM read_parquet({files!r})")
    cur = con.execute(sql)
    names = [d[0] for d in cur.description]
    rows = [dict(zip(names, r)) for r in cur.fetchall()]
    json.dump(rows, sys.stdout, default=str)


main()
