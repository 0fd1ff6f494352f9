"""The gateway's OpenAI Responses API through a real gateway on 127.0.0.1 and an HTTP client:
scripted (streamed and whole, tool calls named as the request's tools, side requests, the cost
cap's refusal) and forwarding to a local stand-in for api.openai.com (another gateway, scripted,
whose only key is REAL_KEY). No Docker needed; codex itself drives it in test_codex.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pytest_axp.gateway import ModelGateway, ModelScript, RunHandle
from pytest_axp.gateway.sse import SSEParser

REAL_KEY = "sk-openai-REALKEY-0123456789"
RUN_SECRET = "run-secret-VALUE-987654321"
API = "openai-responses"
EXEC = {"type": "function", "name": "exec_command",
        "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}}}
SCRIPT = """
turns:
  - tool_use: {name: shell, input: {command: "echo hi > /workspace/x.txt"}}
  - text: "all done"
usage: {input_tokens: 1000, output_tokens: 200, cache_read_input_tokens: 3000}
"""


def body(stream: bool, *, tools: bool = True, turn: int = 0) -> dict[str, Any]:
    out: dict[str, Any] = {"model": "gpt-5", "stream": stream,
                           "input": [{"role": "user", "content": f"turn {turn}"}]}
    if tools:
        out["tools"] = [EXEC]
    return out


def open_run(gw: ModelGateway, tmp_path: Path, name: str, **kw: Any) -> RunHandle:
    return gw.open_run(name, bodies_dir=tmp_path / f"{name}-bodies",
                       traces_dir=tmp_path / f"{name}-traces", trace_id=name,
                       max_cost_usd=kw.pop("max_cost_usd", None), model_api=API, **kw)


def sse(response: httpx.Response) -> list[tuple[str, Any]]:
    parser = SSEParser()
    pairs = [*parser.feed(response.content), *parser.close()]
    return [(name, json.loads(data)) for name, data in pairs]


def files_containing(root: Path, needle: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_text(errors="replace")]


@pytest.fixture
def gateway() -> Iterator[ModelGateway]:
    # Scripted runs never forward: the upstream is a closed port.
    with ModelGateway(bind_host="127.0.0.1", api_key=REAL_KEY, upstream_url="http://127.0.0.1:9",
                      ) as gw:
        yield gw


def test_scripted_answers_stream_whole_side_and_refusal(gateway: ModelGateway,
                                                        tmp_path: Path) -> None:
    # one turn of gpt-5 costs 1000*1.25 + 3000*0.125 + 200*10 = 3625e-6: the cap passes at once
    handle = open_run(gateway, tmp_path, "s", script=ModelScript.from_yaml(SCRIPT),
                      max_cost_usd=0.003)
    auth = {"authorization": f"Bearer {handle.token}"}
    with httpx.Client(base_url=f"http://127.0.0.1:{gateway.port}", timeout=10) as c:
        bad = c.post("/v1/responses", json=body(True), headers={"authorization": "Bearer nope"})
        assert bad.status_code == 401 and bad.json()["error"]["type"] == "invalid_request_error"

        side = c.post("/v1/responses", json=body(False, tools=False), headers=auth)
        assert side.status_code == 200 and side.json()["output"][0]["type"] == "message"

        streamed = c.post("/v1/responses", json=body(True), headers=auth)
        assert streamed.status_code == 200
        assert streamed.headers["content-type"].startswith("text/event-stream")
        events = sse(streamed)
        assert events[0][0] == "response.created" and events[-1][0] == "response.completed"
        items = [d["item"] for n, d in events if n == "response.output_item.done"]
        assert [i["type"] for i in items] == ["function_call"]
        assert items[0]["name"] == "exec_command"
        assert json.loads(items[0]["arguments"]) == {"cmd": "echo hi > /workspace/x.txt"}
        final = events[-1][1]["response"]
        assert final["usage"]["input_tokens"] == 4000
        assert final["usage"]["input_tokens_details"]["cached_tokens"] == 3000

        refused = c.post("/v1/responses", json=body(False, turn=1), headers=auth)
        assert refused.status_code == 400
        error = refused.json()["error"]
        assert error["code"] == "axp_refused" and "max_cost_usd exceeded" in error["message"]
    gateway.close_run(handle)
    # the side request is neither a turn nor a cost; the refused one is a turn not played
    assert (handle.requests, handle.turns) == (3, 2)
    assert (handle.input_tokens, handle.cache_read_input_tokens, handle.output_tokens) == (
        1000, 3000, 200)
    assert handle.cost_usd == pytest.approx(3625e-6)
    bodies = tmp_path / "s-bodies"
    assert len(list(bodies.glob("*.response.json"))) == 3  # the unknown token is not a run's
    first = json.loads((bodies / "0002.response.json").read_text())
    assert first["mode"] == "scripted" and first["usage"]["output_tokens"] == 200
    assert first["message"]["output"][0]["name"] == "exec_command"
    last = json.loads((bodies / "0003.response.json").read_text())
    assert last["refused"] is True and last["status"] == 400
    req = json.loads((bodies / "0002.request.json").read_text())
    assert req["headers"]["authorization"] == "[REDACTED]"
    assert files_containing(tmp_path, handle.token) == []


@pytest.fixture
def upstream() -> Iterator[ModelGateway]:
    with ModelGateway(bind_host="127.0.0.1", api_key="unused") as gw:
        yield gw


@pytest.mark.parametrize("stream", [True, False])
def test_forwarding_with_the_real_key_meters_and_redacts(
        upstream: ModelGateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        stream: bool) -> None:
    # The stand-in answers with the run's secret in its text, which a stream splits in two.
    script = ModelScript.from_data({
        "turns": [{"text": f"the secret is {RUN_SECRET}, done"}],
        "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 20},
    })
    up = upstream.open_run("up", bodies_dir=tmp_path / "up-bodies", traces_dir=tmp_path / "ut",
                           trace_id="u", max_cost_usd=None, script=script, token=REAL_KEY,
                           model_api=API)
    # as the OpenAI SDKs write it, with /v1
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{upstream.port}/v1")
    monkeypatch.setenv("OPENAI_API_KEY", REAL_KEY)
    with ModelGateway(bind_host="127.0.0.1", api_key="", upstream_url="http://127.0.0.1:9") as fwd:
        handle = open_run(fwd, tmp_path, "f", secrets=[RUN_SECRET])
        assert not handle.scripted and fwd.model_source(handle) == "live"
        r = httpx.post(f"http://127.0.0.1:{fwd.port}/v1/responses", json=body(stream),
                       headers={"authorization": f"Bearer {handle.token}"}, timeout=10)
        fwd.close_run(handle)
    upstream.close_run(up)
    assert r.status_code == 200, r.text
    if stream:
        events = sse(r)
        deltas = [d["delta"] for n, d in events if n == "response.output_text.delta"]
        assert len(deltas) == 2 and not any(RUN_SECRET in d for d in deltas)
        assert "".join(deltas) == f"the secret is {RUN_SECRET}, done"
    else:
        assert r.json()["output"][0]["content"][0]["text"] == f"the secret is {RUN_SECRET}, done"
    # the upstream took the real key, so it saw it; the agent only had its run token
    assert up.requests == 1 and handle.errors == []
    assert (handle.input_tokens, handle.cache_read_input_tokens, handle.output_tokens) == (
        10, 20, 5)
    assert handle.cost_usd == pytest.approx((10 * 1.25 + 20 * 0.125 + 5 * 10.0) / 1e6)
    rec = json.loads((tmp_path / "f-bodies" / "0001.response.json").read_text())
    assert rec["mode"] == "forward"
    assert rec["usage"]["input_tokens_details"] == {"cached_tokens": 20}
    recorded = json.dumps(rec)
    assert "the secret is [REDACTED], done" in recorded
    if stream:
        text = "".join(e["data"]["delta"] for e in rec["events"]
                       if e["event"] == "response.output_text.delta")
        assert text == "the secret is [REDACTED], done"
    for root in (tmp_path / "f-bodies", tmp_path / "up-bodies"):
        assert files_containing(root, REAL_KEY) == []
    assert files_containing(tmp_path / "f-bodies", RUN_SECRET) == []
    assert files_containing(tmp_path / "up-bodies", handle.token) == []
