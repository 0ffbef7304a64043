"""Independent Avro cross-check for cdc-envelope's tests.

Reads JSON lines {"schema": <avro schema json text>, "datum": <hex>} on
stdin. For each, decodes the datum with fastavro (logical types disabled so
values stay in their wire form), re-encodes the decoded record with
fastavro, and writes {"decoded": <json>, "reencoded": <hex>} on stdout.
Bytes become base64 strings and non-finite floats "NaN"/"Infinity" so the
output compares directly with Kafka Connect JSON payloads.
"""
import base64
import io
import json
import math
import sys

import fastavro


def strip_logical(node):
    if isinstance(node, dict):
        return {k: strip_logical(v) for k, v in node.items() if k != "logicalType"}
    if isinstance(node, list):
        return [strip_logical(v) for v in node]
    return node


def conv(x):
    if isinstance(x, bytes):
        return base64.b64encode(x).decode()
    if isinstance(x, float):
        if math.isnan(x):
            return "NaN"
        if math.isinf(x):
            return "Infinity" if x > 0 else "-Infinity"
        return x
    if isinstance(x, dict):
        return {k: conv(v) for k, v in x.items()}
    if isinstance(x, list):
        return [conv(v) for v in x]
    return x


for line in sys.stdin:
    if not line.strip():
        continue
    req = json.loads(line)
    schema = fastavro.parse_schema(strip_logical(json.loads(req["schema"])))
    datum = bytes.fromhex(req["datum"])
    buf = io.BytesIO(datum)
    record = fastavro.schemaless_reader(buf, schema, None)
    if buf.tell() != len(datum):
        raise SystemExit("trailing bytes after datum")
    out = io.BytesIO()
    fastavro.schemaless_writer(out, schema, record)
    sys.stdout.write(json.dumps({"decoded": conv(record), "reencoded": out.getvalue().hex()}) + "\n")
