"""A mapper whose cost is concentrated in the first quarter of the rows: 1 ms of CPU each for
ids below `hot_rows`, nothing for the rest (the skew benchmark)."""

import time


class Skewed:
    def __init__(self, hot_rows="5000"):
        self.hot_rows = int(hot_rows)

    def __call__(self, row):
        if row["id"] < self.hot_rows:
            end = time.perf_counter() + 0.001
            while time.perf_counter() < end:
                pass
        yield {"id": row["id"], "topic": row["topic"]}
