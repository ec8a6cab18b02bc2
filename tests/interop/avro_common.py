"""Shared bits of avro_produce.py and avro_consume.py (run them with $SLUICE_TEST_PYTHON)."""
import base64
import datetime
import decimal
import json
import os
import uuid

# The default value schema: one field of each type sluice maps from Avro.
DEFAULT_SCHEMA = {
    "type": "record",
    "name": "InteropRecord",
    "namespace": "sluice.interop",
    "fields": [
        {"name": "name", "type": "string"},
        {"name": "note", "type": ["null", "string"], "default": None},
        {"name": "big", "type": "long"},
        {"name": "small", "type": "int"},
        {"name": "ratio", "type": "double"},
        {"name": "flag", "type": "boolean"},
        {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}},
        {"name": "id", "type": {"type": "string", "logicalType": "uuid"}},
    ],
}

EPOCH = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
UUID_NS = uuid.UUID("6ba7b811-9dad-11d1-80b4-00c04fd430c8")  # uuid.NAMESPACE_URL


def registry_conf(url, auth=None):
    """SchemaRegistryClient config; basic auth from --registry-auth or SCHEMA_REGISTRY_BASIC_AUTH."""
    conf = {"url": url}
    auth = auth or os.environ.get("SCHEMA_REGISTRY_BASIC_AUTH")
    if auth:
        conf["basic.auth.user.info"] = auth
    return conf


def value_for(schema, i, name="value", named=None):
    """A value of an Avro schema that depends only on the record index i (and the field name)."""
    named = {} if named is None else named
    if isinstance(schema, str):
        if schema in named:
            return value_for(named[schema], i, name, named)
        schema = {"type": schema}
    if isinstance(schema, list):  # union: null for every third record when allowed, else a branch
        branches = [b for b in schema if b != "null" and b != {"type": "null"}]
        if len(branches) < len(schema) and i % 3 == 0 or not branches:
            return None
        return value_for(branches[i % len(branches)], i, name, named)
    t, logical = schema["type"], schema.get("logicalType")
    if isinstance(t, (dict, list)):
        return value_for(t, i, name, named)
    if t in ("record", "error"):
        named[schema["name"]] = schema
        if "namespace" in schema:
            named[schema["namespace"] + "." + schema["name"]] = schema
        return {f["name"]: value_for(f["type"], i, f["name"], named) for f in schema["fields"]}
    if t in ("enum", "fixed"):
        named[schema["name"]] = schema
    if logical == "decimal" and t in ("bytes", "fixed"):
        scale = schema.get("scale", 0)
        unscaled = (i * 12345 + 67) % 10 ** min(schema["precision"], 9)  # fits the precision
        return decimal.Decimal(-unscaled if i % 2 else unscaled).scaleb(-scale)
    if logical == "uuid":
        return str(uuid.uuid5(UUID_NS, f"sluice/{name}/{i}"))
    if logical == "timestamp-millis":
        return EPOCH + datetime.timedelta(seconds=i * 61, milliseconds=i * 7 % 1000)
    if logical == "timestamp-micros":
        return EPOCH + datetime.timedelta(seconds=i * 61, microseconds=i * 7001 % 1_000_000)
    if logical == "date":
        return (EPOCH + datetime.timedelta(days=i)).date()
    if t == "null":
        return None
    if t == "boolean":
        return i % 2 == 0
    if t == "int":
        return i * 7 - 3
    if t == "long":
        return i * 1_000_000_007 * (-1 if i % 2 else 1)
    if t in ("float", "double"):
        return i * 1.5 + 0.25
    if t == "string":
        return f"{name}-{i}"
    if t == "bytes":
        return f"{name}-{i}".encode()
    if t == "fixed":
        return (f"{name}-{i}".encode() * schema["size"])[: schema["size"]]
    if t == "enum":
        return schema["symbols"][i % len(schema["symbols"])]
    if t == "array":
        return [value_for(schema["items"], i * 10 + k, name, named) for k in range(i % 3)]
    if t == "map":
        return {f"k{k}": value_for(schema["values"], i * 10 + k, name, named) for k in range(i % 3)}
    raise ValueError(f"unsupported Avro type {t!r}")


def to_json(value):
    """A decoded Avro value as JSON-able data: datetime, date, decimal and uuid as strings."""
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, datetime.datetime):
        return value.isoformat(timespec="milliseconds" if value.microsecond % 1000 == 0 else "microseconds")
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (decimal.Decimal, uuid.UUID)):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return value


def dumps(value):
    return json.dumps(to_json(value), ensure_ascii=False)
