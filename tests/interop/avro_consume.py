#!/usr/bin/env python3
"""Read N Avro records from the beginning of a topic with confluent-kafka's AvroDeserializer
(writer schema from the registry) and print each record's value as one JSON line
(timestamps, dates, decimals and uuids as strings, bytes as base64).

Usage: avro_consume.py --bootstrap B --registry URL --topic T --count N
                       [--isolation read_committed] [--timeout S] [--registry-auth user:pass]
Exits 1 when fewer than N records arrive within the timeout. A fresh group id every run.
Run with $SLUICE_TEST_PYTHON (the venv from scripts/services/up).
"""
import argparse
import sys
import time
import uuid

from confluent_kafka import Consumer, KafkaError
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from avro_common import dumps, registry_conf


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--registry", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--isolation", choices=["read_uncommitted", "read_committed"], default="read_uncommitted")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds (default 30)")
    ap.add_argument("--registry-auth", help="user:pass (default: $SCHEMA_REGISTRY_BASIC_AUTH)")
    # Tansu's first group join waits half the session timeout; Apache Kafka from
    # scripts/services/kafka allows 2000 ms (group.min.session.timeout.ms=1000).
    ap.add_argument("--session-timeout-ms", type=int, default=2000)
    args = ap.parse_args()

    registry = SchemaRegistryClient(registry_conf(args.registry, args.registry_auth))
    deserializer = AvroDeserializer(registry)
    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": f"avro-consume-{uuid.uuid4()}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "isolation.level": args.isolation,
        "session.timeout.ms": args.session_timeout_ms,
        "heartbeat.interval.ms": max(100, args.session_timeout_ms // 4),
    })
    consumer.subscribe([args.topic])
    ctx = SerializationContext(args.topic, MessageField.VALUE)
    got = 0
    deadline = time.monotonic() + args.timeout
    try:
        while got < args.count and time.monotonic() < deadline:
            msg = consumer.poll(min(0.5, max(0.0, deadline - time.monotonic())))
            if msg is None:
                continue
            if msg.error():
                # A topic that does not exist yet is not fatal: it may be created before the timeout.
                if msg.error().code() not in (KafkaError._PARTITION_EOF, KafkaError.UNKNOWN_TOPIC_OR_PART):
                    print(f"avro_consume: {msg.error()}", file=sys.stderr)
                continue
            print(dumps(deserializer(msg.value(), ctx)), flush=True)
            got += 1
    finally:
        consumer.close()
    if got < args.count:
        print(f"avro_consume: only {got} of {args.count} records from {args.topic} within {args.timeout}s",
              file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
