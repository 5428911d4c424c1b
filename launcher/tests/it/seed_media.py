"""A mapper yielding the seed's multimodal schema: tiny real PNG, WAV and MP4 bytes, JSON, fp16
vectors of length 1536. `expected(i)` is also used by the test to check what was stored."""

import struct
import zlib


def png(i):
    raw = b"\x00" + bytes([i % 256, (i * 7) % 256, 200])  # one RGB pixel, filter byte 0
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def wav(i, n=8):
    data = bytes((i + k) % 256 for k in range(n))
    fmt = struct.pack("<HHIIHH", 1, 1, 8000, 8000, 1, 8)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def mp4(i):
    ftyp = b"ftypisom" + struct.pack(">I", 512) + b"isomiso2mp41"
    mdat = b"mdat" + bytes([i % 256]) * 4
    return struct.pack(">I", len(ftyp) + 4) + ftyp + struct.pack(">I", len(mdat) + 4) + mdat


def expected(i):
    return {
        "video": mp4(i) if i % 2 else png(i),  # the seed types the column as image; odd rows test the check
        "file_metadata": {"source": f"clip-{i}", "tags": ["a", "b"][: i % 3], "fps": 25.0},
        "duration_sec": i,
        "audio_tracks": {"en": wav(i), "de": wav(i + 1)},
        "human_scenes": [{"from_sec": 0, "to_sec": i}, {"from_sec": i, "to_sec": i + 5}],
        "human_embeddings": [[((i + k) % 64) * 0.25 for k in range(1536)]],
    }


class SeedMedia:
    def __init__(self, bad_video="no"):
        self.bad_video = bad_video == "yes"

    def __call__(self, row):
        i = row["id"]
        out = expected(i)
        if not self.bad_video:
            out["video"] = png(i)
        yield out
