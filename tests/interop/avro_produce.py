#!/usr/bin/env python3
"""Produce N Avro records through a Confluent-API schema registry with confluent-kafka's
AvroSerializer (subject {topic}-value, auto-registered). Record i's values depend only on i.

Usage: avro_produce.py --bootstrap B --registry URL --topic T --count N [--schema-file F]
                       [--registry-auth user:pass]
Prints one summary line. Run with $SLUICE_TEST_PYTHON (the venv from scripts/services/up).
"""
import argparse
import json
import sys

from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from avro_common import DEFAULT_SCHEMA, registry_conf, value_for


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--registry", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--schema-file", help="Avro schema (.avsc) of the values; default: a record of "
                                          "string, nullable string, long, int, double, boolean, "
                                          "timestamp-millis, date, decimal(10,2), uuid")
    ap.add_argument("--registry-auth", help="user:pass (default: $SCHEMA_REGISTRY_BASIC_AUTH)")
    args = ap.parse_args()

    if args.schema_file:
        with open(args.schema_file) as f:
            schema = json.load(f)
    else:
        schema = DEFAULT_SCHEMA
    registry = SchemaRegistryClient(registry_conf(args.registry, args.registry_auth))
    serializer = AvroSerializer(registry, json.dumps(schema))
    producer = Producer({"bootstrap.servers": args.bootstrap, "enable.idempotence": True,
                         "acks": "all", "linger.ms": 5})
    ctx = SerializationContext(args.topic, MessageField.VALUE)
    errors = []

    def delivered(err, msg):
        if err is not None:
            errors.append(err)

    schema_id = None
    for i in range(args.count):
        value = serializer(value_for(schema, i), ctx)
        schema_id = int.from_bytes(value[1:5], "big")  # Confluent framing: magic 0, 4-byte id
        while True:
            try:
                producer.produce(args.topic, key=str(i).encode(), value=value, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    remaining = producer.flush(60)
    if remaining or errors:
        print(f"avro_produce: {remaining} undelivered, {len(errors)} failed: {errors[:3]}", file=sys.stderr)
        sys.exit(1)
    print(f"produced {args.count} records to {args.topic} (subject {args.topic}-value, schema id {schema_id})")


if __name__ == "__main__":
    main()
