#!/usr/bin/env python3
"""Readiness probe for a Kafka-protocol broker, standard library only.

Usage: kafka_ping.py HOST:PORT

Sends ApiVersions v0, then a Metadata request (a non-flexible version, 4..8, that the broker
supports) for all topics, and exits 0 only when the broker answers with at least one broker
entry. Prints the brokers and cluster id it saw.
"""
import socket
import struct
import sys


def request(sock, api_key, api_version, corr, body=b""):
    client = b"sluice-ping"
    header = struct.pack(">hhih", api_key, api_version, corr, len(client)) + client
    msg = header + body
    sock.sendall(struct.pack(">i", len(msg)) + msg)
    size = struct.unpack(">i", recv_exact(sock, 4))[0]
    data = recv_exact(sock, size)
    got = struct.unpack(">i", data[:4])[0]
    if got != corr:
        raise RuntimeError(f"correlation id {got} != {corr}")
    return data[4:]


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise RuntimeError("connection closed")
        buf += chunk
    return buf


class Reader:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, fmt):
        size = struct.calcsize(fmt)
        vals = struct.unpack(fmt, self.data[self.pos:self.pos + size])
        self.pos += size
        return vals[0] if len(vals) == 1 else vals

    def string(self):
        n = self.take(">h")
        if n < 0:
            return None
        s = self.data[self.pos:self.pos + n].decode()
        self.pos += n
        return s


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.settimeout(5)
        r = Reader(request(sock, 18, 0, 1))
        err = r.take(">h")
        if err != 0:
            raise SystemExit(f"ApiVersions error {err}")
        ranges = {}
        for _ in range(r.take(">i")):
            key, lo, hi = r.take(">hhh")
            ranges[key] = (lo, hi)
        lo, hi = ranges.get(3, (0, -1))
        version = min(hi, 8)
        if version < max(lo, 4):
            raise SystemExit(f"no usable Metadata version (broker supports {lo}..{hi})")
        # Metadata v4..v8: topics = null (all), allow_auto_topic_creation = false
        # (v8 adds include_cluster/topic_authorized_operations).
        body = struct.pack(">ib", -1, 0)
        if version >= 8:
            body += struct.pack(">bb", 0, 0)
        r = Reader(request(sock, 3, version, 2, body))
        r.take(">i")  # throttle_time_ms
        brokers = []
        for _ in range(r.take(">i")):
            node = r.take(">i")
            bhost = r.string()
            bport = r.take(">i")
            r.string()  # rack
            brokers.append(f"{node}@{bhost}:{bport}")
        cluster = r.string()
        if not brokers:
            raise SystemExit("metadata lists no brokers yet")
        print(f"cluster={cluster} brokers={','.join(brokers)} metadata_version={version}")


if __name__ == "__main__":
    try:
        main()
    except (OSError, RuntimeError, struct.error) as e:
        raise SystemExit(f"kafka_ping: {e}")
