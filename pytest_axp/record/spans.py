"""Harness traces: an OpenTelemetry span per phase of a variant run, written as OTLP/JSON.

The SDK is used without its global state or background threads: one provider per variant
run, spans collected in memory and encoded here (the standard OTLP/JSON mapping), so an
interrupted run can rewrite its trace file with what it has at any time.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .jsonio import write_atomic

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace.export import SpanExporter

SCOPE = "pytest_axp"


class VariantTracer:
    def __init__(self, *, run_id: str, variant_id: str, repeat: int,
                 experiment_id: str = "") -> None:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor

        self._trace = trace
        self._finished: list[Any] = []
        self._lock = threading.Lock()
        provider = TracerProvider(resource=Resource.create({
            "service.name": "pytest-axp", "axp.run_id": run_id,
            "axp.experiment_id": experiment_id, "axp.variant_id": variant_id,
            "axp.repeat": repeat}))
        provider.add_span_processor(SimpleSpanProcessor(_collector(self)))
        self._tracer = provider.get_tracer(SCOPE)
        self._stack: list[Any] = []
        self.root = self._tracer.start_span("variant_run", attributes={
            "axp.run_id": run_id, "axp.variant_id": variant_id, "axp.repeat": repeat})
        self._stack.append(self.root)
        self.trace_id = format(self.root.get_span_context().trace_id, "032x")
        self.redact: Callable[[Any], Any] = lambda doc: doc  # set once secrets are known

    @contextmanager
    def span(self, name: str, **attributes: Any) -> Iterator[SpanHandle]:
        parent = self._stack[-1] if self._stack else self.root
        ctx = self._trace.set_span_in_context(parent)
        span = self._tracer.start_span(name, context=ctx,
                                       attributes=_clean(attributes))
        self._stack.append(span)
        handle = SpanHandle(span)
        try:
            yield handle
        except BaseException as e:
            span.set_attribute("error", True)
            span.set_attribute("error.type", type(e).__name__)
            raise
        finally:
            self._stack.remove(span)
            span.end()

    def current_span_id(self) -> str | None:
        if not self._stack:
            return None
        return format(self._stack[-1].get_span_context().span_id, "016x")

    def end(self, **attributes: Any) -> None:
        if self.root in self._stack:
            for key, value in _clean(attributes).items():
                self.root.set_attribute(key, value)
            self._stack.remove(self.root)
            self.root.end()

    def export(self, traces_dir: Path) -> Path:
        """Write traces/<trace-id>.otlp.json with every span finished so far (and the open
        ones as they are now), atomically; call again to rewrite it with more."""
        with self._lock:
            finished = list(self._finished)
        open_spans = [s for s in self._stack]
        path = traces_dir / f"{self.trace_id}.otlp.json"
        doc = self.redact(otlp_json(finished + open_spans))
        write_atomic(path, json.dumps(doc, indent=1) + "\n")
        return path


class SpanHandle:
    def __init__(self, span: Any) -> None:
        self._span = span
        self.span_id = format(span.get_span_context().span_id, "016x")

    def set(self, key: str, value: Any) -> None:
        if value is not None:
            self._span.set_attribute(key, value)


def _collector(tracer: VariantTracer) -> SpanExporter:
    """A SpanExporter that keeps finished spans in memory (the SDK is imported only when a
    tracer is made, so the class is made here too)."""
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    class _Collector(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            with tracer._lock:
                tracer._finished.extend(spans)
            return SpanExportResult.SUCCESS

        def shutdown(self) -> None:
            pass

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return True

    return _Collector()


def _clean(attributes: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in attributes.items() if v is not None}


def _value(v: Any) -> dict[str, Any]:
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v}
    if isinstance(v, (list, tuple)):
        return {"arrayValue": {"values": [_value(x) for x in v]}}
    return {"stringValue": str(v)}


def _attributes(attrs: Any) -> list[dict[str, Any]]:
    return [{"key": k, "value": _value(v)} for k, v in (attrs or {}).items()]


def otlp_json(spans: list[Any]) -> dict[str, Any]:
    """Spans of one resource in the OTLP/JSON encoding (ids in hex, times as strings)."""
    resource = spans[0].resource.attributes if spans else {}
    encoded = []
    for s in sorted(spans, key=lambda s: s.start_time or 0):
        ctx = s.get_span_context()
        item: dict[str, Any] = {
            "traceId": format(ctx.trace_id, "032x"),
            "spanId": format(ctx.span_id, "016x"),
            "name": s.name,
            "kind": 1,  # SPAN_KIND_INTERNAL
            "startTimeUnixNano": str(s.start_time or 0),
            "endTimeUnixNano": str(s.end_time or 0),
            "attributes": _attributes(s.attributes),
            "status": {"code": 2 if (s.attributes or {}).get("error") else 0},
        }
        if s.parent is not None:
            item["parentSpanId"] = format(s.parent.span_id, "016x")
        encoded.append(item)
    return {"resourceSpans": [{
        "resource": {"attributes": _attributes(resource)},
        "scopeSpans": [{"scope": {"name": SCOPE}, "spans": encoded}],
    }]}
