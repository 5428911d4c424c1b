"""Baseline: what a careful user writes by hand — multiprocessing.Pool(N) over the input's row
groups, each task reading its row group with pyarrow, mapping it, writing its own Parquet part.

    python pool.py INPUT OUTPUT_DIR FILE.py:NAME N
"""

import multiprocessing as mp
import os
import sys

import pyarrow as pa
import pyarrow.parquet as pq

from common import load_mapper, map_rows

_state = {}


def init(src, spec):
    _state["file"] = pq.ParquetFile(src)
    _state["mapper"] = load_mapper(spec)


def work(args):
    group, dst = args
    rows = _state["file"].read_row_group(group).to_pylist()
    out = map_rows(_state["mapper"], rows)
    pq.write_table(pa.Table.from_pylist(out), os.path.join(dst, f"part-{group:06}.parquet"))
    return len(out)


def main():
    src, dst, spec, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    os.makedirs(dst, exist_ok=True)
    groups = pq.ParquetFile(src).metadata.num_row_groups
    with mp.Pool(n, initializer=init, initargs=(src, spec)) as pool:
        total = sum(pool.imap(work, [(g, dst) for g in range(groups)]))
    print(total)


main()
