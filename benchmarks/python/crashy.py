"""expand_dialogue with injected failures: the mapper process dies (os._exit) half-way through
the first attempt of every `every`-th chunk (the failures benchmark; every=0 never crashes, the
clean run's mapper, so both runs pay the same per-row bookkeeping). Markers in `marks` remember
which chunks already crashed once."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples"))
from expand_dialogue import ExpandDialogue  # noqa: E402


class Crashy(ExpandDialogue):
    def __init__(self, marks, chunk_rows, every="10"):
        super().__init__()
        self.marks, self.half, self.every = marks, int(chunk_rows) // 2, int(every)
        self.chunk, self.seen = None, 0

    def __call__(self, row):
        chunk = int(os.environ.get("FLYWHEEL_CHUNK", "0"))
        if chunk != self.chunk:
            self.chunk, self.seen = chunk, 0
        self.seen += 1
        if self.every and chunk % self.every == 0 and self.seen == self.half:
            mark = os.path.join(self.marks, f"crashed-{chunk}")
            if not os.path.exists(mark):
                open(mark, "w").close()
                os._exit(17)
        yield from super().__call__(row)
