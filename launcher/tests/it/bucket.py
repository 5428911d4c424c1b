"""Mappers for the query and rerun tests."""

import os
import random

WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta"]


class Bucket:
    """A group key with 37 values, a number and a word: for GROUP BY checks."""

    def __call__(self, row):
        i = int(row["id"])
        yield {"id": i, "bucket": (i * 31) % 37, "x": (i % 1000) * 0.25, "word": WORDS[(i * 13) % 7] + str(i % 50)}


class Seeded:
    """Random values drawn from the chunk's seed: the same on every rerun."""

    def begin_chunk(self, seed):
        self.rng = random.Random(seed)

    def __call__(self, row):
        yield {"id": int(row["id"]), "draw": self.rng.random()}


class Unseeded:
    """Different on every run."""

    def __call__(self, row):
        yield {"id": int(row["id"]), "noise": os.urandom(8).hex()}
