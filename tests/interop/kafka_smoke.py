#!/usr/bin/env python3
"""Smoke check of the brokers that scripts/services/up starts, with confluent-kafka.

Usage: kafka_smoke.py --bootstrap B [--tansu]
  Apache Kafka (default): a 3-partition topic via the admin API, produce/consume across the
  partitions, and a transactional producer whose aborted records a read_committed consumer must not
  see while it sees the committed ones.
  --tansu: plain produce/consume only (Tansu returns aborted records to read_committed readers).
Prints one line per check; exits 1 on the first failure.
"""
import argparse
import sys
import time
import uuid

from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AdminClient, NewTopic


def fail(msg):
    print(f"FAIL: {msg}")
    sys.exit(1)


def consume(bootstrap, topic, isolation, want, timeout=30.0):
    """Values read from the beginning until `want` arrive (or the timeout), then 1 s more to catch extras."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"smoke-{uuid.uuid4()}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                  "isolation.level": isolation, "session.timeout.ms": 2000, "heartbeat.interval.ms": 500})
    c.subscribe([topic])
    out, parts = [], set()
    deadline = time.monotonic() + timeout
    settle = None
    try:
        while time.monotonic() < deadline and (settle is None or time.monotonic() < settle):
            m = c.poll(0.2)
            if m is None:
                continue
            if m.error():
                if m.error().code() != KafkaError._PARTITION_EOF:
                    print(f"  consumer: {m.error()}", file=sys.stderr)
                continue
            out.append(m.value().decode())
            parts.add(m.partition())
            if len(out) >= want and settle is None:
                settle = time.monotonic() + 1.0
    finally:
        c.close()
    return out, parts


def produce(bootstrap, topic, values, partitioned=False):
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for i, v in enumerate(values):
        p.produce(topic, key=str(i).encode(), value=v.encode(), partition=i % 3 if partitioned else -1)
    if p.flush(30):
        fail("produce: undelivered records")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--tansu", action="store_true")
    args = ap.parse_args()
    b = args.bootstrap
    run = uuid.uuid4().hex[:8]

    if args.tansu:
        topic = f"smoke-tansu-{run}"
        produce(b, topic, [f"t{i}" for i in range(10)])
        got, _ = consume(b, topic, "read_uncommitted", 10)
        if sorted(got) != sorted(f"t{i}" for i in range(10)):
            fail(f"tansu produce/consume: got {got}")
        print(f"ok: tansu produce/consume of 10 records on {topic}")
        return

    admin = AdminClient({"bootstrap.servers": b})
    topic = f"smoke-parts-{run}"
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])[topic].result(30)
    n = len(admin.list_topics(topic, timeout=10).topics[topic].partitions)
    if n != 3:
        fail(f"{topic} has {n} partitions")
    print(f"ok: created {topic} with 3 partitions")
    values = [f"v{i}" for i in range(30)]
    produce(b, topic, values, partitioned=True)
    got, parts = consume(b, topic, "read_uncommitted", 30)
    if sorted(got) != sorted(values) or parts != {0, 1, 2}:
        fail(f"produce/consume: {len(got)} records from partitions {parts}")
    print("ok: 30 records produced and consumed across partitions 0,1,2")

    topic = f"smoke-txn-{run}"
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(30)
    p = Producer({"bootstrap.servers": b, "transactional.id": f"smoke-{run}"})
    p.init_transactions(30)
    p.begin_transaction()
    for i in range(5):
        p.produce(topic, value=f"aborted{i}".encode())
    p.flush(30)
    p.abort_transaction(30)
    p.begin_transaction()
    for i in range(5):
        p.produce(topic, value=f"committed{i}".encode())
    p.commit_transaction(30)
    committed, _ = consume(b, topic, "read_committed", 5)
    if sorted(committed) != [f"committed{i}" for i in range(5)]:
        fail(f"read_committed saw {committed}")
    print("ok: read_committed sees the 5 committed records and none of the 5 aborted")
    uncommitted, _ = consume(b, topic, "read_uncommitted", 10)
    if len(uncommitted) != 10:
        fail(f"read_uncommitted saw {len(uncommitted)} records, expected 10 (5 aborted + 5 committed)")
    print("ok: read_uncommitted sees all 10 (aborted included), so the filter above is real")


if __name__ == "__main__":
    main()
