#!/usr/bin/env python3
"""Writes N click-stream events (seed 000's shape) as JSON lines of about 300 bytes (deterministic).

Every other event is a search; searches go to users 0, 1, 2, ... in turn, so N events hold the latest
search of N/2 distinct users (2,000,000 events: 1,000,000 users). Clicks come from random users of the
same range. Event time advances 1 ms per event with up to 1.5 s of out-of-orderness.
"""
import datetime
import json
import random
import sys

def main() -> None:
    n = int(sys.argv[1])
    path = sys.argv[2]
    users = max(1, n // 2)
    rng = random.Random(7)
    base = 1_723_474_087_000
    devices = ["desktop", "mobile", "tablet"]
    browsers = ["chrome", "firefox", "safari", "edge"]
    queries = ["running shoes", "laptop stand", "coffee grinder", "desk lamp", "usb-c hub", "yoga mat"]
    with open(path, "w") as f:
        for i in range(n):
            ts = base + i - rng.randrange(1500)
            search = i % 2 == 0
            user = (i // 2) % users if search else rng.randrange(users)
            sec, ms = divmod(ts, 1000)
            stamp = datetime.datetime.fromtimestamp(sec, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
            ev = {
                "eventTime": f"{stamp}.{ms:03d}Z",
                "userId": f"user-{user:07d}",
                "clickId": f"{rng.getrandbits(64):016x}-{rng.getrandbits(32):08x}",
                "eventType": "search" if search else "product_click",
                "searchId": f"{rng.getrandbits(64):016x}-{rng.getrandbits(48):012x}" if search else None,
                "productId": None if search else f"product_{rng.randrange(100_000)}",
                "query": queries[rng.randrange(len(queries))] if search else None,
                "referrer": "google.com" if search else "search_results",
                "sessionId": f"sess-{rng.getrandbits(48):012x}",
                "metadata": {"device": devices[rng.randrange(3)], "browser": browsers[rng.randrange(4)]},
            }
            f.write(json.dumps(ev, separators=(",", ":")))
            f.write("\n")

if __name__ == "__main__":
    main()
