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
    out = []
    # A batch at a time, as a careful user would (the whole table as Python objects is slower).
    for batch in table.to_batches(max_chunksize=10_000):
        out.extend(map_rows(mapper, batch.to_pylist()))
    pq.write_table(pa.Table.from_pylist(out), dst)


main()
