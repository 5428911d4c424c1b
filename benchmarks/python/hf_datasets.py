"""Baseline: Hugging Face datasets — load the Parquet file, `map(batched=True, num_proc=N)` with
the same per-row function wrapped for batches, write Parquet.

    python hf_datasets.py INPUT OUTPUT FILE.py:NAME N CACHE_DIR
"""

import sys

import datasets

from common import load_mapper

_mapper = {}


def batched(spec):
    def fn(batch):
        if "m" not in _mapper:
            _mapper["m"] = load_mapper(spec)
        mapper = _mapper["m"]
        names = list(batch)
        n = len(batch[names[0]]) if names else 0
        out = {}
        for i in range(n):
            for r in mapper({k: batch[k][i] for k in names}):
                for k, v in r.items():
                    out.setdefault(k, []).append(v)
        return out

    return fn


def main():
    src, dst, spec, n, cache = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
    datasets.disable_progress_bars()
    ds = datasets.Dataset.from_parquet(src, cache_dir=cache)
    out = ds.map(batched(spec), batched=True, num_proc=n, remove_columns=ds.column_names)
    out.to_parquet(dst)


main()
