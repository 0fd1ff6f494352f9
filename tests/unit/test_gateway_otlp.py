"""The hand-written OTLP protobuf decoder, checked against messages built with a tiny test
encoder."""

from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path

import pytest

from pytest_axp.gateway.otlp import OtlpStore, ProtobufError, decode_export, decode_message
from pytest_axp.gateway.recorder import ApiRedactor


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def key(field: int, wire: int) -> bytes:
    return varint(field << 3 | wire)


def ld(field: int, payload: bytes | str) -> bytes:
    data = payload.encode() if isinstance(payload, str) else payload
    return key(field, 2) + varint(len(data)) + data


def vi(field: int, n: int) -> bytes:
    return key(field, 0) + varint(n)


def f64(field: int, n: int, fmt: str = "<Q") -> bytes:
    return key(field, 1) + struct.pack(fmt, n)


def dbl(field: int, x: float) -> bytes:
    return key(field, 1) + struct.pack("<d", x)


def f32(field: int, n: int) -> bytes:
    return key(field, 5) + struct.pack("<I", n)


def kv(k: str, anyvalue: bytes) -> bytes:
    return ld(1, k) + ld(2, anyvalue)


def zigzag(n: int) -> int:
    return (n << 1) ^ (n >> 63)


RESOURCE = b"".join(
    ld(1, kv(*a))
    for a in [
        ("service.name", ld(1, "claude-code")),
        ("neg", vi(3, -5)),
        ("flag", vi(2, 1)),
        ("ratio", dbl(4, 0.5)),
        ("arr", ld(5, ld(1, ld(1, "a")) + ld(1, vi(3, 2)))),
        ("kv", ld(6, ld(1, kv("inner", ld(1, "x"))))),
        ("raw", ld(7, b"\x00\xff")),
    ]
)
SCOPE = ld(1, "com.anthropic.claude_code") + ld(2, "2.1.328")
TRACE_ID = bytes(range(16))
SPAN_ID = bytes(range(8))


def test_traces_decode_to_otlp_json_shape() -> None:
    span = (
        ld(1, TRACE_ID)
        + ld(2, SPAN_ID)
        + ld(4, b"\x01" * 8)
        + ld(5, "claude_code.llm_request")
        + vi(6, 1)
        + f64(7, 1795339218281000000)
        + f64(8, 1795339218312291843)
        + ld(9, kv("duration_ms", vi(3, 31)))
        + ld(11, f64(1, 5) + ld(2, "evt"))
        + ld(15, ld(2, "boom") + vi(3, 2))
        + f32(16, 257)
        + vi(99, 7)  # unknown field: skipped
    )
    body = ld(1, ld(1, RESOURCE) + ld(2, ld(1, SCOPE) + ld(2, span)) + ld(3, "https://schema"))
    items = decode_export("/v1/traces", body, "application/x-protobuf")
    assert len(items) == 1
    rs = items[0]
    attrs = {a["key"]: a["value"] for a in rs["resource"]["attributes"]}
    assert attrs["service.name"] == {"stringValue": "claude-code"}
    assert attrs["neg"] == {"intValue": -5}
    assert attrs["flag"] == {"boolValue": True}
    assert attrs["ratio"] == {"doubleValue": 0.5}
    assert attrs["arr"] == {"arrayValue": {"values": [{"stringValue": "a"}, {"intValue": 2}]}}
    assert attrs["kv"] == {
        "kvlistValue": {"values": [{"key": "inner", "value": {"stringValue": "x"}}]}
    }
    assert attrs["raw"] == {"bytesValue": "AP8="}
    assert rs["schemaUrl"] == "https://schema"
    ss = rs["scopeSpans"][0]
    assert ss["scope"] == {"name": "com.anthropic.claude_code", "version": "2.1.328"}
    s = ss["spans"][0]
    assert (
        s["traceId"] == TRACE_ID.hex()
        and s["spanId"] == SPAN_ID.hex()
        and s["parentSpanId"] == "01" * 8
    )
    assert s["name"] == "claude_code.llm_request" and s["kind"] == 1
    assert (
        s["startTimeUnixNano"] == "1795339218281000000"
        and s["endTimeUnixNano"] == "1795339218312291843"
    )
    assert s["attributes"] == [{"key": "duration_ms", "value": {"intValue": 31}}]
    assert s["events"] == [{"timeUnixNano": "5", "name": "evt"}]
    assert s["status"] == {"message": "boom", "code": 2}
    assert s["flags"] == 257
    assert "99" not in json.dumps(s)


def test_metrics_packed_and_signed_fields() -> None:
    number_points = ld(1, ld(7, kv("type", ld(1, "input"))) + f64(3, 10) + dbl(4, 1.25)) + ld(
        1, f64(3, 11) + f64(6, -3, "<q")
    )
    sum_metric = (
        ld(1, "claude_code.token.usage")
        + ld(3, "tokens")
        + ld(7, number_points + vi(2, 1) + vi(3, 1))
    )
    packed_counts = struct.pack("<3Q", 1, 2, 3)
    packed_bounds = struct.pack("<2d", 0.5, 1.0)
    hist = ld(1, "h") + ld(
        9, ld(1, f64(4, 6) + dbl(5, 3.5) + ld(6, packed_counts) + ld(7, packed_bounds)) + vi(2, 2)
    )
    exp = ld(1, "e") + ld(
        10, ld(1, vi(6, zigzag(-2)) + ld(8, vi(1, zigzag(-1)) + ld(2, varint(4) + varint(300))))
    )
    body = ld(1, ld(2, ld(1, SCOPE) + ld(2, sum_metric) + ld(2, hist) + ld(2, exp)))
    (rm,) = decode_export("/v1/metrics", body, "application/x-protobuf")
    metrics = rm["scopeMetrics"][0]["metrics"]
    s = metrics[0]
    assert s["name"] == "claude_code.token.usage" and s["unit"] == "tokens"
    assert s["sum"]["aggregationTemporality"] == 1 and s["sum"]["isMonotonic"] is True
    assert s["sum"]["dataPoints"][0]["asDouble"] == 1.25
    assert s["sum"]["dataPoints"][0]["attributes"][0]["key"] == "type"
    assert s["sum"]["dataPoints"][1]["asInt"] == "-3"
    h = metrics[1]["histogram"]["dataPoints"][0]
    assert h["count"] == "6" and h["sum"] == 3.5
    assert h["bucketCounts"] == ["1", "2", "3"] and h["explicitBounds"] == [0.5, 1.0]
    e = metrics[2]["exponentialHistogram"]["dataPoints"][0]
    assert e["scale"] == -2 and e["positive"] == {"offset": -1, "bucketCounts": ["4", "300"]}


def test_logs_gzip_and_json() -> None:
    record = (
        f64(1, 1)
        + vi(2, 9)
        + ld(3, "INFO")
        + ld(5, ld(1, "claude_code.api_request"))
        + ld(9, TRACE_ID)
        + ld(12, "api_request")
    )
    body = ld(1, ld(2, ld(2, record)))
    (rl,) = decode_export("/v1/logs", gzip.compress(body), "application/x-protobuf", "gzip")
    lr = rl["scopeLogs"][0]["logRecords"][0]
    assert lr == {
        "timeUnixNano": "1",
        "severityNumber": 9,
        "severityText": "INFO",
        "body": {"stringValue": "claude_code.api_request"},
        "traceId": TRACE_ID.hex(),
        "eventName": "api_request",
    }
    as_json = json.dumps({"resourceLogs": [{"scopeLogs": [{"logRecords": [lr]}]}]}).encode()
    assert decode_export("/v1/logs", as_json, "application/json") == [
        {"scopeLogs": [{"logRecords": [lr]}]}
    ]


def test_truncated_input_raises() -> None:
    with pytest.raises(ProtobufError):
        decode_message(ld(1, b"abc")[:-1], "ExportLogsServiceRequest")


def test_store_merges_and_writes_both_files(tmp_path: Path) -> None:
    store = OtlpStore(tmp_path, "abc", ApiRedactor(["tok"]))
    store.add("/v1/traces", [{"resource": {}, "scopeSpans": [{"spans": [{"name": "tok"}]}]}])
    store.add("/v1/metrics", [{"scopeMetrics": []}])
    store.add("/v1/traces", [{"scopeSpans": []}])
    store.add("/v1/logs", [{"scopeLogs": []}])
    otlp = json.loads((tmp_path / "abc.agent.otlp.json").read_text())
    assert len(otlp["resourceSpans"]) == 2 and len(otlp["resourceMetrics"]) == 1
    assert otlp["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["name"] == "[REDACTED]"
    assert json.loads((tmp_path / "abc.agent.logs.json").read_text()) == {
        "resourceLogs": [{"scopeLogs": []}]
    }
