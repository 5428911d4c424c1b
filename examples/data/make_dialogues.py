"""Generates examples/data/dialogues.parquet: 500 short synthetic support dialogues.

Deterministic (seeded), so the file in the repository can be rebuilt byte for byte:
    .venv/bin/python examples/data/make_dialogues.py
The benchmarks make larger tables of the same kind:
    .venv/bin/python examples/data/make_dialogues.py --rows 1000000 --out /tmp/dialogues-1m.parquet
"""

import argparse
import os
import random

import pyarrow as pa
import pyarrow.parquet as pq

TOPICS = {
    "billing": ["Why was I charged twice this month?", "Can I get an invoice for March?", "How do I change my card?"],
    "shipping": ["Where is my parcel?", "Can you ship to Norway?", "My order arrived damaged."],
    "account": ["I forgot my password.", "How do I delete my account?", "Can I change my username?"],
    "product": ["Does the kettle work at 110 V?", "Is the blue model back in stock?", "What is the warranty?"],
}
ANSWERS = [
    "Thanks for reaching out. I have looked into it: {detail}",
    "Sorry about that! {detail}",
    "Good question. {detail}",
]
DETAILS = [
    "it is fixed now and you will get an email confirmation.",
    "I have opened a ticket and a colleague will follow up within a day.",
    "you can do this yourself under Settings, then Account.",
    "the answer is yes, and there is no extra fee.",
]
FOLLOW_UPS = ["Thanks! One more thing: how long does that take?", "Great, and is there a fee?", "Perfect, thank you."]


def dialogue(rng, i):
    topic = rng.choice(sorted(TOPICS))
    turns = [{"role": "user", "text": rng.choice(TOPICS[topic])}]
    for _ in range(rng.randint(1, 3)):
        turns.append({"role": "assistant", "text": rng.choice(ANSWERS).format(detail=rng.choice(DETAILS))})
        if rng.random() < 0.6:
            turns.append({"role": "user", "text": rng.choice(FOLLOW_UPS)})
    return {"id": i, "topic": topic, "turns": turns}


def main():
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dialogues.parquet")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500)
    parser.add_argument("--out", default=here)
    parser.add_argument("--row-group-size", type=int, default=100)
    args = parser.parse_args()
    rng = random.Random(42)
    schema = pa.schema(
        [
            ("id", pa.int64()),
            ("topic", pa.string()),
            ("turns", pa.list_(pa.struct([("role", pa.string()), ("text", pa.string())]))),
        ]
    )
    # Written a slice at a time, so a million dialogues never sit in memory as Python objects.
    step = 100_000
    with pq.ParquetWriter(args.out, schema, compression="snappy") as w:
        for start in range(0, args.rows, step):
            rows = [dialogue(rng, i) for i in range(start, min(start + step, args.rows))]
            w.write_table(pa.Table.from_pylist(rows, schema=schema), row_group_size=args.row_group_size)
    print(f"wrote {args.out}: {args.rows} dialogues")


if __name__ == "__main__":
    main()
