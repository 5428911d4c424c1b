"""A mapper for the viewer's tests: the seed's multimodal columns (PNG image, WAV audio, MP4
video, JSON, list<struct>, list<vector<1536, fp16>>) with ids shifted by `offset`, so two
versions differ on their first page."""

import struct
import zlib

from seed_media import mp4, wav


def png(i, size=24):
    """A size x size RGB gradient, tinted by i."""
    rows = b"".join(
        b"\x00" + bytes(v for x in range(size) for v in (x * 10 % 256, y * 10 % 256, (i * 37) % 256))
        for y in range(size)
    )

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


class ViewMedia:
    def __init__(self, offset="0"):
        self.offset = int(offset)

    def __call__(self, row):
        i = row["id"] + self.offset
        yield {
            "id": i,
            "image": png(i),
            "audio": wav(i, 800),
            "video": mp4(i),
            "meta": {"source": f"clip-{i}", "tags": ["a", "b"][: i % 3], "camera": {"lens": "wide", "fps": 25.0}},
            "scenes": [{"from_sec": 0, "to_sec": i % 50}, {"from_sec": i % 50, "to_sec": i % 50 + 5}],
            "emb": [[((i + k) % 64) * 0.25 for k in range(1536)]],
            "caption": f"clip {i}: " + "a long caption " * (i % 4 * 10),
        }
