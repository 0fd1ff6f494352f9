import json
import re

from pytest_axp.record.spans import VariantTracer


def test_spans_nest_and_export_as_otlp_json(tmp_path):
    t = VariantTracer(run_id="exp-1", variant_id="v", repeat=2, experiment_id="exp")
    assert re.fullmatch(r"[0-9a-f]{32}", t.trace_id)
    with t.span("setup", **{"axp.name": "env/setup"}) as outer:
        assert t.current_span_id() == outer.span_id
        with t.span("inner", i=3, f=0.5, b=True, s="x", none=None) as inner:
            inner.set("late", 7)
    first = t.export(tmp_path)            # an interrupted run keeps what it has
    assert first.name == f"{t.trace_id}.otlp.json"
    t.end(**{"axp.status": "pass"})
    doc = json.loads(t.export(tmp_path).read_text())
    rs = doc["resourceSpans"][0]
    resource = {a["key"]: a["value"] for a in rs["resource"]["attributes"]}
    assert resource["axp.run_id"] == {"stringValue": "exp-1"}
    assert resource["axp.repeat"] == {"intValue": "2"}
    spans = {s["name"]: s for s in rs["scopeSpans"][0]["spans"]}
    assert set(spans) == {"variant_run", "setup", "inner"}
    root, setup, inner = spans["variant_run"], spans["setup"], spans["inner"]
    assert "parentSpanId" not in root
    assert setup["parentSpanId"] == root["spanId"] and inner["parentSpanId"] == setup["spanId"]
    assert {s["traceId"] for s in spans.values()} == {t.trace_id}
    attrs = {a["key"]: a["value"] for a in inner["attributes"]}
    assert attrs == {"i": {"intValue": "3"}, "f": {"doubleValue": 0.5},
                     "b": {"boolValue": True}, "s": {"stringValue": "x"},
                     "late": {"intValue": "7"}}
    assert int(inner["endTimeUnixNano"]) >= int(inner["startTimeUnixNano"]) > 0
    assert re.fullmatch(r"[0-9a-f]{16}", inner["spanId"])


def test_an_exception_marks_the_span(tmp_path):
    t = VariantTracer(run_id="r", variant_id="v", repeat=1)
    try:
        with t.span("boom"):
            raise ValueError("x")
    except ValueError:
        pass
    spans = json.loads(t.export(tmp_path).read_text())["resourceSpans"][0]["scopeSpans"][0]["spans"]
    boom = next(s for s in spans if s["name"] == "boom")
    assert boom["status"]["code"] == 2
