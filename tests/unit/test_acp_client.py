"""The ACP client over an in-memory process (no Docker): requests, answers to the agent's
requests, notifications, every frame recorded in order, and the end of stdout."""

from __future__ import annotations

import json
import queue
import threading
from pathlib import Path

import pytest

from pytest_axp.agents.acp_client import (
    FROM_AGENT,
    TO_AGENT,
    AcpClosed,
    AcpConnection,
    AcpError,
    MethodNotFound,
)


class Pipe:
    """A SandboxProcess whose other end is a scripted agent in a thread."""

    def __init__(self) -> None:
        self.to_agent: queue.Queue[dict | None] = queue.Queue()
        self.from_agent: queue.Queue[bytes | None] = queue.Queue()
        self.command_id = "c1"
        self.stderr_path = Path("/dev/null")

    def write(self, data: bytes) -> None:
        self.to_agent.put(json.loads(data))

    def read_line(self, timeout: float | None = None) -> bytes | None:
        return self.from_agent.get(timeout=timeout)

    def close_stdin(self) -> None:
        self.to_agent.put(None)

    def kill(self) -> None:
        self.from_agent.put(None)

    def wait(self, timeout: float | None = None) -> int | None:
        return 0

    def say(self, frame: dict | str) -> None:
        text = frame if isinstance(frame, str) else json.dumps(frame)
        self.from_agent.put(text.encode() + b"\n")


def test_a_session_round_trip_records_every_frame_in_order():
    pipe = Pipe()
    frames: list[tuple[str, dict]] = []
    notes: list[str] = []

    def on_request(method, params):
        if method == "session/request_permission":
            return {"outcome": {"outcome": "selected", "optionId": "ok"}}
        raise MethodNotFound(method)

    conn = AcpConnection(pipe, lambda d, f: frames.append((d, f)), on_request,
                         lambda m, p: notes.append(p["update"]["sessionUpdate"]))
    conn.start()

    def agent():
        req = pipe.to_agent.get()
        pipe.say({"jsonrpc": "2.0", "method": "session/update",
                  "params": {"update": {"sessionUpdate": "tool_call"}}})
        pipe.say("not json at all")
        pipe.say({"jsonrpc": "2.0", "id": 7, "method": "session/request_permission",
                  "params": {}})
        assert pipe.to_agent.get()["result"]["outcome"]["optionId"] == "ok"
        pipe.say({"jsonrpc": "2.0", "id": 8, "method": "fs/read_text_file", "params": {}})
        assert pipe.to_agent.get()["error"]["code"] == -32601
        pipe.say({"jsonrpc": "2.0", "id": req["id"], "result": {"stopReason": "end_turn"}})
        bad = pipe.to_agent.get()
        pipe.say({"jsonrpc": "2.0", "id": bad["id"], "error": {"code": -32603,
                                                               "message": "boom"}})

    t = threading.Thread(target=agent)
    t.start()
    assert conn.request("session/prompt", {}, timeout=10) == {"stopReason": "end_turn"}
    with pytest.raises(AcpError, match="session/new failed: boom"):
        conn.request("session/new", {}, timeout=10)
    t.join(10)
    assert notes == ["tool_call"]
    assert [(d, f.get("method") or ("axp_stdout" in f and "stdout") or "answer")
            for d, f in frames] == [
        (TO_AGENT, "session/prompt"), (FROM_AGENT, "session/update"),
        (FROM_AGENT, "stdout"), (FROM_AGENT, "session/request_permission"),
        (TO_AGENT, "answer"), (FROM_AGENT, "fs/read_text_file"), (TO_AGENT, "answer"),
        (FROM_AGENT, "answer"), (TO_AGENT, "session/new"), (FROM_AGENT, "answer")]


def test_end_of_stdout_fails_the_pending_calls():
    pipe = Pipe()
    conn = AcpConnection(pipe, lambda d, f: None, lambda m, p: {}, lambda m, p: None)
    conn.start()
    call = conn.call("initialize", {})
    pipe.kill()
    with pytest.raises(AcpClosed):
        call.result(10)
    assert conn.closed.wait(10)
    with pytest.raises(AcpClosed):
        conn.request("session/new", {}, timeout=10)
    with pytest.raises(TimeoutError):
        pending = AcpConnection(Pipe(), lambda d, f: None, lambda m, p: {},
                                  lambda m, p: None).call("x", {})
        pending.result(0.01)
