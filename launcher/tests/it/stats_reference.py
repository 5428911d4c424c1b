"""Column statistics of a flywheel table version computed with pyarrow alone (the manifest read
as plain JSON, its files with pyarrow), in the shape of `flywheel table stats --json`."""

import json
import os
import sys

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq


def main():
    table, version = sys.argv[1], int(sys.argv[2])
    with open(os.path.join(table, "_versions", f"{version:020}.json")) as f:
        manifest = json.load(f)
    t = pa.concat_tables([pq.read_table(os.path.join(table, e["path"])) for e in manifest["files"]])
    out = []
    for name in t.column_names:
        col = t.column(name).combine_chunks()
        ty = col.type
        c = {"name": name, "count": len(col), "nulls": col.null_count}
        valid = pc.drop_null(col)
        if pa.types.is_integer(ty) or pa.types.is_floating(ty):
            mm = pc.min_max(col)
            c["min"] = mm["min"].as_py()
            c["max"] = mm["max"].as_py()
            c["mean"] = pc.mean(col).as_py()
        if pa.types.is_string(ty):
            mm = pc.min_max(col)
            c["min"] = mm["min"].as_py()
            c["max"] = mm["max"].as_py()
        lengths = None
        if pa.types.is_string(ty):
            lengths = pc.utf8_length(valid)
        elif pa.types.is_binary(ty):
            lengths = pc.binary_length(valid)
        elif pa.types.is_list(ty) or pa.types.is_fixed_size_list(ty):
            lengths = pc.list_value_length(valid)
        if lengths is not None and len(lengths):
            c["min_length"] = pc.min(lengths).as_py()
            c["max_length"] = pc.max(lengths).as_py()
            c["mean_length"] = pc.mean(lengths).as_py()
        if not (pa.types.is_list(ty) or pa.types.is_fixed_size_list(ty) or pa.types.is_struct(ty)):
            c["distinct"] = pc.count_distinct(col, mode="only_valid").as_py()
            if pa.types.is_string(ty) or pa.types.is_integer(ty) or pa.types.is_boolean(ty):
                counts = pc.value_counts(valid).to_pylist()
                if c["distinct"] <= 10000 and c["distinct"] * 2 <= len(valid):
                    counts.sort(key=lambda vc: (-vc["counts"], vc["values"]))
                    c["top"] = [{"value": vc["values"], "count": vc["counts"]} for vc in counts[:10]]
        out.append(c)
    json.dump({"version": manifest["version"], "rows": t.num_rows, "columns": out}, sys.stdout)


main()
