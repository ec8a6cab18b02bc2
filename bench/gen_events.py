#!/usr/bin/env python3
"""Writes N engagement events as JSON lines of about 300 bytes each (deterministic)."""
import json
import random
import sys

def main() -> None:
    n = int(sys.argv[1])
    path = sys.argv[2]
    rng = random.Random(42)
    types = ["play", "pause", "finish", "click", "seek"]
    devices = ["ios", "android", "web", "tv"]
    with open(path, "w") as f:
        for i in range(n):
            ev = {
                "id": i,
                "event_id": f"{rng.getrandbits(64):016x}-{rng.getrandbits(32):08x}",
                "user_id": f"user-{rng.randrange(1_000_000):07d}",
                "content_id": f"content-{rng.randrange(50_000):05d}",
                "event_type": types[rng.randrange(len(types))],
                "event_ts": f"2024-05-01T{(i // 3600000) % 24:02d}:{(i // 60000) % 60:02d}:{(i // 1000) % 60:02d}.{i % 1000:03d}Z",
                "duration_ms": rng.randrange(0, 600_000),
                "device": devices[rng.randrange(len(devices))],
                "app_version": f"5.{rng.randrange(20)}.{rng.randrange(100)}",
                "session_id": f"sess-{rng.getrandbits(48):012x}",
                "referrer": f"https://example.com/c/{rng.randrange(10_000)}?utm_source=push",
            }
            f.write(json.dumps(ev, separators=(",", ":")))
            f.write("\n")

if __name__ == "__main__":
    main()
