"""A mapper for the exploration tests: from an `id` it makes a row with numbers (some null),
strings, lists, a JSON value, a categorical label, a boolean and a tiny PNG. Deterministic."""

import json

PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000") + bytes(range(40))
LABELS = ["cat", "dog", "bird", "fish", "cow"]


class ExploreRows:
    def __call__(self, row):
        i = int(row["id"])
        k = (i * 7919) % 1000
        yield {
            "id": i,
            "score": None if i % 11 == 0 else (k - 500) / 8.0,
            "count": k % 97,
            "name": "n" * (1 + i % 13) + str(i),
            "tags": [LABELS[(i + j) % 5] for j in range(i % 4)],
            "meta": json.dumps({"turns": [{"who": "user", "text": f"hello {i}"},
                                          {"who": "bot", "text": f"reply {k}", "tags": ["a", str(i % 3)]}],
                                "depth": {"x": {"y": i % 5}}}),
            "label": None if i % 17 == 0 else LABELS[(i * i) % 5],
            "flag": i % 3 == 0,
            "image": PNG + bytes([i % 256]),
        }
