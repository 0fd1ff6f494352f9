"""Routing and authentication of the gateway, and a model API added through the registry.

A real gateway on 127.0.0.1 (no Docker): requests go to the API that registered the path, every
header form of a key finds the same run, and an added API is recorded, metered and capped by the
same machinery as the built-in Messages API."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from pytest_axp.gateway import ModelGateway, ModelScript
from pytest_axp.gateway.apis import (
    Answer,
    Call,
    ErrorReply,
    ModelApi,
    ModelApiRegistry,
    Route,
)
from pytest_axp.gateway.calls import Upstream
from pytest_axp.gateway.http import Request, run_token
from pytest_axp.gateway.messages import MESSAGES
from pytest_axp.gateway.meter import TokenUsage
from pytest_axp.gateway.script import Reply, TextBlock, ToolUseBlock


class EchoApi:
    """A made-up wire format: model in the path, its own error and usage shapes."""

    name = "echo"
    routes = (Route("POST", r"/echo/models/[^/:]+:answer", pattern=True),)
    key_env = "AXP_TEST_ECHO_KEY_UNSET"
    base_url_env = "AXP_TEST_ECHO_URL_UNSET"
    default_upstream = "https://echo.invalid"

    def upstream_headers(self, key: str) -> list[tuple[str, str]]:
        return [("x-goog-api-key", key)]

    def error(self, status: int, message: str, kind: str | None = None) -> ErrorReply:
        return ErrorReply(status, {"echo_error": {"code": status, "text": message}})

    def request_model(self, call: Call) -> str | None:
        return call.request.path.split("/")[-1].split(":")[0]

    def render(self, call: Call, reply: Reply) -> Answer:
        parts = [b.text if isinstance(b, TextBlock) else {"call": b.name, "args": dict(b.input)}
                 for b in reply.blocks]
        usage = {"prompt": reply.usage.input_tokens, "completion": reply.usage.output_tokens}
        return Answer({"parts": parts, "usage": usage}, usage, self.request_model(call))

    def side_answer(self, call: Call) -> Any:
        return {}

    def read_stream(self, events: list[tuple[str, Any]]) -> Answer:
        return Answer(None)

    def read_body(self, body: Any) -> Answer:
        return Answer(body, body.get("usage", {}) if isinstance(body, dict) else {})

    def tokens(self, usage: Mapping[str, Any]) -> TokenUsage:
        return TokenUsage(
            input_tokens=usage.get("prompt", 0), output_tokens=usage.get("completion", 0)
        )


SCRIPT = ModelScript.from_yaml("""
turns:
  - tool_use: {name: shell, input: {cmd: ls}}
  - text: done
usage: {input_tokens: 1000, output_tokens: 1000}
""")
ECHO_URL = "/echo/models/claude-sonnet-4-5:answer"
TOOLS = {"tools": [{"name": "shell"}], "messages": [{"role": "user", "content": "go"}]}


@pytest.fixture
def gateway() -> Iterator[ModelGateway]:
    registry = ModelApiRegistry()
    registry.register(MESSAGES)
    registry.register(EchoApi())
    with ModelGateway(bind_host="127.0.0.1", api_key="", upstream_url="http://127.0.0.1:9",
                      apis=registry) as gw:
        yield gw


def client(gw: ModelGateway) -> httpx.Client:
    return httpx.Client(base_url=f"http://127.0.0.1:{gw.port}", timeout=10)


def open_run(gw: ModelGateway, tmp_path: Path, **kw: Any) -> Any:
    return gw.open_run(
        "r",
        bodies_dir=tmp_path / "bodies",
        traces_dir=tmp_path / "traces",
        trace_id="t",
        max_cost_usd=kw.pop("max_cost_usd", None),
        **kw,
    )


def test_run_token_header_forms() -> None:
    def req(*headers: tuple[str, str]) -> Request:
        return Request("POST", "/", "/", list(headers), b"")

    assert run_token(req(("x-api-key", "a"))) == "a"
    assert run_token(req(("x-goog-api-key", "g"))) == "g"
    assert run_token(req(("authorization", "Bearer  b "))) == "b"
    assert run_token(req(("authorization", "bearer b"))) == "b"
    assert run_token(req(("authorization", "Basic b"))) is None
    assert run_token(req(("authorization", "Bearer "))) is None
    assert run_token(req()) is None


@pytest.mark.parametrize("header", ["x-api-key", "authorization", "x-goog-api-key"])
def test_every_key_header_finds_the_run(gateway: ModelGateway, tmp_path: Path, header: str) -> None:
    handle = open_run(gateway, tmp_path, script=SCRIPT)
    value = f"Bearer {handle.token}" if header == "authorization" else handle.token
    with client(gateway) as c:
        messages = c.post(
            "/v1/messages", json={"model": "claude-haiku-4-5", **TOOLS}, headers={header: value}
        )
        echo = c.post(ECHO_URL, json=TOOLS, headers={header: value})
    gateway.close_run(handle)
    assert messages.status_code == 200 and messages.json()["content"][0]["name"] == "shell"
    assert echo.status_code == 200 and echo.json()["parts"] == ["done"]
    assert handle.requests == 2 and handle.turns == 2
    assert max(p.name for p in (tmp_path / "bodies").iterdir()) == "0002.response.json"


def test_wrong_token_is_refused_in_each_apis_shape(gateway: ModelGateway, tmp_path: Path) -> None:
    handle = open_run(gateway, tmp_path, script=SCRIPT)
    with client(gateway) as c:
        messages = c.post("/v1/messages", json=TOOLS, headers={"x-api-key": handle.token + "x"})
        echo = c.post(ECHO_URL, json=TOOLS, headers={"x-goog-api-key": "axp-run-unknown"})
        none = c.post(ECHO_URL, json=TOOLS)
    gateway.close_run(handle)
    assert messages.status_code == 401
    assert messages.json()["error"] == {"type": "authentication_error",
                                        "message": "axp gateway: unknown or expired run token"}
    assert echo.status_code == none.status_code == 401
    assert echo.json() == {
        "echo_error": {"code": 401, "text": "axp gateway: unknown or expired run token"}
    }
    assert handle.requests == 0 and not (tmp_path / "bodies").exists()


def test_unrouted_requests_are_answered_and_not_recorded(
    gateway: ModelGateway, tmp_path: Path
) -> None:
    handle = open_run(gateway, tmp_path, script=SCRIPT)
    with client(gateway) as c:
        # a GET on a model path, a path no API registered, a pattern that does not match whole
        answers = [
            c.get("/v1/messages", headers={"x-api-key": handle.token}),
            c.post(
                "/v1/responses", json=TOOLS, headers={"authorization": f"Bearer {handle.token}"}
            ),
            c.post(ECHO_URL + "/more", json=TOOLS, headers={"x-api-key": handle.token}),
        ]
    gateway.close_run(handle)
    assert [(r.status_code, r.json()) for r in answers] == [(200, {})] * 3
    assert handle.requests == 0 and not (tmp_path / "bodies").exists()


def test_an_added_api_shares_the_meter_recorder_and_cap(
    gateway: ModelGateway, tmp_path: Path
) -> None:
    handle = open_run(gateway, tmp_path, script=SCRIPT, max_cost_usd=0.01, model_api="echo")
    with client(gateway) as c:
        first = c.post(ECHO_URL, json=TOOLS, headers={"x-goog-api-key": handle.token})
        refused = c.post("/v1/messages", json=TOOLS, headers={"x-api-key": handle.token})
        refused_echo = c.post(ECHO_URL, json=TOOLS, headers={"x-goog-api-key": handle.token})
    gateway.close_run(handle)
    assert first.json()["parts"] == [{"call": "shell", "args": {"cmd": "ls"}}]
    assert (handle.input_tokens, handle.output_tokens) == (1000, 1000)
    assert handle.cost_usd == pytest.approx(0.018)  # the model from the path, priced as Sonnet
    assert handle.stopped_reason == "max_cost_usd exceeded: 0.0180 > 0.01"
    # Refused by each API in its own shape, with the status every refusal has.
    assert refused.status_code == 402 and refused.headers["x-should-retry"] == "false"
    assert refused.json()["error"]["type"] == "billing_error"
    assert refused_echo.status_code == 402
    assert refused_echo.json()["echo_error"]["text"].startswith(
        "axp: run stopped: max_cost_usd exceeded"
    )
    assert handle.requests == 3
    response = json.loads((tmp_path / "bodies" / "0001.response.json").read_text())
    assert (
        response["usage"] == {"prompt": 1000, "completion": 1000} and response["mode"] == "scripted"
    )
    assert response["script"] == {"kind": "turn", "turn_index": 0}


def test_model_source_follows_the_runs_api(tmp_path: Path) -> None:
    registry = ModelApiRegistry()
    registry.register(MESSAGES)
    registry.register(EchoApi())
    with ModelGateway(bind_host="127.0.0.1", api_key="real", apis=registry) as gw:
        messages = open_run(gw, tmp_path / "m")
        echo = open_run(gw, tmp_path / "e", model_api="echo")
        assert (gw.model_source(messages), gw.model_source(echo)) == ("live", "none")
        with pytest.raises(
            KeyError, match="unknown model API 'nope' \\(known: anthropic-messages, echo\\)"
        ):
            open_run(gw, tmp_path / "n", model_api="nope")
    upstream = Upstream("http://127.0.0.1:9", None, default=False)
    with ModelGateway(bind_host="127.0.0.1", apis=registry, upstreams={"echo": upstream}) as gw:
        assert gw.model_source(open_run(gw, tmp_path / "x", model_api="echo")) == "live"


def test_registry() -> None:
    registry = ModelApiRegistry()
    echo = EchoApi()
    assert isinstance(echo, ModelApi) and isinstance(MESSAGES, ModelApi)
    registry.register(echo)
    registry.register(echo)  # the same object again is harmless
    with pytest.raises(ValueError, match="'echo' is already registered"):
        registry.register(EchoApi())
    assert registry.names() == ["echo"] and registry.get("echo") is echo
    assert registry.route("POST", ECHO_URL) == (echo, echo.routes[0])
    assert registry.route("POST", "/v1/messages") is None
    script_reply = SCRIPT.cursor().next_reply(TOOLS)
    assert script_reply.blocks == (ToolUseBlock("shell", {"cmd": "ls"}),)


def test_a_finder_supplies_apis_by_name(tmp_path: Path) -> None:
    registry = ModelApiRegistry()
    registry.register(MESSAGES)
    asked: list[str] = []

    def finder(name: str) -> ModelApi | None:  # stands in for the pytest_axp_model_api hook
        asked.append(name)
        return EchoApi() if name == "echo" else None

    registry.add_finder(finder)
    with ModelGateway(
        bind_host="127.0.0.1", upstream_url="http://127.0.0.1:9", apis=registry
    ) as gw:
        with client(gw) as c:
            handle = open_run(gw, tmp_path / "a", script=SCRIPT)
            before = c.post(ECHO_URL, json=TOOLS, headers={"x-api-key": handle.token})
            echo_run = open_run(gw, tmp_path / "b", script=SCRIPT, model_api="echo")
            after = c.post(ECHO_URL, json=TOOLS, headers={"x-api-key": echo_run.token})
        with pytest.raises(KeyError, match="'other'"):
            open_run(gw, tmp_path / "c", model_api="other")
    assert before.json() == {}  # not routed until some run needed the API
    assert after.json()["parts"] == [{"call": "shell", "args": {"cmd": "ls"}}]
    assert registry.names() == ["anthropic-messages", "echo"] and asked == ["echo", "other"]
