"""OTLP/HTTP payloads: a small protobuf wire-format decoder into the OTLP/JSON shape, and the
per-run store that writes the agent's telemetry files.

Hand-written instead of depending on opentelemetry-proto + protobuf: only the three export
requests are needed, and the wire format is simple. Field numbers follow opentelemetry-proto
v1 (common, resource, trace, metrics, logs). Output follows the OTLP/JSON mapping: lowerCamelCase
names, trace/span ids as hex, fixed64/uint64 as decimal strings (int64 values as numbers, like the
JS exporter), enums as numbers, other bytes as base64.
"""

from __future__ import annotations

import base64
import gzip
import json
import math
import struct
import zlib
from pathlib import Path
from typing import Any

from .recorder import ApiRedactor, write_json_record

# field number -> (json name, type, repeated, message type for "msg")
Field = tuple[str, str, bool, str | None]

_KV = ("attributes", "msg", True, "KeyValue")

SCHEMA: dict[str, dict[int, Field]] = {
    # common.proto
    "AnyValue": {
        1: ("stringValue", "string", False, None),
        2: ("boolValue", "bool", False, None),
        3: ("intValue", "int64", False, None),
        4: ("doubleValue", "double", False, None),
        5: ("arrayValue", "msg", False, "ArrayValue"),
        6: ("kvlistValue", "msg", False, "KeyValueList"),
        7: ("bytesValue", "bytes", False, None),
    },
    "ArrayValue": {1: ("values", "msg", True, "AnyValue")},
    "KeyValueList": {1: ("values", "msg", True, "KeyValue")},
    "KeyValue": {1: ("key", "string", False, None), 2: ("value", "msg", False, "AnyValue")},
    "InstrumentationScope": {
        1: ("name", "string", False, None),
        2: ("version", "string", False, None),
        3: _KV,
        4: ("droppedAttributesCount", "uint32", False, None),
    },
    "EntityRef": {
        1: ("schemaUrl", "string", False, None),
        2: ("type", "string", False, None),
        3: ("idKeys", "string", True, None),
        4: ("descriptionKeys", "string", True, None),
    },
    # resource.proto
    "Resource": {
        1: _KV,
        2: ("droppedAttributesCount", "uint32", False, None),
        3: ("entityRefs", "msg", True, "EntityRef"),
    },
    # trace.proto
    "ExportTraceServiceRequest": {1: ("resourceSpans", "msg", True, "ResourceSpans")},
    "ResourceSpans": {
        1: ("resource", "msg", False, "Resource"),
        2: ("scopeSpans", "msg", True, "ScopeSpans"),
        3: ("schemaUrl", "string", False, None),
    },
    "ScopeSpans": {
        1: ("scope", "msg", False, "InstrumentationScope"),
        2: ("spans", "msg", True, "Span"),
        3: ("schemaUrl", "string", False, None),
    },
    "Span": {
        1: ("traceId", "hex", False, None),
        2: ("spanId", "hex", False, None),
        3: ("traceState", "string", False, None),
        4: ("parentSpanId", "hex", False, None),
        5: ("name", "string", False, None),
        6: ("kind", "enum", False, None),
        7: ("startTimeUnixNano", "fixed64", False, None),
        8: ("endTimeUnixNano", "fixed64", False, None),
        9: _KV,
        10: ("droppedAttributesCount", "uint32", False, None),
        11: ("events", "msg", True, "SpanEvent"),
        12: ("droppedEventsCount", "uint32", False, None),
        13: ("links", "msg", True, "SpanLink"),
        14: ("droppedLinksCount", "uint32", False, None),
        15: ("status", "msg", False, "Status"),
        16: ("flags", "fixed32", False, None),
    },
    "SpanEvent": {
        1: ("timeUnixNano", "fixed64", False, None),
        2: ("name", "string", False, None),
        3: _KV,
        4: ("droppedAttributesCount", "uint32", False, None),
    },
    "SpanLink": {
        1: ("traceId", "hex", False, None),
        2: ("spanId", "hex", False, None),
        3: ("traceState", "string", False, None),
        4: _KV,
        5: ("droppedAttributesCount", "uint32", False, None),
        6: ("flags", "fixed32", False, None),
    },
    "Status": {2: ("message", "string", False, None), 3: ("code", "enum", False, None)},
    # metrics.proto
    "ExportMetricsServiceRequest": {1: ("resourceMetrics", "msg", True, "ResourceMetrics")},
    "ResourceMetrics": {
        1: ("resource", "msg", False, "Resource"),
        2: ("scopeMetrics", "msg", True, "ScopeMetrics"),
        3: ("schemaUrl", "string", False, None),
    },
    "ScopeMetrics": {
        1: ("scope", "msg", False, "InstrumentationScope"),
        2: ("metrics", "msg", True, "Metric"),
        3: ("schemaUrl", "string", False, None),
    },
    "Metric": {
        1: ("name", "string", False, None),
        2: ("description", "string", False, None),
        3: ("unit", "string", False, None),
        5: ("gauge", "msg", False, "Gauge"),
        7: ("sum", "msg", False, "Sum"),
        9: ("histogram", "msg", False, "Histogram"),
        10: ("exponentialHistogram", "msg", False, "ExponentialHistogram"),
        11: ("summary", "msg", False, "Summary"),
        12: ("metadata", "msg", True, "KeyValue"),
    },
    "Gauge": {1: ("dataPoints", "msg", True, "NumberDataPoint")},
    "Sum": {
        1: ("dataPoints", "msg", True, "NumberDataPoint"),
        2: ("aggregationTemporality", "enum", False, None),
        3: ("isMonotonic", "bool", False, None),
    },
    "Histogram": {
        1: ("dataPoints", "msg", True, "HistogramDataPoint"),
        2: ("aggregationTemporality", "enum", False, None),
    },
    "ExponentialHistogram": {
        1: ("dataPoints", "msg", True, "ExponentialHistogramDataPoint"),
        2: ("aggregationTemporality", "enum", False, None),
    },
    "Summary": {1: ("dataPoints", "msg", True, "SummaryDataPoint")},
    "NumberDataPoint": {
        7: _KV,
        2: ("startTimeUnixNano", "fixed64", False, None),
        3: ("timeUnixNano", "fixed64", False, None),
        4: ("asDouble", "double", False, None),
        6: ("asInt", "sfixed64", False, None),
        5: ("exemplars", "msg", True, "Exemplar"),
        8: ("flags", "uint32", False, None),
    },
    "HistogramDataPoint": {
        9: _KV,
        2: ("startTimeUnixNano", "fixed64", False, None),
        3: ("timeUnixNano", "fixed64", False, None),
        4: ("count", "fixed64", False, None),
        5: ("sum", "double", False, None),
        6: ("bucketCounts", "fixed64", True, None),
        7: ("explicitBounds", "double", True, None),
        8: ("exemplars", "msg", True, "Exemplar"),
        10: ("flags", "uint32", False, None),
        11: ("min", "double", False, None),
        12: ("max", "double", False, None),
    },
    "ExponentialHistogramDataPoint": {
        1: _KV,
        2: ("startTimeUnixNano", "fixed64", False, None),
        3: ("timeUnixNano", "fixed64", False, None),
        4: ("count", "fixed64", False, None),
        5: ("sum", "double", False, None),
        6: ("scale", "sint32", False, None),
        7: ("zeroCount", "fixed64", False, None),
        8: ("positive", "msg", False, "Buckets"),
        9: ("negative", "msg", False, "Buckets"),
        10: ("flags", "uint32", False, None),
        11: ("exemplars", "msg", True, "Exemplar"),
        12: ("min", "double", False, None),
        13: ("max", "double", False, None),
        14: ("zeroThreshold", "double", False, None),
    },
    "Buckets": {1: ("offset", "sint32", False, None), 2: ("bucketCounts", "uint64", True, None)},
    "SummaryDataPoint": {
        7: _KV,
        2: ("startTimeUnixNano", "fixed64", False, None),
        3: ("timeUnixNano", "fixed64", False, None),
        4: ("count", "fixed64", False, None),
        5: ("sum", "double", False, None),
        6: ("quantileValues", "msg", True, "ValueAtQuantile"),
        8: ("flags", "uint32", False, None),
    },
    "ValueAtQuantile": {
        1: ("quantile", "double", False, None),
        2: ("value", "double", False, None),
    },
    "Exemplar": {
        7: ("filteredAttributes", "msg", True, "KeyValue"),
        2: ("timeUnixNano", "fixed64", False, None),
        3: ("asDouble", "double", False, None),
        6: ("asInt", "sfixed64", False, None),
        4: ("spanId", "hex", False, None),
        5: ("traceId", "hex", False, None),
    },
    # logs.proto
    "ExportLogsServiceRequest": {1: ("resourceLogs", "msg", True, "ResourceLogs")},
    "ResourceLogs": {
        1: ("resource", "msg", False, "Resource"),
        2: ("scopeLogs", "msg", True, "ScopeLogs"),
        3: ("schemaUrl", "string", False, None),
    },
    "ScopeLogs": {
        1: ("scope", "msg", False, "InstrumentationScope"),
        2: ("logRecords", "msg", True, "LogRecord"),
        3: ("schemaUrl", "string", False, None),
    },
    "LogRecord": {
        1: ("timeUnixNano", "fixed64", False, None),
        11: ("observedTimeUnixNano", "fixed64", False, None),
        2: ("severityNumber", "enum", False, None),
        3: ("severityText", "string", False, None),
        5: ("body", "msg", False, "AnyValue"),
        6: _KV,
        7: ("droppedAttributesCount", "uint32", False, None),
        8: ("flags", "fixed32", False, None),
        9: ("traceId", "hex", False, None),
        10: ("spanId", "hex", False, None),
        12: ("eventName", "string", False, None),
    },
}

# signal path -> (export request message, top-level OTLP/JSON key)
SIGNALS: dict[str, tuple[str, str]] = {
    "/v1/traces": ("ExportTraceServiceRequest", "resourceSpans"),
    "/v1/metrics": ("ExportMetricsServiceRequest", "resourceMetrics"),
    "/v1/logs": ("ExportLogsServiceRequest", "resourceLogs"),
}

_VARINT_TYPES = {"int64", "uint64", "uint32", "enum", "bool", "sint32"}
_FIXED64_TYPES = {"fixed64", "sfixed64", "double"}


class ProtobufError(ValueError):
    pass


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise ProtobufError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise ProtobufError("varint too long")


def _scalar_from_varint(kind: str, value: int) -> Any:
    if kind == "bool":
        return bool(value)
    if kind == "sint32":
        return (value >> 1) ^ -(value & 1)
    if value >= 1 << 63:  # negative int64/enum encodings are 10-byte two's complement
        value -= 1 << 64
    if kind == "uint64":
        return str(value & ((1 << 64) - 1))
    # int64 (AnyValue.intValue) as a JSON number, as Claude Code's own OTLP/JSON exporter writes it,
    # so the files look the same whichever protocol the agent used.
    return value


def _double(value: float) -> Any:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _fixed64(kind: str, raw: bytes) -> Any:
    if kind == "double":
        return _double(struct.unpack("<d", raw)[0])
    if kind == "sfixed64":
        return str(struct.unpack("<q", raw)[0])
    return str(struct.unpack("<Q", raw)[0])


def decode_message(buf: bytes, message: str) -> dict[str, Any]:
    """Decode one protobuf message of the given OTLP type into its OTLP/JSON dict."""
    schema = SCHEMA[message]
    out: dict[str, Any] = {}
    pos = 0
    end = len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        spec = schema.get(number)
        if wire == 0:
            raw_int, pos = _varint(buf, pos)
            if spec and spec[1] in _VARINT_TYPES:
                _put(out, spec, _scalar_from_varint(spec[1], raw_int))
        elif wire == 1:
            if pos + 8 > end:
                raise ProtobufError("truncated 64-bit field")
            raw = buf[pos : pos + 8]
            pos += 8
            if spec and spec[1] in _FIXED64_TYPES:
                _put(out, spec, _fixed64(spec[1], raw))
        elif wire == 5:
            if pos + 4 > end:
                raise ProtobufError("truncated 32-bit field")
            raw = buf[pos : pos + 4]
            pos += 4
            if spec and spec[1] == "fixed32":
                _put(out, spec, struct.unpack("<I", raw)[0])
        elif wire == 2:
            length, pos = _varint(buf, pos)
            if pos + length > end:
                raise ProtobufError("truncated length-delimited field")
            chunk = buf[pos : pos + length]
            pos += length
            if spec:
                _put_length_delimited(out, spec, chunk)
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
    return out


def _put(out: dict[str, Any], spec: Field, value: Any) -> None:
    name, _kind, repeated, _sub = spec
    if repeated:
        out.setdefault(name, []).append(value)
    else:
        out[name] = value


def _put_length_delimited(out: dict[str, Any], spec: Field, chunk: bytes) -> None:
    name, kind, repeated, sub = spec
    if kind == "msg":
        assert sub is not None
        _put(out, spec, decode_message(chunk, sub))
    elif kind == "string":
        _put(out, spec, chunk.decode("utf-8", errors="replace"))
    elif kind == "hex":
        _put(out, spec, chunk.hex())
    elif kind == "bytes":
        _put(out, spec, base64.b64encode(chunk).decode("ascii"))
    elif repeated:
        # Packed repeated scalars.
        values = out.setdefault(name, [])
        pos = 0
        while pos < len(chunk):
            if kind in _FIXED64_TYPES:
                values.append(_fixed64(kind, chunk[pos : pos + 8]))
                pos += 8
            elif kind == "fixed32":
                values.append(struct.unpack("<I", chunk[pos : pos + 4])[0])
                pos += 4
            else:
                raw_int, pos = _varint(chunk, pos)
                values.append(_scalar_from_varint(kind, raw_int))


def _decompress(body: bytes, encoding: str | None) -> bytes:
    enc = (encoding or "").lower().strip()
    if enc == "gzip":
        return gzip.decompress(body)
    if enc == "deflate":
        return zlib.decompress(body)
    return body


def decode_export(
    path: str, body: bytes, content_type: str | None, content_encoding: str | None = None
) -> list[Any]:
    """The list of resource entries (resourceSpans/Metrics/Logs) in one OTLP/HTTP export body."""
    message, key = SIGNALS[path]
    raw = _decompress(body, content_encoding)
    if "protobuf" in (content_type or "").lower():
        decoded = decode_message(raw, message)
    else:
        decoded = json.loads(raw.decode("utf-8") or "{}")
        if not isinstance(decoded, dict):
            raise ValueError("OTLP/JSON body must be an object")
    snake = {
        "resourceSpans": "resource_spans",
        "resourceMetrics": "resource_metrics",
        "resourceLogs": "resource_logs",
    }
    items = decoded.get(key, decoded.get(snake[key], []))
    return list(items) if isinstance(items, list) else []


class OtlpStore:
    """One run's agent telemetry, rewritten to its two files whenever data arrives."""

    def __init__(self, traces_dir: Path, trace_id: str, redactor: ApiRedactor) -> None:
        self.traces_dir = Path(traces_dir)
        self.trace_id = trace_id
        self.redactor = redactor
        self.data: dict[str, list[Any]] = {
            "resourceSpans": [],
            "resourceMetrics": [],
            "resourceLogs": [],
        }

    @property
    def otlp_path(self) -> Path:
        return self.traces_dir / f"{self.trace_id}.agent.otlp.json"

    @property
    def logs_path(self) -> Path:
        return self.traces_dir / f"{self.trace_id}.agent.logs.json"

    def add(self, path: str, items: list[Any]) -> None:
        key = SIGNALS[path][1]
        self.data[key].extend(items)
        self.write(logs=key == "resourceLogs", otlp=key != "resourceLogs")

    def write(self, *, logs: bool = True, otlp: bool = True) -> None:
        if otlp and (self.data["resourceSpans"] or self.data["resourceMetrics"]):
            doc = {
                "resourceSpans": self.data["resourceSpans"],
                "resourceMetrics": self.data["resourceMetrics"],
            }
            write_json_record(self.otlp_path, self.redactor.dumps(doc))
        if logs and self.data["resourceLogs"]:
            write_json_record(
                self.logs_path, self.redactor.dumps({"resourceLogs": self.data["resourceLogs"]})
            )
