"""The gateway's Gemini API through a real gateway on 127.0.0.1 and an HTTP client speaking
Gemini's wire format as Gemini CLI does: scripted, capped, and forwarding to a local upstream
(another gateway, scripted, whose only valid key is the real one)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pytest_axp.gateway import ModelGateway, ModelScript, RunHandle

REAL_KEY = "gemini-real-key-SECRET-0042"
RUN_SECRET = "run-secret-value-7788"
MODEL = "gemini-2.5-flash"
STREAM = f"/v1beta/models/{MODEL}:streamGenerateContent?alt=sse"
WHOLE = f"/v1beta/models/{MODEL}:generateContent"
TOOLS = [{"functionDeclarations": [
    {"name": "run_shell_command", "parametersJsonSchema": {
        "type": "object", "properties": {"command": {"type": "string"},
                                         "description": {"type": "string"}}}},
    {"name": "write_file", "parametersJsonSchema": {
        "type": "object", "properties": {"file_path": {"type": "string"},
                                         "content": {"type": "string"}}}},
]}]
SCRIPT = f"""
turns:
  - tool_use: {{name: shell, input: {{command: "echo hi > /workspace/x.txt"}}}}
  - text: "done, the value is 0123456789{RUN_SECRET}0123456789"
    usage: {{input_tokens: 2000, output_tokens: 100, cache_read_input_tokens: 1000}}
usage: {{input_tokens: 1000, output_tokens: 50}}
side_usage: {{input_tokens: 10, output_tokens: 5}}
"""
# The routing classifier's request, as Gemini CLI 0.61.0 sends it (prompt shortened).
CLASSIFIER = {"contents": [{"role": "user", "parts": [{"text": "Create the file."}]}],
              "systemInstruction": {"parts": [{"text": "You are a Task Routing AI."}]},
              "generationConfig": {"responseMimeType": "application/json", "responseJsonSchema": {
                  "type": "OBJECT", "properties": {
                      "complexity_reasoning": {"type": "STRING"},
                      "complexity_score": {"type": "INTEGER"}},
                  "required": ["complexity_reasoning", "complexity_score"]}}}


def conversation(*turns: str) -> dict[str, Any]:
    return {"contents": [{"role": "user", "parts": [{"text": t}]} for t in turns],
            "tools": TOOLS, "generationConfig": {"temperature": 1}}


def sse_chunks(raw: bytes) -> list[dict[str, Any]]:
    """The data of each SSE frame; Gemini's frames have no `event:` line."""
    frames = [f for f in raw.decode().split("\n\n") if f.strip()]
    assert all(f.startswith("data: ") and "\n" not in f for f in frames), frames
    return [json.loads(f[len("data: "):]) for f in frames]


def parts_of(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [p for c in chunks for p in c["candidates"][0]["content"]["parts"]]


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def files_containing(root: Path, needle: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_text(errors="replace")]


def open_run(gw: ModelGateway, out: Path, script: str | None = SCRIPT, **kw: Any) -> RunHandle:
    return gw.open_run(
        out.name, bodies_dir=out / "api-bodies", traces_dir=out / "traces", trace_id="t" * 32,
        max_cost_usd=kw.pop("max_cost_usd", None),
        script=ModelScript.from_yaml(script) if script is not None else None,
        secrets=[RUN_SECRET], model_api="gemini", **kw)


@pytest.fixture
def gateway(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModelGateway]:
    # Scripted runs must never be forwarded: the upstream is a closed port.
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("GEMINI_API_KEY", REAL_KEY)
    with ModelGateway(bind_host="127.0.0.1") as gw:
        yield gw


def test_scripted_session_as_gemini_cli_talks(gateway: ModelGateway, tmp_path: Path) -> None:
    handle = open_run(gateway, tmp_path / "run")
    key = {"x-goog-api-key": handle.token}
    with httpx.Client(base_url=f"http://127.0.0.1:{gateway.port}", timeout=10) as c:
        side = c.post("/v1beta/models/gemini-3.5-flash-lite:generateContent", json=CLASSIFIER,
                      headers=key)
        first = c.post(STREAM, json=conversation("Create the file."), headers=key)
        count = c.post(f"/v1beta/models/{MODEL}:countTokens", json=conversation("x"),
                       headers=key)
        second = c.post(STREAM, json=conversation("Create the file.", "tool output"),
                        headers=key)
        stranger = c.post(STREAM, json=conversation("x"), headers={"x-goog-api-key": "nope"})
    gateway.close_run(handle)

    # the classifier's answer parses as the CLI's schema wants, and consumed no turn
    routing = json.loads(side.json()["candidates"][0]["content"]["parts"][0]["text"])
    assert set(routing) == {"complexity_reasoning", "complexity_score"}
    assert first.status_code == 200 and first.headers["content-type"].startswith(
        "text/event-stream")
    chunks = sse_chunks(first.content)
    assert parts_of(chunks) == [{"functionCall": {
        "name": "run_shell_command", "args": {"command": "echo hi > /workspace/x.txt"}}}]
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    assert chunks[-1]["usageMetadata"] == {"promptTokenCount": 1000, "candidatesTokenCount": 50,
                                           "totalTokenCount": 1050}
    assert count.json()["totalTokens"] > 0
    final = sse_chunks(second.content)
    assert "".join(p["text"] for p in parts_of(final)).startswith("done, the value is")
    assert final[-1]["usageMetadata"]["cachedContentTokenCount"] == 1000
    assert stranger.status_code == 401 and stranger.json()["error"]["status"] == "UNAUTHENTICATED"

    # two turns; countTokens is neither a request nor metered; flash prices
    assert (handle.turns, handle.requests) == (2, 3)
    assert (handle.input_tokens, handle.output_tokens, handle.cache_read_input_tokens) == (
        3010, 155, 1000)
    expected = ((10 * 0.10 + 5 * 0.40)  # classifier: flash-lite
                + (1000 * 0.30 + 50 * 2.50) + (2000 * 0.30 + 100 * 2.50 + 1000 * 0.03)) / 1e6
    assert handle.cost_usd == pytest.approx(expected)
    assert handle.errors == []

    bodies = tmp_path / "run" / "api-bodies"
    assert len(list(bodies.iterdir())) == 8
    req = read_json(bodies / "0002.request.json")
    assert req["path"] == STREAM and req["headers"]["x-goog-api-key"] == "[REDACTED]"
    resp = read_json(bodies / "0004.response.json")
    assert resp["usage"]["promptTokenCount"] == 3000 and resp["cost_usd"] > 0
    # the run secret was cut in two by the stream; the record holds neither half
    assert RUN_SECRET in "".join(p["text"] for p in parts_of(final))
    for needle in (RUN_SECRET, handle.token, REAL_KEY, RUN_SECRET[:10], RUN_SECRET[-10:]):
        assert files_containing(tmp_path / "run", needle) == [], needle


def test_the_cost_cap_refuses_the_next_call_for_good(
        gateway: ModelGateway, tmp_path: Path) -> None:
    handle = open_run(gateway, tmp_path / "run", max_cost_usd=0.0001)
    with httpx.Client(base_url=f"http://127.0.0.1:{gateway.port}", timeout=10) as c:
        first = c.post(WHOLE, json=conversation("go"), headers={"x-goog-api-key": handle.token})
        refused = c.post(STREAM, json=conversation("go", "more"),
                         headers={"x-goog-api-key": handle.token})
    gateway.close_run(handle)
    parts = first.json()["candidates"][0]["content"]["parts"]
    assert parts[0]["functionCall"]["name"] == "run_shell_command"
    assert handle.stopped_reason is not None and "max_cost_usd" in handle.stopped_reason
    # a status Gemini CLI does not retry, in Google's shape
    assert refused.status_code == 402
    assert refused.json()["error"]["status"] == "FAILED_PRECONDITION"
    assert "run stopped" in refused.json()["error"]["message"]
    assert read_json(tmp_path / "run" / "api-bodies" / "0002.response.json")["refused"] is True


@pytest.fixture
def upstream() -> Iterator[ModelGateway]:
    """A scripted gateway standing in for Google's API; its only valid key is REAL_KEY."""
    with ModelGateway(bind_host="127.0.0.1") as gw:
        yield gw


def test_forwarding_with_the_key_from_the_host(
        upstream: ModelGateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    up = open_run(upstream, tmp_path / "up", token=REAL_KEY)
    monkeypatch.setenv("GEMINI_API_KEY", REAL_KEY)
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", f"http://127.0.0.1:{upstream.port}/")
    with ModelGateway(bind_host="127.0.0.1") as fwd:
        handle = open_run(fwd, tmp_path / "run", script=None)
        assert not handle.scripted and fwd.model_source(handle) == "live"
        key = {"x-goog-api-key": handle.token}
        with httpx.Client(base_url=f"http://127.0.0.1:{fwd.port}", timeout=10) as c:
            whole = c.post(WHOLE, json=conversation("go"), headers=key)
            with c.stream("POST", STREAM, json=conversation("go", "out"), headers=key) as r:
                raw = b"".join(r.iter_raw())
                status = r.status_code
        fwd.close_run(handle)
    upstream.close_run(up)

    assert whole.status_code == 200 and status == 200
    assert whole.json()["candidates"][0]["content"]["parts"][0]["functionCall"]["args"] == {
        "command": "echo hi > /workspace/x.txt"}
    text = "".join(p["text"] for p in parts_of(sse_chunks(raw)))
    assert text == f"done, the value is 0123456789{RUN_SECRET}0123456789"
    assert up.requests == 2 and handle.requests == 2 and handle.errors == []
    assert (handle.input_tokens, handle.output_tokens, handle.cache_read_input_tokens) == (
        3000, 150, 1000)
    assert handle.cost_usd == pytest.approx(
        (1000 * 0.30 + 50 * 2.50 + 2000 * 0.30 + 100 * 2.50 + 1000 * 0.03) / 1e6)

    bodies = tmp_path / "run" / "api-bodies"
    streamed = read_json(bodies / "0002.response.json")
    assert streamed["mode"] == "forward" and streamed["usage"]["cachedContentTokenCount"] == 1000
    assert streamed["message"]["candidates"][0]["content"]["parts"][0]["text"] == (
        "done, the value is 0123456789[REDACTED]0123456789")
    assert all(e["event"] == "message" for e in streamed["events"])
    # the upstream saw the real key, never the run token; no file holds either
    up_req = read_json(tmp_path / "up" / "api-bodies" / "0001.request.json")
    assert up_req["headers"]["x-goog-api-key"] == "[REDACTED]"
    for needle in (REAL_KEY, handle.token, RUN_SECRET, RUN_SECRET[:10], RUN_SECRET[-10:]):
        assert files_containing(tmp_path, needle) == [], needle


def test_no_key_and_no_script_is_refused_at_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.delenv("GOOGLE_GEMINI_BASE_URL", raising=False)
    with ModelGateway(bind_host="127.0.0.1") as gw:
        handle = open_run(gw, tmp_path / "run", script=None)
        source = gw.model_source(handle)
        r = httpx.post(f"http://127.0.0.1:{gw.port}{STREAM}", json=conversation("go"),
                       headers={"x-goog-api-key": handle.token}, timeout=10)
        gw.close_run(handle)
    assert source == "none"
    assert r.status_code == 402 and r.json()["error"]["status"] == "FAILED_PRECONDITION"
    assert handle.unreachable == "no GEMINI_API_KEY and no --model-script"
    assert handle.unreachable in r.json()["error"]["message"]
