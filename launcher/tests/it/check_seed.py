"""Checks a table written by seed_media.py with pyarrow alone, column by column.
Usage: check_seed.py TABLE N"""

import json
import os
import sys

import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from seed_media import expected, png  # noqa: E402

table, n = sys.argv[1], int(sys.argv[2])
vdir = os.path.join(table, "_versions")
manifest = json.load(open(os.path.join(vdir, sorted(x for x in os.listdir(vdir) if x.endswith(".json") and not x.startswith("."))[-1])))
t = pa.concat_tables([pq.read_table(os.path.join(table, f["path"])) for f in manifest["files"]])
assert t.num_rows == n == manifest["num_rows"], (t.num_rows, n, manifest["num_rows"])
schema = t.schema
meta = {f.name: (f.metadata or {}).get(b"flywheel.type", b"").decode() for f in schema}
assert meta == {
    "video": "image",
    "file_metadata": "json",
    "duration_sec": "int",
    "audio_tracks": "dict<str, audio>",
    "human_scenes": "list<from_sec: int, to_sec: int>",
    "human_embeddings": "list<vector<1536, fp16>>",
}, meta
emb_type = str(schema.field("human_embeddings").type)
assert emb_type == "list<item: fixed_size_list<item: halffloat not null>[1536] not null>", emb_type
assert schema.field("video").type == pa.binary()
cols = {name: t.column(name).to_pylist() for name in schema.names}
for r in range(n):
    want = expected(r)
    assert cols["video"][r] == png(r), f"row {r}: video"
    assert json.loads(cols["file_metadata"][r]) == want["file_metadata"], f"row {r}: file_metadata"
    assert cols["duration_sec"][r] == want["duration_sec"]
    assert dict(cols["audio_tracks"][r]) == want["audio_tracks"], f"row {r}: audio_tracks"
    assert cols["human_scenes"][r] == want["human_scenes"], f"row {r}: human_scenes"
    emb = [[float(x) for x in v] for v in cols["human_embeddings"][r]]
    assert emb == want["human_embeddings"], f"row {r}: human_embeddings"
print(json.dumps({"ok": True, "rows": n}))
