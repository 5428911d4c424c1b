"""Reads every version of a flywheel table with each outside reader and compares its rows with
flywheel's (the manifest's files read with pyarrow), as multisets, after the type mapping
documented in docs/format.md: a dict is its sorted (key, value) pairs, a timestamp its
microseconds since the epoch, a date its ISO text, a whole decimal its integer, bytes their hex, floats as Python floats.

Usage: delta_readers.py TABLE [--readers=deltalake,polars,duckdb,datasets] [VERSION ...]
(default: every reader, every version flywheel has)
Prints {"versions": [...], "delta_version": N, "results": {reader: {version: {"ok": bool,
"rows": n, "error": "..."}}}} as JSON: "ok" means exactly flywheel's rows; "error" is what the
reader raised. A reader that raises is asked for each column alone ("refused": {column:
error}) and then for all the columns it reads ("rest")."""

import datetime
import decimal
import glob
import json
import os
import sys

import pyarrow as pa
import pyarrow.parquet as pq


def manifest(table, version):
    with open(os.path.join(table, "_versions", f"{version:020}.json")) as f:
        return json.load(f)


def flywheel_rows(table, version):
    m = manifest(table, version)
    tables = [pq.read_table(os.path.join(table, e["path"])) for e in m["files"]]
    return pa.concat_tables(tables).to_pylist() if tables else []


def dict_columns(table, version):
    fields = manifest(table, version)["schema"]["fields"]
    return {f["name"] for f in fields if f.get("metadata", {}).get("flywheel.type", "").startswith("dict<")}


def norm(v):
    if isinstance(v, (bytes, bytearray)):
        return {"hex": bytes(v).hex()}
    if isinstance(v, datetime.datetime):
        if v.tzinfo is None:
            v = v.replace(tzinfo=datetime.timezone.utc)
        return {"us": round(v.timestamp() * 1_000_000)}
    if isinstance(v, decimal.Decimal):
        return int(v) if v == v.to_integral_value() else str(v)
    if isinstance(v, datetime.date):
        return {"date": v.isoformat()}
    if isinstance(v, dict):
        return {k: norm(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [norm(x) for x in v]
    if isinstance(v, float):
        return float(v)
    if hasattr(v, "tolist"):
        return norm(v.tolist())
    return v


def norm_dict(v):
    """A map in any reader's form: pyarrow's [(k, v)], Polars' [{key, value}], a dict."""
    if v is None:
        return None
    if isinstance(v, dict) and set(v) == {"key", "value"} and isinstance(v["key"], list):
        pairs = list(zip(v["key"], v["value"]))
    elif isinstance(v, dict):
        pairs = list(v.items())
    else:
        pairs = [(p["key"], p["value"]) if isinstance(p, dict) else tuple(p) for p in v]
    return sorted([norm(k), norm(x)] for k, x in pairs)


def canon(rows, dicts, columns):
    out = []
    for r in rows:
        r = {k: (norm_dict(v) if k in dicts else norm(v)) for k, v in r.items() if k in columns}
        out.append(json.dumps(r, sort_keys=True))
    return sorted(out)


def read_deltalake(table, version, columns):
    from deltalake import DeltaTable

    return DeltaTable(table, version=version).to_pyarrow_table(columns=columns).to_pylist()


def read_polars(table, version, columns):
    import polars as pl

    return pl.read_delta(table, version=version, columns=columns).to_arrow().to_pylist()


def duckdb_extension():
    import duckdb_ext

    base = list(duckdb_ext.__path__)[0]  # a namespace package: no __file__
    found = glob.glob(os.path.join(base, "extensions", "*", "*", "delta.duckdb_extension"))
    if not found:
        raise RuntimeError(f"no delta.duckdb_extension under {base}")
    return found[0]


def read_duckdb(table, version, columns):
    import duckdb

    con = duckdb.connect(config={"allow_unsigned_extensions": "true"})
    con.execute(f"LOAD '{duckdb_extension()}'")
    con.execute(f"ATTACH '{os.path.abspath(table)}' AS t (TYPE delta)")
    cols = ", ".join('"' + c.replace('"', '""') + '"' for c in columns)
    return con.execute(f"SELECT {cols} FROM t AT (VERSION => {int(version)})").fetch_arrow_table().to_pylist()


def read_datasets(table, version, columns):
    """Hugging Face datasets through the dataset card: config "default" is the latest version,
    "vN" version N (the card declares dict columns as json: (key, value) pairs)."""
    import datasets

    names = sorted(n for n in os.listdir(os.path.join(table, "_versions")) if n.endswith(".json") and not n.startswith("."))
    config = "default" if int(names[-1][:-5]) == version else f"v{version}"
    ds = datasets.load_dataset(table, config, split="train")
    return [{c: r[c] for c in columns} for r in ds]


READERS = {"deltalake": read_deltalake, "polars": read_polars, "duckdb": read_duckdb, "datasets": read_datasets}


def check(read, table, version, want, dicts, columns):
    try:
        got = read(table, version, columns)
    except Exception as e:  # the reader's refusal is the result
        return {"ok": False, "error": f"{type(e).__name__}: {e}"}
    ok = canon(got, dicts, columns) == canon(want, dicts, columns)
    res = {"ok": ok, "rows": len(got)}
    if not ok:
        res["first_row"] = canon(got, dicts, columns)[:1]
        res["want_row"] = canon(want, dicts, columns)[:1]
    return res


def main():
    args = [a for a in sys.argv[2:] if not a.startswith("--readers=")]
    only = [a.split("=", 1)[1].split(",") for a in sys.argv[2:] if a.startswith("--readers=")]
    readers = {n: r for n, r in READERS.items() if not only or n in only[0]}
    table = sys.argv[1]
    names = sorted(n for n in os.listdir(os.path.join(table, "_versions")) if n.endswith(".json") and not n.startswith("."))
    have = [int(n[:-5]) for n in names]
    versions = [int(v) for v in args] or have
    from deltalake import DeltaTable

    results = {r: {} for r in readers}
    for v in versions:
        want = flywheel_rows(table, v)
        dicts = dict_columns(table, v)
        columns = [f["name"] for f in manifest(table, v)["schema"]["fields"]]
        for name, read in readers.items():
            res = check(read, table, v, want, dicts, columns)
            if not res["ok"] and "error" in res:
                # Which columns it refuses: each alone, then all the others together.
                refused = {}
                for c in columns:
                    alone = check(read, table, v, want, dicts, [c])
                    if "error" in alone:
                        refused[c] = alone["error"]
                res["refused"] = refused
                rest = [c for c in columns if c not in refused]
                if refused and rest:
                    res["rest"] = check(read, table, v, want, dicts, rest)
            results[name][str(v)] = res
    out = {"versions": have, "results": results}
    try:
        dt = DeltaTable(table)
        out["delta_version"] = dt.version()
        # The flywheel type of each column, as the Delta schema's field metadata has it.
        out["field_types"] = {f.name: f.metadata.get("flywheel.type") for f in dt.schema().fields}
        # Each Delta version's commitInfo as deltalake reports it: flywheel's part.
        out["history"] = {str(c.get("version")): c.get("flywheel") for c in dt.history()}
    except Exception as e:  # a log deltalake refuses (reported; the tests say which)
        out["delta_error"] = f"{type(e).__name__}: {e}"
    json.dump(out, sys.stdout, default=str)


main()
