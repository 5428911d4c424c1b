"""Baseline: the mapper in a plain Python loop over the input read with pyarrow, written back
with pyarrow. One process; optionally only rows [start, end) (a static split's share).

    python plain_loop.py INPUT OUTPUT FILE.py:NAME [START END]
"""

import sys

import pyarrow as pa
import pyarrow.parquet as pq

from common import load_mapper, map_rows


def main():
    src, dst, spec = sys.argv[1:4]
    mapper = load_mapper(spec)
    table = pq.read_table(src)
    if len(sys.argv) > 5:
        start, end = int(sys.argv[4]), int(sys.argv[5])
        table = table.slice(start, end - start)
    # A batch at a time, written as it goes, as a careful user would (holding every output row as
    # a Python object until the end is much slower).
    writer = None
    for batch in table.to_batches(max_chunksize=10_000):
        out = pa.Table.from_pylist(map_rows(mapper, batch.to_pylist()))
        if writer is None:
            writer = pq.ParquetWriter(dst, out.schema)
        writer.write_table(out.cast(writer.schema))
    if writer is not None:
        writer.close()


main()
