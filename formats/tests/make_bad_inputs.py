"""Writes the bad-input corpus in bad/ (committed; run again only to change it).

Each file is small and broken in one way; bad/EXPECTED.tsv says what error each one gives.
Needs pyarrow and h5py: `python make_bad_inputs.py`.
"""
import io
import os

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bad")
TABLE = pa.table({"id": pa.array(range(200), pa.int64()), "text": [f"row {i}" for i in range(200)]})
# Not random: the same garbage every time the corpus is made.
GARBAGE = bytes((i * 151 + 17) % 256 for i in range(700))


def put(name, data):
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(data)


def parquet_bytes():
    buf = io.BytesIO()
    pq.write_table(TABLE, buf, row_group_size=50)
    return buf.getvalue()


def arrow_bytes():
    buf = io.BytesIO()
    with ipc.new_file(buf, TABLE.schema) as w:
        for batch in TABLE.to_batches(max_chunksize=50):
            w.write_batch(batch)
    return buf.getvalue()


def h5_bytes(rows=200):
    path = os.path.join(HERE, ".tmp.h5")
    with h5py.File(path, "w") as f:
        f["g/id"] = np.arange(rows)
    with open(path, "rb") as f:
        data = f.read()
    os.remove(path)
    return data


def main():
    os.makedirs(HERE, exist_ok=True)
    p = parquet_bytes()
    put("empty.parquet", b"")
    put("garbage.parquet", GARBAGE)
    put("truncated.parquet", p[: len(p) // 2])
    # The magic, then only the last 8 bytes (footer length and magic): the footer it announces is
    # longer than the file.
    put("footer_only.parquet", b"PAR1" + p[-8:])
    # A whole file whose footer (metadata) is overwritten with 0xff.
    bad_footer = bytearray(p)
    bad_footer[-20:-8] = b"\xff" * 12
    put("bad_footer.parquet", bytes(bad_footer))
    put("magic_only.parquet", b"PAR1")
    # A schema and no rows, in one empty row group or in none: refused when it is the whole input.
    buf = io.BytesIO()
    pq.write_table(TABLE.slice(0, 0), buf)
    put("no_rows.parquet", buf.getvalue())
    buf = io.BytesIO()
    with pq.ParquetWriter(buf, TABLE.schema):
        pass
    put("no_row_groups.parquet", buf.getvalue())
    a = arrow_bytes()
    put("empty.arrow", b"")
    put("garbage.arrow", GARBAGE)
    put("truncated.arrow", a[: len(a) // 2])
    buf = io.BytesIO()
    with ipc.new_file(buf, TABLE.schema):
        pass
    put("no_batches.arrow", buf.getvalue())
    buf = io.BytesIO()
    with ipc.new_stream(buf, TABLE.schema) as w:
        w.write_table(TABLE)
    put("stream.arrow", buf.getvalue())
    h = h5_bytes()
    put("garbage.h5", GARBAGE)
    put("truncated.h5", h[: len(h) // 3])
    put("no_rows.h5", h5_bytes(0))
    put("bad_utf8.jsonl", b'{"id": 0, "text": "ok"}\n{"id": 1, "text": "caf\xe9"}\n')
    put("not_object.jsonl", b'{"id": 0}\n[1, 2, 3]\n{"id": 2}\n')
    put("not_json.jsonl", b'{"id": 0}\n{"id": 1, oops}\n')
    put("bad_utf8.csv", b"id,text\n0,ok\n1,caf\xe9\n")
    put("unclosed_quote.csv", b'id,text\n0,"never closed\n')
    put("quote_spans_lines.csv", b'id,text\n1,"one\ntwo"\n2,plain\n')
    put("ragged.csv", b"id,text\n0,a\n1,b,extra\n2\n")
    put("notes.txt", b"hello\n")
    # No rows: refused when they are the whole input (a glob with rows elsewhere is fine).
    put("empty.csv", b"")
    put("header_only.csv", b"id,text\n")
    put("empty.jsonl", b"")
    put("blank_lines.jsonl", b"\n   \n\n")
    # JSON that is not JSONL: a whole array on one line, a pretty-printed object.
    put("array.jsonl", b'[{"id": 0}, {"id": 1}]\n')
    put("pretty.jsonl", b'{\n  "id": 0\n}\n')


if __name__ == "__main__":
    main()
