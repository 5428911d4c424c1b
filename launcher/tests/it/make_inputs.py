"""Writes the same table in all five input formats: DIR/data.{parquet,jsonl,csv,arrow,h5}.
Usage: make_inputs.py DIR ROWS. Deterministic."""

import csv
import json
import os
import random
import sys

import pyarrow as pa
import pyarrow.parquet as pq


def main():
    out, n = sys.argv[1], int(sys.argv[2])
    rng = random.Random(7)
    words = ["alpha", "beta", "gamma", "delta", "needs, a comma", 'has "quotes"', "ünïcødé", ""]
    ids = list(range(n))
    scores = [round(rng.uniform(-1000, 1000), 6) for _ in ids]
    names = [f"{rng.choice(words)} {i}" for i in ids]
    table = pa.table({"id": pa.array(ids, pa.int64()), "score": pa.array(scores, pa.float64()), "name": pa.array(names, pa.string())})
    pq.write_table(table, os.path.join(out, "data.parquet"), row_group_size=7000)
    with open(os.path.join(out, "data.jsonl"), "w", encoding="utf-8") as f:
        for i, s, name in zip(ids, scores, names):
            f.write(json.dumps({"id": i, "score": s, "name": name}, ensure_ascii=False) + "\n")
    with open(os.path.join(out, "data.csv"), "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["id", "score", "name"])
        for row in zip(ids, scores, names):
            w.writerow(row)
    with pa.OSFile(os.path.join(out, "data.arrow"), "wb") as sink:
        with pa.ipc.new_file(sink, table.schema) as writer:
            for batch in table.to_batches(max_chunksize=3000):
                writer.write_batch(batch)
    try:
        import h5py
        import numpy as np
    except ImportError:
        return
    with h5py.File(os.path.join(out, "data.h5"), "w") as f:
        g = f.create_group("g")
        g.create_dataset("id", data=np.array(ids, dtype=np.int64))
        g.create_dataset("name", data=names, dtype=h5py.string_dtype())
        g.create_dataset("score", data=np.array(scores, dtype=np.float64))


main()
