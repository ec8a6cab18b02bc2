#!/usr/bin/env python3
"""A small Confluent Schema Registry test double (REST subset), Python standard library only.

It is a test double, not a registry: state lives in memory and is gone when the process stops.

Implemented (paths and JSON shapes as Confluent's, Content-Type application/vnd.schemaregistry.v1+json):

  GET    /                                     {}
  GET    /schemas/types                        ["AVRO", "JSON", "PROTOBUF"]
  POST   /subjects/{s}/versions                register -> {"id": N}
  POST   /subjects/{s}                         look a schema up in a subject (?deleted=true)
  GET    /schemas/ids/{id}                     {"schema": "..."} (?subject= accepted; no contexts)
  GET    /schemas/ids/{id}/schema              the schema itself
  GET    /schemas/ids/{id}/subjects            subjects that use the id
  GET    /schemas/ids/{id}/versions            [{"subject": s, "version": v}]
  GET    /subjects                             (?deleted=true)
  GET    /subjects/{s}/versions                (?deleted=true)
  GET    /subjects/{s}/versions/{n|latest|-1}  (?deleted=true), and .../schema for the schema itself
  DELETE /subjects/{s}                         soft delete, or ?permanent=true after a soft delete
  DELETE /subjects/{s}/versions/{n|latest}     the same for one version
  GET    /config, PUT /config                  global compatibility level
  GET    /config/{s}, PUT /config/{s}, DELETE /config/{s}   (?defaultToGlobal=true on GET)

Semantics kept from Confluent:
  * Schema ids are global and increase monotonically from 1. The same schema (same type, same text
    after canonicalisation, same references) gets the same id in every subject that registers it.
  * Registering a schema the subject already has (a live version) returns the existing id and adds
    no version. Versions in a subject count up from 1; soft-deleted versions keep their numbers.
  * Schema text of AVRO and JSON schemas is canonicalised as JSON (parsed, keys sorted, no
    whitespace) to compare schemas; the text returned is the registered JSON made compact (key
    order kept). PROTOBUF text is compared as is.
  * Errors: {"error_code": 40401, "message": "Subject 'x' not found."} and the like, with the HTTP
    status Confluent uses (404, 422, 401, 500).

Not implemented, on purpose:
  * Compatibility is stored and returned but NEVER CHECKED: every registration succeeds whatever
    the level. There is no /compatibility endpoint.
  * No /associations endpoints: they answer 404, which confluent-kafka's (de)serializers take as
    "no association" before falling back to the topic name strategy, as with an older registry.
  * No schema GUIDs (/schemas/guids) and no "guid" in responses.
  * No contexts, modes, import mode, exporters, data-contract rules or metadata (such fields in a
    request are ignored), no schema normalisation beyond the canonical JSON above, no validation of
    AVRO beyond "it is JSON that looks like an Avro schema".

Optional HTTP basic auth: with SCHEMA_REGISTRY_BASIC_AUTH=user:pass in the environment every
request must carry those credentials (401 otherwise).

Usage: schema_registry.py [--host 127.0.0.1] [--port 18081]
"""
import argparse
import base64
import hmac
import json
import os
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
SCHEMA_TYPES = ("AVRO", "JSON", "PROTOBUF")
LEVELS = ("NONE", "BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL",
          "FULL_TRANSITIVE")
AVRO_PRIMITIVES = ("null", "boolean", "int", "long", "float", "double", "bytes", "string")
MAX_VERSION = 2**31 - 1


class ApiError(Exception):
    def __init__(self, status, code, message):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def subject_not_found(s):
    return ApiError(404, 40401, f"Subject '{s}' not found.")


def version_not_found(v):
    return ApiError(404, 40402, f"Version {v} not found.")


def schema_not_found(detail="Schema not found"):
    return ApiError(404, 40403, detail)


class Schema:
    """One registered schema (global id) in its stored form."""

    def __init__(self, sid, schema_type, text, references, key):
        self.id, self.type, self.text, self.references, self.key = sid, schema_type, text, references, key

    def fields(self):
        """The schema's fields as Confluent puts them in a response (schemaType only when not AVRO)."""
        out = {}
        if self.type != "AVRO":
            out["schemaType"] = self.type
        if self.references:
            out["references"] = self.references
        out["schema"] = self.text
        return out


def looks_like_avro(node):
    if isinstance(node, str):
        return True  # a primitive or the name of a named type
    if isinstance(node, list):
        return all(looks_like_avro(n) for n in node)
    if isinstance(node, dict):
        t = node.get("type")
        if t in ("record", "error"):
            return isinstance(node.get("name"), str) and isinstance(node.get("fields"), list) and all(
                isinstance(f, dict) and isinstance(f.get("name"), str) and "type" in f and looks_like_avro(f["type"])
                for f in node["fields"])
        if t == "enum":
            return isinstance(node.get("name"), str) and isinstance(node.get("symbols"), list)
        if t == "fixed":
            return isinstance(node.get("name"), str) and isinstance(node.get("size"), int)
        if t == "array":
            return "items" in node and looks_like_avro(node["items"])
        if t == "map":
            return "values" in node and looks_like_avro(node["values"])
        return t is not None and looks_like_avro(t)
    return False


def normalise(schema_type, text):
    """(text to store and return, canonical text to compare) for a schema, or ApiError 42201."""
    if schema_type == "PROTOBUF":
        return text, text
    try:
        parsed = json.loads(text)
    except ValueError as e:
        raise ApiError(422, 42201, f"Invalid schema {text}, details: {e}")
    if schema_type == "AVRO" and not looks_like_avro(parsed):
        raise ApiError(422, 42201, f"Invalid schema {text}, details: not an Avro schema")
    if schema_type == "AVRO" and isinstance(parsed, str) and parsed not in AVRO_PRIMITIVES:
        raise ApiError(422, 42201, f"Invalid schema {text}, details: unknown type {parsed!r}")
    compact = json.dumps(parsed, separators=(",", ":"), ensure_ascii=False)
    canonical = json.dumps(parsed, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    return compact, canonical


class Registry:
    """All state, guarded by one lock."""

    def __init__(self):
        self.lock = threading.Lock()
        self.next_id = 1
        self.by_id = {}  # id -> Schema
        self.by_key = {}  # (type, canonical, references) -> Schema
        # subject -> {version: {"id": id, "deleted": bool}}
        self.subjects = {}
        self.global_level = "BACKWARD"
        self.subject_levels = {}

    # -- helpers (call with the lock held) --

    def schema_key(self, body):
        if not isinstance(body, dict) or not isinstance(body.get("schema"), str):
            raise ApiError(422, 42201, "Invalid schema: the request needs a \"schema\" string")
        schema_type = body.get("schemaType") or "AVRO"
        if schema_type not in SCHEMA_TYPES:
            raise ApiError(422, 42201, f"Invalid schema type {schema_type}")
        references = body.get("references") or []
        if not isinstance(references, list):
            raise ApiError(422, 42201, "Invalid schema: references must be a list")
        for ref in references:
            if not isinstance(ref, dict) or not {"name", "subject", "version"} <= set(ref):
                raise ApiError(422, 42201, "Invalid schema: a reference needs name, subject and version")
            self.version_entry(ref["subject"], ref["version"], deleted=False)  # must exist
        text, canonical = normalise(schema_type, body["schema"])
        refs_key = json.dumps(references, sort_keys=True)
        return (schema_type, canonical, refs_key), text, references

    def versions(self, subject, deleted):
        vs = self.subjects.get(subject, {})
        live = {v: e for v, e in vs.items() if deleted or not e["deleted"]}
        if not live:
            raise subject_not_found(subject)
        return live

    def version_entry(self, subject, version, deleted):
        vs = self.versions(subject, deleted)
        v = parse_version(version)
        if v == "latest":
            v = max(vs)
        if v not in vs:
            raise version_not_found(version)
        return v, vs[v]

    def describe(self, subject, version, entry):
        out = {"subject": subject, "version": version, "id": entry["id"]}
        out.update(self.by_id[entry["id"]].fields())
        return out

    # -- operations --

    def register(self, subject, body):
        with self.lock:
            key, text, references = self.schema_key(body)
            schema = self.by_key.get(key)
            versions = self.subjects.setdefault(subject, {})
            if schema is not None:
                for e in versions.values():
                    if e["id"] == schema.id and not e["deleted"]:
                        return {"id": schema.id}
            else:
                schema = Schema(self.next_id, key[0], text, references, key)
                self.next_id += 1
                self.by_id[schema.id] = schema
                self.by_key[key] = schema
            versions[max(versions, default=0) + 1] = {"id": schema.id, "deleted": False}
            return {"id": schema.id}

    def lookup(self, subject, body, deleted):
        with self.lock:
            vs = self.versions(subject, deleted)
            key, _, _ = self.schema_key(body)
            schema = self.by_key.get(key)
            if schema is not None:
                for v in sorted(vs, reverse=True):
                    if vs[v]["id"] == schema.id:
                        return self.describe(subject, v, vs[v])
            raise schema_not_found()

    def schema_by_id(self, sid):
        with self.lock:
            schema = self.by_id.get(parse_id(sid))
            if schema is None:
                raise schema_not_found(f"Schema {sid} not found")
            return schema

    def id_versions(self, sid, deleted):
        schema = self.schema_by_id(sid)
        with self.lock:
            return [{"subject": s, "version": v}
                    for s in sorted(self.subjects)
                    for v, e in sorted(self.subjects[s].items())
                    if e["id"] == schema.id and (deleted or not e["deleted"])]

    def list_subjects(self, deleted):
        with self.lock:
            return sorted(s for s, vs in self.subjects.items()
                          if any(deleted or not e["deleted"] for e in vs.values()))

    def list_versions(self, subject, deleted):
        with self.lock:
            return sorted(self.versions(subject, deleted))

    def get_version(self, subject, version, deleted):
        with self.lock:
            v, entry = self.version_entry(subject, version, deleted)
            return self.describe(subject, v, entry)

    def delete_subject(self, subject, permanent):
        with self.lock:
            vs = self.subjects.get(subject)
            if not vs:
                raise subject_not_found(subject)
            if permanent:
                live = [v for v, e in vs.items() if not e["deleted"]]
                if live:
                    raise ApiError(404, 40405, f"Subject '{subject}' was not deleted first before being permanently deleted")
                del self.subjects[subject]
                self.subject_levels.pop(subject, None)
                return sorted(vs)
            live = sorted(v for v, e in vs.items() if not e["deleted"])
            if not live:
                raise ApiError(404, 40404, f"Subject '{subject}' was soft deleted.Set permanent=true to delete permanently")
            for v in live:
                vs[v]["deleted"] = True
            return live

    def delete_version(self, subject, version, permanent):
        with self.lock:
            v, entry = self.version_entry(subject, version, deleted=permanent)
            if permanent:
                if not entry["deleted"]:
                    raise ApiError(404, 40407, f"Subject '{subject}' Version {v} was not deleted first before being permanently deleted")
                del self.subjects[subject][v]
                if not self.subjects[subject]:
                    del self.subjects[subject]
            else:
                entry["deleted"] = True
            return v

    def get_config(self, subject, default_to_global):
        with self.lock:
            if subject is None:
                return {"compatibilityLevel": self.global_level}
            if subject in self.subject_levels:
                return {"compatibilityLevel": self.subject_levels[subject]}
            if default_to_global:
                return {"compatibilityLevel": self.global_level}
            raise ApiError(404, 40408, f"Subject '{subject}' does not have subject-level compatibility configured")

    def put_config(self, subject, body):
        level = body.get("compatibility") if isinstance(body, dict) else None
        if not isinstance(level, str) or level.upper() not in LEVELS:
            raise ApiError(422, 42203, "Invalid compatibility level. Valid values are none, backward, forward, full, "
                                       "backward_transitive, forward_transitive, and full_transitive")
        with self.lock:
            if subject is None:
                self.global_level = level.upper()
            else:
                self.subject_levels[subject] = level.upper()
        return {"compatibility": level.upper()}

    def delete_config(self, subject):
        with self.lock:
            if subject not in self.subject_levels:
                raise ApiError(404, 40401, f"Subject '{subject}' not found.")
            return {"compatibilityLevel": self.subject_levels.pop(subject)}


def parse_version(v):
    if isinstance(v, int):
        n = v
    elif v == "latest":
        return "latest"
    else:
        try:
            n = int(v)
        except (TypeError, ValueError):
            n = 0
    if n == -1:
        return "latest"
    if not 1 <= n <= MAX_VERSION:
        raise ApiError(422, 42202, f"The specified version '{v}' is not a valid version id. Allowed values are "
                                   "between [1, 2^31-1] and the string \"latest\"")
    return n


def parse_id(sid):
    try:
        return int(sid)
    except ValueError:
        raise schema_not_found(f"Schema {sid} not found")


def flag(query, name):
    return query.get(name, ["false"])[-1].lower() == "true"


REGISTRY = Registry()
ROUTES = []


def route(method, pattern):
    def wrap(fn):
        ROUTES.append((method, re.compile("^" + pattern + "$"), fn))
        return fn
    return wrap


@route("GET", r"/")
def root(q, body):
    return {}


@route("GET", r"/schemas/types")
def schema_types(q, body):
    return list(SCHEMA_TYPES)


@route("POST", r"/subjects/([^/]+)/versions")
def register(q, body, subject):
    return REGISTRY.register(subject, body)


@route("POST", r"/subjects/([^/]+)")
def lookup(q, body, subject):
    return REGISTRY.lookup(subject, body, flag(q, "deleted"))


@route("GET", r"/schemas/ids/([^/]+)")
def by_id(q, body, sid):
    return REGISTRY.schema_by_id(sid).fields()


@route("GET", r"/schemas/ids/([^/]+)/schema")
def raw_by_id(q, body, sid):
    return raw(REGISTRY.schema_by_id(sid))


@route("GET", r"/schemas/ids/([^/]+)/versions")
def id_versions(q, body, sid):
    return REGISTRY.id_versions(sid, flag(q, "deleted"))


@route("GET", r"/schemas/ids/([^/]+)/subjects")
def id_subjects(q, body, sid):
    return sorted({e["subject"] for e in REGISTRY.id_versions(sid, flag(q, "deleted"))})


@route("GET", r"/subjects")
def subjects(q, body):
    return REGISTRY.list_subjects(flag(q, "deleted"))


@route("GET", r"/subjects/([^/]+)/versions")
def versions(q, body, subject):
    return REGISTRY.list_versions(subject, flag(q, "deleted"))


@route("GET", r"/subjects/([^/]+)/versions/([^/]+)")
def version(q, body, subject, v):
    return REGISTRY.get_version(subject, v, flag(q, "deleted"))


@route("GET", r"/subjects/([^/]+)/versions/([^/]+)/schema")
def version_schema(q, body, subject, v):
    d = REGISTRY.get_version(subject, v, flag(q, "deleted"))
    return raw(REGISTRY.schema_by_id(str(d["id"])))


@route("DELETE", r"/subjects/([^/]+)")
def delete_subject(q, body, subject):
    return REGISTRY.delete_subject(subject, flag(q, "permanent"))


@route("DELETE", r"/subjects/([^/]+)/versions/([^/]+)")
def delete_version(q, body, subject, v):
    return REGISTRY.delete_version(subject, v, flag(q, "permanent"))


@route("GET", r"/config")
def get_global_config(q, body):
    return REGISTRY.get_config(None, True)


@route("PUT", r"/config")
def put_global_config(q, body):
    return REGISTRY.put_config(None, body)


@route("GET", r"/config/([^/]+)")
def get_config(q, body, subject):
    return REGISTRY.get_config(subject, flag(q, "defaultToGlobal"))


@route("PUT", r"/config/([^/]+)")
def put_config(q, body, subject):
    return REGISTRY.put_config(subject, body)


@route("DELETE", r"/config/([^/]+)")
def delete_config(q, body, subject):
    return REGISTRY.delete_config(subject)


class Raw:
    """A response body that is the schema itself (parsed JSON for AVRO/JSON, a string for PROTOBUF)."""

    def __init__(self, value):
        self.value = value


def raw(schema):
    return Raw(schema.text if schema.type == "PROTOBUF" else json.loads(schema.text))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "sluice-schema-registry-double/1"
    auth = None  # expected "Basic ..." header value, or None

    def send(self, status, payload, extra_headers=()):
        data = json.dumps(payload.value if isinstance(payload, Raw) else payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(data)))
        for k, v in extra_headers:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw_body = self.rfile.read(length) if length else b""
        try:
            if self.auth is not None and not hmac.compare_digest(
                    (self.headers.get("Authorization") or "").encode(), self.auth.encode()):
                self.send(401, {"error_code": 401, "message": "Unauthorized"},
                          [("WWW-Authenticate", 'Basic realm="schema-registry"')])
                return
            url = urlsplit(self.path)
            path = url.path.rstrip("/") or "/"
            query = parse_qs(url.query)
            body = None
            if self.command in ("POST", "PUT"):
                try:
                    body = json.loads(raw_body or b"{}")
                except ValueError:
                    raise ApiError(422, 422, "Unrecognized request body: not JSON")
            for method, pattern, fn in ROUTES:
                m = pattern.match(path)
                if m and method == self.command:
                    self.send(200, fn(query, body, *[unquote(g) for g in m.groups()]))
                    return
            if any(p.match(path) for _, p, _ in ROUTES):
                raise ApiError(405, 405, "HTTP 405 Method Not Allowed")
            raise ApiError(404, 404, "HTTP 404 Not Found")
        except ApiError as e:
            self.send(e.status, {"error_code": e.code, "message": e.message})
        except Exception as e:  # a bug in the double: report it the way the registry reports 500s
            self.log_error("internal error: %r", e)
            self.send(500, {"error_code": 50001, "message": f"Error in the backend data store: {e!r}"})

    do_GET = do_POST = do_PUT = do_DELETE = handle_any

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.log_date_time_string(), fmt % args))
        sys.stderr.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=int(os.environ.get("SCHEMA_REGISTRY_PORT", "18081")))
    args = ap.parse_args()
    creds = os.environ.get("SCHEMA_REGISTRY_BASIC_AUTH")
    if creds:
        if ":" not in creds:
            sys.exit("SCHEMA_REGISTRY_BASIC_AUTH must be user:pass")
        Handler.auth = "Basic " + base64.b64encode(creds.encode()).decode()
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    sys.stderr.write(f"schema registry double listening on http://{args.host}:{args.port}"
                     f"{' (basic auth)' if creds else ''}\n")
    sys.stderr.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
