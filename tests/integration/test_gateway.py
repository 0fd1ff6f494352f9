"""The model gateway against the real Claude Code CLI on the host (no Docker needed).

The CLI runs as a non-root user (created on demand) so --dangerously-skip-permissions works; with
no way to switch users it falls back to IS_SANDBOX=1. Every run talks only to 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from pytest_axp.gateway import ModelGateway, ModelScript, RunHandle

REAL_KEY = "sk-test-SECRET"
AGENT_USER = "axptest"
SONNET = "claude-sonnet-4-5"



_cli_path: list[Path] = []


@pytest.fixture(scope="session")
def cli() -> Path:
    """The pinned Claude Code binary, fetched like the sandbox image gets it; never skipped.

    It is linked into a world-readable folder so the unprivileged user can run it."""
    import tempfile

    from pytest_axp.agents.claude_layer import claude_binary
    from pytest_axp.agents.command import link_or_copy

    folder = Path(tempfile.mkdtemp(prefix="axp-cli-"))
    folder.chmod(0o755)
    target = folder / "claude"
    link_or_copy(claude_binary(), target)
    target.chmod(0o755)
    _cli_path[:] = [target]
    yield target
    shutil.rmtree(folder, ignore_errors=True)


needs_cli = pytest.mark.usefixtures("cli")


@pytest.fixture(scope="session")
def run_as() -> tuple[list[str], dict[str, str], str | None]:
    """(argv prefix, extra env, user name) for running the CLI unprivileged."""
    if os.geteuid() != 0:
        return [], {}, None
    try:
        pwd.getpwnam(AGENT_USER)
    except KeyError:
        subprocess.run(["useradd", "-m", AGENT_USER], capture_output=True)
    try:
        pwd.getpwnam(AGENT_USER)
    except KeyError:
        # root without a second user: the CLI's own escape hatch
        return [], {"IS_SANDBOX": "1"}, None
    runuser = shutil.which("runuser") or "/usr/sbin/runuser"
    return [runuser, "-u", AGENT_USER, "--"], {}, AGENT_USER


@dataclass
class Sandbox:
    workspace: Path
    config: Path
    out: Path

    @property
    def bodies(self) -> Path:
        return self.out / "api-bodies"

    @property
    def traces(self) -> Path:
        return self.out / "traces"


@pytest.fixture
def sandbox(
    run_as: tuple[list[str], dict[str, str], str | None], tmp_path: Path
) -> Iterator[Sandbox]:
    # Not under tmp_path: pytest's base temp dir is private to root, the agent user could not
    # enter it.
    root = Path(tempfile.mkdtemp(prefix="axp-gw-", dir="/tmp"))
    os.chmod(root, 0o755)
    box = Sandbox(root / "workspace", root / "config", tmp_path / "out")
    box.workspace.mkdir()
    box.config.mkdir()
    user = run_as[2]
    if user:
        for p in (box.workspace, box.config):
            shutil.chown(p, user=user)
    try:
        yield box
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def gateway() -> Iterator[ModelGateway]:
    # The upstream must never be used by scripted runs: point it at a closed port.
    with ModelGateway(
        upstream_url="http://127.0.0.1:9", api_key=REAL_KEY, bind_host="127.0.0.1"
    ) as gw:
        yield gw


def open_run(
    gw: ModelGateway, box: Sandbox, script: ModelScript | None = None, **kw: Any
) -> RunHandle:
    return gw.open_run(
        "run-" + box.workspace.parent.name,
        bodies_dir=box.bodies,
        traces_dir=box.traces,
        trace_id="0123456789abcdef0123456789abcdef",
        max_cost_usd=kw.pop("max_cost_usd", None),
        script=script,
        **kw,
    )


@dataclass
class CliResult:
    rc: int
    out: dict[str, Any] | None
    stderr: str
    seconds: float


def run_cli(
    gw: ModelGateway,
    handle: RunHandle,
    box: Sandbox,
    run_as: tuple[list[str], dict[str, str], str | None],
    *,
    prompt: str = "do the task",
    max_turns: int = 6,
    protocol: str = "http/json",
) -> CliResult:
    base = f"http://127.0.0.1:{gw.port}"
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(box.config),
        "ANTHROPIC_BASE_URL": base,
        "ANTHROPIC_API_KEY": handle.token,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "CLAUDE_CODE_MAX_RETRIES": "1",
        "API_TIMEOUT_MS": "20000",
        "CLAUDE_CONFIG_DIR": str(box.config),
        "CLAUDE_CODE_ENABLE_TELEMETRY": "1",
        "CLAUDE_CODE_ENHANCED_TELEMETRY_BETA": "1",
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_LOGS_EXPORTER": "otlp",
        "OTEL_METRICS_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
        "OTEL_EXPORTER_OTLP_ENDPOINT": base,
        "OTEL_EXPORTER_OTLP_HEADERS": f"x-axp-run-token={handle.token}",
        **run_as[1],
    }
    argv = [
        *run_as[0], "/usr/bin/env", "-i", *[f"{k}={v}" for k, v in env.items()],
        str(_cli_path[0]), "-p", prompt, "--output-format", "json", "--max-turns", str(max_turns),
        "--model", SONNET, "--dangerously-skip-permissions",
    ]
    started = time.monotonic()
    proc = subprocess.run(
        argv, cwd=box.workspace, capture_output=True, text=True, timeout=90, env={}
    )
    seconds = time.monotonic() - started
    try:
        out = json.loads(proc.stdout)
    except ValueError:
        out = None
    return CliResult(proc.returncode, out, proc.stderr, seconds)


def write_and_bash(box: Sandbox, extra: str = "") -> ModelScript:
    hello = box.workspace / "hello.txt"
    return ModelScript.from_yaml(
        f"""
turns:
  - tool_use: {{name: Write, input: {{file_path: {hello}, content: "hello\\n"}}}}
  - tool_use: {{name: Bash, input: {{command: "cat {hello}"}}}}
  - text: "Done."
usage: {{input_tokens: 120, output_tokens: 30}}
{extra}
"""
    )


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def files_containing(root: Path, needle: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle.encode() in p.read_bytes()]


def body_pairs(bodies: Path) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    names = sorted(p.name for p in bodies.iterdir())
    n = len(names) // 2
    assert names == [f"{i:04d}.{k}.json" for i in range(1, n + 1) for k in ("request", "response")]
    return [
        (read_json(bodies / f"{i:04d}.request.json"), read_json(bodies / f"{i:04d}.response.json"))
        for i in range(1, n + 1)
    ]


def span_names(otlp: dict[str, Any]) -> set[str]:
    return {
        s["name"]
        for rs in otlp["resourceSpans"]
        for ss in rs.get("scopeSpans", [])
        for s in ss.get("spans", [])
    }


def log_events(logs: dict[str, Any]) -> list[str]:
    return [
        r.get("body", {}).get("stringValue", "")
        for rl in logs["resourceLogs"]
        for sl in rl.get("scopeLogs", [])
        for r in sl.get("logRecords", [])
    ]


# ---- scripted mode with the real CLI --------------------------------------------------------


@needs_cli
def test_scripted_write_and_bash(gateway: ModelGateway, sandbox: Sandbox, run_as: Any) -> None:
    handle = open_run(gateway, sandbox, write_and_bash(sandbox), secrets=["my-run-secret"])
    res = run_cli(gateway, handle, sandbox, run_as, prompt="write hello (my-run-secret)")
    gateway.close_run(handle)
    assert res.rc == 0, res.stderr
    assert (sandbox.workspace / "hello.txt").read_text() == "hello\n"
    out = res.out
    assert out is not None and out["is_error"] is False and out["result"] == "Done."
    assert out["num_turns"] == 3
    assert out["usage"]["input_tokens"] == 360 and out["usage"]["output_tokens"] == 90
    assert out["total_cost_usd"] == pytest.approx(0.00243)
    snap = handle.snapshot()
    assert snap["requests"] == 3 and snap["turns"] == 3
    assert (snap["input_tokens"], snap["output_tokens"]) == (360, 90)
    assert snap["cost_usd"] == pytest.approx(out["total_cost_usd"])
    assert snap["stopped_reason"] is None and snap["errors"] == []

    pairs = body_pairs(sandbox.bodies)
    assert len(pairs) == 3
    for i, (req, resp) in enumerate(pairs):
        assert req["method"] == "POST" and req["path"] == "/v1/messages?beta=true"
        assert req["headers"]["x-api-key"] == "[REDACTED]"
        assert req["body"]["model"] == SONNET and req["body"]["stream"] is True
        assert resp["status"] == 200 and resp["script"] == {"kind": "turn", "turn_index": i}
        assert next(e["event"] for e in resp["events"]) == "message_start"
        assert resp["events"][-1]["event"] == "message_stop"
    write_id = pairs[0][1]["message"]["content"][0]["id"]
    tool_results = [
        b for m in pairs[1][0]["body"]["messages"] if isinstance(m.get("content"), list)
        for b in m["content"] if b.get("type") == "tool_result"
    ]
    assert [b["tool_use_id"] for b in tool_results] == [write_id]
    assert pairs[2][1]["message"]["content"] == [{"type": "text", "text": "Done."}]

    for secret in (handle.token, REAL_KEY, "my-run-secret"):
        assert files_containing(sandbox.out, secret) == []
    assert files_containing(sandbox.config, REAL_KEY) == []
    assert "[REDACTED]" in (sandbox.bodies / "0001.request.json").read_text()

    otlp = read_json(sandbox.traces / "0123456789abcdef0123456789abcdef.agent.otlp.json")
    logs = read_json(sandbox.traces / "0123456789abcdef0123456789abcdef.agent.logs.json")
    assert {"claude_code.interaction", "claude_code.llm_request", "claude_code.tool"} <= span_names(
        otlp
    )
    assert otlp["resourceMetrics"]
    assert "claude_code.api_request" in log_events(logs)


@needs_cli
def test_protobuf_telemetry(gateway: ModelGateway, sandbox: Sandbox, run_as: Any) -> None:
    script = ModelScript.from_yaml(
        "turns: [{tool_use: {name: Bash, input: {command: 'echo hi'}}}, {text: ok}]\n"
        "usage: {input_tokens: 10, output_tokens: 2}"
    )
    handle = open_run(gateway, sandbox, script)
    res = run_cli(gateway, handle, sandbox, run_as, protocol="http/protobuf")
    gateway.close_run(handle)
    assert res.rc == 0, res.stderr
    assert handle.errors == [] and handle.telemetry_posts >= 3
    otlp = read_json(sandbox.traces / "0123456789abcdef0123456789abcdef.agent.otlp.json")
    logs = read_json(sandbox.traces / "0123456789abcdef0123456789abcdef.agent.logs.json")
    assert {"claude_code.llm_request", "claude_code.tool"} <= span_names(otlp)
    span = otlp["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert (
        len(span["traceId"]) == 32
        and len(span["spanId"]) == 16
        and span["startTimeUnixNano"].isdigit()
    )
    metric_names = {
        m["name"]
        for rm in otlp["resourceMetrics"]
        for sm in rm["scopeMetrics"]
        for m in sm["metrics"]
    }
    assert "claude_code.token.usage" in metric_names
    assert "claude_code.tool_result" in log_events(logs)
    assert files_containing(sandbox.out, handle.token) == []


@needs_cli
def test_max_cost_stops_the_run_promptly(
    gateway: ModelGateway, sandbox: Sandbox, run_as: Any
) -> None:
    script = ModelScript.from_yaml(
        "turns: [{tool_use: {name: Bash, input: {command: 'echo 1'}}},"
        " {tool_use: {name: Bash, input: {command: 'echo 2'}}}, {text: done}]\n"
        "usage: {input_tokens: 1000, output_tokens: 1000}"  # 0.018 USD per turn at Sonnet prices
    )
    handle = open_run(gateway, sandbox, script, max_cost_usd=0.01)
    res = run_cli(gateway, handle, sandbox, run_as)
    gateway.close_run(handle)
    assert handle.stopped_reason == "max_cost_usd exceeded: 0.0180 > 0.01"
    assert res.rc == 1 and res.out is not None and res.out["is_error"] is True
    assert "max_cost_usd exceeded" in res.out["result"]
    assert res.seconds < 15
    assert handle.requests == 2  # one refusal, no retries
    pairs = body_pairs(sandbox.bodies)
    assert pairs[1][1]["status"] == 402 and pairs[1][1]["refused"] is True
    assert pairs[1][1]["body"]["error"]["message"].startswith(
        "axp: run stopped: max_cost_usd exceeded"
    )


@needs_cli
def test_error_turn_ends_the_cli_with_is_error(
    gateway: ModelGateway, sandbox: Sandbox, run_as: Any
) -> None:
    script = ModelScript.from_yaml(
        "turns: [{error: {status: 500, message: overloaded}}, {text: never}]"
    )
    handle = open_run(gateway, sandbox, script)
    res = run_cli(gateway, handle, sandbox, run_as)
    gateway.close_run(handle)
    assert res.rc == 1 and res.out is not None and res.out["is_error"] is True
    assert res.out["api_error_status"] == 500 and res.out["terminal_reason"] == "api_error"
    pairs = body_pairs(sandbox.bodies)
    # first try + CLAUDE_CODE_MAX_RETRIES=1, both answered by the same error turn
    assert len(pairs) == 2
    assert all(
        r["status"] == 500 and r["body"]["error"]["message"] == "overloaded" for _, r in pairs
    )
    assert handle.errors and "scripted error 500" in handle.errors[0]


@needs_cli
def test_parallel_runs_each_consume_their_own_turns(
    gateway: ModelGateway, run_as: Any, tmp_path: Path
) -> None:
    boxes = []
    for name in ("a", "b"):
        root = Path(tempfile.mkdtemp(prefix="axp-gw-", dir="/tmp"))
        os.chmod(root, 0o755)
        box = Sandbox(root / "workspace", root / "config", tmp_path / name)
        box.workspace.mkdir()
        box.config.mkdir()
        if run_as[2]:
            for p in (box.workspace, box.config):
                shutil.chown(p, user=run_as[2])
        boxes.append(box)
    try:
        handles = [open_run(gateway, box, write_and_bash(box)) for box in boxes]
        with ThreadPoolExecutor(2) as pool:
            results = list(
                pool.map(
                    lambda hb: run_cli(gateway, hb[0], hb[1], run_as),
                    zip(handles, boxes, strict=True),
                )
            )
        for handle, box, res in zip(handles, boxes, results, strict=True):
            gateway.close_run(handle)
            assert res.rc == 0, res.stderr
            assert (box.workspace / "hello.txt").read_text() == "hello\n"
            assert handle.requests == 3 and len(body_pairs(box.bodies)) == 3
    finally:
        for box in boxes:
            shutil.rmtree(box.workspace.parent, ignore_errors=True)


# ---- forward mode -----------------------------------------------------------------------------


@pytest.fixture
def upstream() -> Iterator[ModelGateway]:
    """A scripted gateway standing in for the Anthropic API; its only valid key is REAL_KEY."""
    with ModelGateway(bind_host="127.0.0.1", api_key="unused-upstream-key") as gw:
        yield gw


@needs_cli
def test_forward_mode_with_real_key(
    upstream: ModelGateway, sandbox: Sandbox, run_as: Any, tmp_path: Path
) -> None:
    up = upstream.open_run(
        "upstream",
        bodies_dir=tmp_path / "up-bodies",
        traces_dir=tmp_path / "up-traces",
        trace_id="up",
        max_cost_usd=None,
        script=write_and_bash(sandbox),
        token=REAL_KEY,
    )
    with ModelGateway(
        upstream_url=f"http://127.0.0.1:{upstream.port}", api_key=REAL_KEY, bind_host="127.0.0.1"
    ) as fwd:
        handle = open_run(fwd, sandbox)
        assert not handle.scripted
        res = run_cli(fwd, handle, sandbox, run_as)
        fwd.close_run(handle)
    upstream.close_run(up)
    assert res.rc == 0, res.stderr
    assert (sandbox.workspace / "hello.txt").read_text() == "hello\n"
    # The upstream accepted every call, so it saw the real key; the sandbox only ever had its
    # run token.
    assert up.requests == 3 and handle.requests == 3
    assert handle.errors == []
    assert handle.cost_usd == pytest.approx(0.00243) and res.out["total_cost_usd"] == pytest.approx(
        0.00243
    )
    assert (handle.input_tokens, handle.output_tokens) == (360, 90)
    pairs = body_pairs(sandbox.bodies)
    assert [r["mode"] for _, r in pairs] == ["forward"] * 3
    assert pairs[0][1]["message"]["content"][0]["name"] == "Write"
    assert pairs[0][1]["message"]["content"][0]["input"]["content"] == "hello\n"
    up_req = read_json(tmp_path / "up-bodies" / "0001.request.json")
    assert up_req["headers"]["x-api-key"] == "[REDACTED]"
    assert "x-axp-run-token" not in up_req["headers"]
    for root in (sandbox.out, sandbox.config, tmp_path / "up-bodies"):
        assert files_containing(root, REAL_KEY) == []
    assert files_containing(sandbox.out, handle.token) == []
    # the token never leaves the gateway
    assert files_containing(tmp_path / "up-bodies", handle.token) == []


def test_forward_streams_sse_as_it_arrives(upstream: ModelGateway, tmp_path: Path) -> None:
    script = ModelScript.from_yaml(
        "turns: [{text: 'streamed slowly'}]\nusage: {input_tokens: 5, output_tokens: 3}\n"
        "stream_delay_ms: 150"
    )
    up = upstream.open_run(
        "up",
        bodies_dir=tmp_path / "ub",
        traces_dir=tmp_path / "ut",
        trace_id="u",
        max_cost_usd=None,
        script=script,
        token=REAL_KEY,
    )
    with ModelGateway(
        upstream_url=f"http://127.0.0.1:{upstream.port}", api_key=REAL_KEY, bind_host="127.0.0.1"
    ) as fwd:
        handle = fwd.open_run(
            "f",
            bodies_dir=tmp_path / "fb",
            traces_dir=tmp_path / "ft",
            trace_id="f",
            max_cost_usd=None,
        )
        arrivals: list[tuple[float, bytes]] = []
        body = {"model": SONNET, "stream": True, "max_tokens": 10, "tools": [{"name": "Bash"}],
                "messages": [{"role": "user", "content": "hi"}]}
        with httpx.stream(
            "POST",
            f"http://127.0.0.1:{fwd.port}/v1/messages?beta=true",
            json=body,
            headers={"x-api-key": handle.token, "anthropic-version": "2023-06-01"},
            timeout=10,
        ) as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith(
                "text/event-stream"
            )
            for chunk in r.iter_raw():
                arrivals.append((time.monotonic(), chunk))
        fwd.close_run(handle)
    upstream.close_run(up)
    text = b"".join(c for _, c in arrivals).decode()
    assert text.count("event: ") == 7
    first = next(t for t, c in arrivals if b"message_start" in c)
    last = next(t for t, c in arrivals if b"message_stop" in c)
    # six 150 ms pauses upstream; buffering would deliver everything at once
    assert last - first > 0.6
    assert handle.cost_usd > 0 and handle.output_tokens == 3
    resp = read_json(tmp_path / "fb" / "0001.response.json")
    assert resp["message"]["content"] == [{"type": "text", "text": "streamed slowly"}]


# ---- HTTP behaviour without the CLI -----------------------------------------------------------


def test_http_surface(gateway: ModelGateway, tmp_path: Path) -> None:
    base = f"http://127.0.0.1:{gateway.port}"
    script = ModelScript.from_yaml(
        "turns: [{tool_use: {name: Bash, input: {command: ls}}}]\n"
        "usage: {input_tokens: 4, output_tokens: 2}"
    )
    handle = gateway.open_run(
        "h",
        bodies_dir=tmp_path / "b",
        traces_dir=tmp_path / "t",
        trace_id="t",
        max_cost_usd=None,
        script=script,
    )
    with httpx.Client(base_url=base, timeout=10) as c:
        assert c.head("/api/hello").status_code == 200
        assert c.get("/api/hello").json() == {}
        assert c.get("/whatever/else").status_code == 200

        bad = c.post("/v1/messages", json={"messages": []}, headers={"x-api-key": "nope"})
        assert bad.status_code == 401
        assert bad.json() == {
            "type": "error",
            "error": {
                "type": "authentication_error",
                "message": "axp gateway: unknown or expired run token",
            },
        }

        body = {
            "model": "claude-haiku-4-5",
            "stream": False,
            "max_tokens": 5,
            "tools": [{"name": "Bash"}],
            "messages": [{"role": "user", "content": "x"}],
        }
        r = c.post("/v1/messages", json=body, headers={"authorization": f"Bearer {handle.token}"})
        assert r.status_code == 200
        msg = r.json()
        assert msg["type"] == "message" and msg["content"][0]["type"] == "tool_use"
        assert msg["content"][0]["input"] == {"command": "ls"} and msg["stop_reason"] == "tool_use"

        side = c.post(
            "/v1/messages",
            json={"model": "claude-haiku-4-5", "max_tokens": 5, "messages": []},
            headers={"x-api-key": handle.token},
        )
        assert side.json()["content"][0]["text"].startswith("(axp scripted model")

        count = c.post(
            "/v1/messages/count_tokens?beta=true", json=body, headers={"x-api-key": handle.token}
        )
        assert count.status_code == 200 and count.json()["input_tokens"] > 0

        telemetry = c.post(
            "/v1/logs", json={"resourceLogs": []}, headers={"x-axp-run-token": "unknown"}
        )
        assert telemetry.status_code == 200
        before = gateway.unattributed_telemetry
        c.post("/v1/metrics", content=b"", headers={"content-type": "application/x-protobuf"})
        assert gateway.unattributed_telemetry == before + 1

        gateway.close_run(handle)
        after = c.post("/v1/messages", json=body, headers={"x-api-key": handle.token})
        assert after.status_code == 401
    assert handle.turns == 1 and handle.requests == 2
    # haiku prices; the side request is free
    assert handle.cost_usd == pytest.approx((4 * 1 + 2 * 5) / 1e6)
    names = sorted(p.name for p in (tmp_path / "b").iterdir())
    assert names == [f"{i:04d}.{k}.json" for i in (1, 2, 3) for k in ("request", "response")]
    assert (
        read_json(tmp_path / "b" / "0003.request.json")["path"]
        == "/v1/messages/count_tokens?beta=true"
    )


def test_forward_upstream_failures_are_recorded(tmp_path: Path) -> None:
    with ModelGateway(
        upstream_url="http://127.0.0.1:9", api_key=REAL_KEY, bind_host="127.0.0.1"
    ) as gw:
        handle = gw.open_run(
            "x",
            bodies_dir=tmp_path / "b",
            traces_dir=tmp_path / "t",
            trace_id="t",
            max_cost_usd=None,
        )
        r = httpx.post(
            f"http://127.0.0.1:{gw.port}/v1/messages",
            json={"model": "m", "messages": []},
            headers={"x-api-key": handle.token},
            timeout=10,
        )
        gw.close_run(handle)
    assert r.status_code == 502 and r.json()["error"]["type"] == "api_error"
    assert handle.errors and "upstream request failed" in handle.errors[0]
    assert read_json(tmp_path / "b" / "0001.response.json")["status"] == 502
    assert handle.unreachable == "http://127.0.0.1:9 could not be reached (ConnectError)"
    assert gw.model_source(handle) == "live"


def test_no_key_and_no_script_is_refused_at_once_saying_why(tmp_path: Path, monkeypatch) -> None:
    from pytest_axp.gateway.server import NO_MODEL_REASON

    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    with ModelGateway(api_key="", bind_host="127.0.0.1") as gw:
        handle = gw.open_run(
            "x",
            bodies_dir=tmp_path / "b",
            traces_dir=tmp_path / "t",
            trace_id="t",
            max_cost_usd=None,
        )
        r = httpx.post(
            f"http://127.0.0.1:{gw.port}/v1/messages",
            json={"model": "m", "messages": []},
            headers={"x-api-key": handle.token},
            timeout=10,
        )
        source = gw.model_source(handle)
        scripted = gw.open_run(
            "s",
            bodies_dir=tmp_path / "sb",
            traces_dir=tmp_path / "st",
            trace_id="s",
            max_cost_usd=None,
            script=ModelScript.from_yaml("turns: [{text: hi}]"),
        )
        assert gw.model_source(scripted) == "scripted"
        gw.close_run(handle)
        gw.close_run(scripted)
    # The CLI gives up on this answer after one call (no retry storm against nothing).
    assert r.status_code == 402 and r.headers["x-should-retry"] == "false"
    assert NO_MODEL_REASON in r.json()["error"]["message"]
    assert handle.unreachable == NO_MODEL_REASON == "no ANTHROPIC_API_KEY and no --model-script"
    assert source == "none"
    assert read_json(tmp_path / "b" / "0001.response.json")["refused"] is True


def test_forward_passes_upstream_errors_through(upstream: ModelGateway, tmp_path: Path) -> None:
    upstream.open_run(
        "u",
        bodies_dir=tmp_path / "ub",
        traces_dir=tmp_path / "ut",
        trace_id="u",
        max_cost_usd=None,
        script=ModelScript.from_yaml("turns: [{error: {status: 529, message: busy}}]"),
        token=REAL_KEY,
    )
    with ModelGateway(
        upstream_url=f"http://127.0.0.1:{upstream.port}/", api_key=REAL_KEY, bind_host="127.0.0.1"
    ) as fwd:
        handle = fwd.open_run(
            "f",
            bodies_dir=tmp_path / "fb",
            traces_dir=tmp_path / "ft",
            trace_id="f",
            max_cost_usd=None,
        )
        r = httpx.post(
            f"http://127.0.0.1:{fwd.port}/v1/messages?beta=true",
            json={"model": "m", "stream": True, "tools": [{"name": "x"}], "messages": []},
            headers={"x-api-key": handle.token},
            timeout=10,
        )
        fwd.close_run(handle)
    assert r.status_code == 529 and r.json()["error"] == {
        "type": "overloaded_error",
        "message": "busy",
    }
    rec = read_json(tmp_path / "fb" / "0001.response.json")
    assert rec["status"] == 529 and rec["body"]["error"]["message"] == "busy"
    assert handle.errors == ["request 1: upstream HTTP 529"]
