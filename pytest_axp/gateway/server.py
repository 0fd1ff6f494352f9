"""The model gateway: a small asyncio HTTP/1.1 server (h11) on the host that the sandboxed agent
talks to instead of the Anthropic API.

It authenticates each call by a per-run token, answers from a model script or forwards to the
real upstream with the real key, records every body of a run, meters tokens and cost, stops a
run that passes its cost limit, and receives the agent's OTLP telemetry. The event loop runs in
one daemon thread so synchronous callers (pytest items, several threads) can share one gateway.

What Claude Code 2.1.328 sends (measured, `-p`, CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1):
only `POST /v1/messages?beta=true` (stream: true; headers x-api-key, anthropic-version,
anthropic-beta, x-claude-code-session-id, x-stainless-*, user-agent claude-cli/2.1.328), one per
turn, each with the full `tools` list; no title/summary/haiku side requests and no count_tokens.
Without that variable it also sends `HEAD /api/hello` first. Telemetry goes to /v1/traces,
/v1/logs and /v1/metrics (user-agent OTel-OTLP-Exporter-JavaScript/0.208.0) and carries the
headers of OTEL_EXPORTER_OTLP_HEADERS, which is how it is attributed to a run (x-axp-run-token).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets as _secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Sequence

import h11
import httpx

from .otlp import SIGNALS, OtlpStore, decode_export
from .pricing import cost_usd
from .recorder import BodyRecorder, Redactor, redact_headers
from .script import ModelScript, Reply, ScriptCursor, consumes_turn
from .sse import MessageAssembler, SSEParser, encode_event, events_of_message

DEFAULT_UPSTREAM = "https://api.anthropic.com"
RUN_TOKEN_HEADER = "x-axp-run-token"

# How a stopped run's further calls are refused. Measured with Claude Code 2.1.328: 401, 408, 409,
# 429 and 5xx are retried; a 400 invalid_request_error is not retried as such, but the CLI re-sends
# the request up to 5 times with features dropped (betas, thinking display, tool search) in case one
# of them caused the 400; 403/404/413 get misleading messages ("Failed to authenticate", "issue
# with the selected model", "Request too large"). 402 billing_error (the API's documented status for
# billing problems) ends it after that one call with is_error and the message shown verbatim.
# `x-should-retry: false` additionally tells its SDK not to retry.
STOPPED_STATUS = 402
STOPPED_ERROR_TYPE = "billing_error"
# Forwarding to the real API with no key can only fail, after the CLI's retries: refuse at
# once, the way a stopped run is refused, and say why.
NO_MODEL_REASON = "no ANTHROPIC_API_KEY and no --model-script"

_HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "transfer-encoding", "upgrade", "host", "content-length", "content-encoding",
}
_CREDENTIAL_HEADERS = {"x-api-key", "authorization", RUN_TOKEN_HEADER}


def _error_body(kind: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


@dataclass(eq=False)
class RunHandle:
    """One registered run: its token, where its files go, and live counters."""

    run_key: str
    token: str
    bodies_dir: Path
    traces_dir: Path
    trace_id: str
    max_cost_usd: float | None
    requests: int = 0  # POST /v1/messages calls, including refused ones
    turns: int = 0  # main-conversation requests (those carrying `tools`)
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    cost_usd: float = 0.0
    stopped_reason: str | None = None
    # Why the last model call could not reach a model (None once one got an answer).
    unreachable: str | None = None
    errors: list[str] = field(default_factory=list)
    telemetry_posts: int = 0
    closed: bool = False
    _script: ModelScript | None = field(default=None, repr=False)
    _cursor: ScriptCursor | None = field(default=None, repr=False)
    _redactor: Redactor = field(default_factory=lambda: Redactor(()), repr=False)
    _recorder: BodyRecorder | None = field(default=None, repr=False)
    _otlp: OtlpStore | None = field(default=None, repr=False)
    _inflight: int = field(default=0, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __repr__(self) -> str:  # never show the token
        return f"RunHandle(run_key={self.run_key!r}, requests={self.requests}, cost_usd={self.cost_usd:.6f})"

    @property
    def scripted(self) -> bool:
        return self._script is not None

    def snapshot(self) -> dict[str, Any]:
        """Counters as a plain dict (safe to log: no token)."""
        with self._lock:
            return {
                "requests": self.requests,
                "turns": self.turns,
                "input_tokens": self.input_tokens,
                "output_tokens": self.output_tokens,
                "cache_creation_input_tokens": self.cache_creation_input_tokens,
                "cache_read_input_tokens": self.cache_read_input_tokens,
                "cost_usd": self.cost_usd,
                "stopped_reason": self.stopped_reason,
                "errors": list(self.errors),
            }

    def _add_usage(self, model: str | None, usage: dict[str, Any]) -> float:
        cost = cost_usd(model, usage)
        with self._lock:
            for key in ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"):
                value = usage.get(key)
                if isinstance(value, int) and not isinstance(value, bool):
                    setattr(self, key, getattr(self, key) + value)
            self.cost_usd += cost
            limit = self.max_cost_usd
            if limit is not None and self.stopped_reason is None and self.cost_usd > limit:
                self.stopped_reason = f"max_cost_usd exceeded: {self.cost_usd:.4f} > {limit:g}"
        return cost

    def _error(self, message: str) -> None:
        with self._lock:
            self.errors.append(message)


class _Responder:
    """Writes one HTTP response through h11, either whole or streamed chunk by chunk."""

    def __init__(self, conn: h11.Connection, writer: asyncio.StreamWriter, method: str) -> None:
        self._conn = conn
        self._writer = writer
        self._head = method == "HEAD"
        self.started = False
        self.status = 0

    async def _send(self, event: Any) -> None:
        data = self._conn.send(event)
        if data:
            self._writer.write(data)
            await self._writer.drain()

    async def start(self, status: int, headers: Iterable[tuple[str, str]]) -> None:
        self.started = True
        self.status = status
        hdrs = [(k, v) for k, v in headers] + [("server", "axp-gateway")]
        await self._send(h11.Response(status_code=status, headers=hdrs))

    async def send(self, data: bytes) -> None:
        if data and not self._head:
            await self._send(h11.Data(data=data))

    async def end(self) -> None:
        await self._send(h11.EndOfMessage())

    async def send_bytes(self, status: int, body: bytes, content_type: str, headers: Iterable[tuple[str, str]] = ()) -> None:
        hdrs = [("content-type", content_type), ("content-length", str(len(body))), *headers]
        await self.start(status, hdrs)
        await self.send(body)
        await self.end()

    async def send_json(self, status: int, obj: Any, headers: Iterable[tuple[str, str]] = ()) -> None:
        await self.send_bytes(status, json.dumps(obj).encode("utf-8"), "application/json", headers)


@dataclass
class _Request:
    method: str
    target: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None


class ModelGateway:
    """HTTP gateway between sandboxed agents and the model API. See the module docstring."""

    def __init__(
        self,
        *,
        upstream_url: str | None = None,
        api_key: str | None = None,
        script: ModelScript | None = None,
        bind_host: str = "0.0.0.0",
        port: int = 0,
    ) -> None:
        self._upstream = (upstream_url or os.environ.get("ANTHROPIC_BASE_URL") or DEFAULT_UPSTREAM).rstrip("/")
        self._api_key = api_key if api_key is not None else os.environ.get("ANTHROPIC_API_KEY")
        self._script = script
        self._bind_host = bind_host
        self._requested_port = port
        self._port: int | None = None
        self._runs: dict[str, RunHandle] = {}
        self._runs_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None
        self._client: httpx.AsyncClient | None = None
        self._conn_tasks: set[asyncio.Task[Any]] = set()
        self.unattributed_telemetry = 0  # OTLP posts without a known run token (dropped)

    def __repr__(self) -> str:  # the key stays out of reprs and logs
        return f"ModelGateway(upstream={self._upstream!r}, scripted={self._script is not None}, port={self._port})"

    # ---- lifecycle -------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("ModelGateway is not started")
        return self._port

    @property
    def upstream_url(self) -> str:
        return self._upstream

    def _no_model(self) -> bool:
        """Forwarding could only fail: no key for the real API (a custom upstream may
        need none)."""
        return not self._api_key and self._upstream == DEFAULT_UPSTREAM

    def model_source(self, handle: RunHandle) -> str:
        """Where a run's answers come from: scripted, live, or none (nothing to ask)."""
        if handle.scripted:
            return "scripted"
        return "none" if self._no_model() else "live"

    def start(self) -> None:
        if self._thread is not None:
            return
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=self._run_loop, args=(loop,), name="axp-model-gateway", daemon=True)
        self._loop, self._thread = loop, thread
        thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._astart(), loop).result(timeout=30)
        except BaseException:
            self.stop()
            raise

    @staticmethod
    def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        loop.run_forever()

    async def _astart(self) -> None:
        # No overall timeout on upstream calls: a model turn can stream for minutes.
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(None, connect=30.0), follow_redirects=False)
        self._server = await asyncio.start_server(self._on_connection, self._bind_host, self._requested_port)
        self._port = self._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if thread.is_alive():
            try:
                asyncio.run_coroutine_threadsafe(self._astop(), loop).result(timeout=30)
            except Exception:
                pass
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=30)
        if not loop.is_running():
            loop.close()
        self._loop = self._thread = None
        self._server = None
        self._port = None

    async def _astop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._conn_tasks):
            task.cancel()
        if self._conn_tasks:
            await asyncio.gather(*self._conn_tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def __enter__(self) -> "ModelGateway":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- runs ------------------------------------------------------------------------------

    def open_run(
        self,
        run_key: str,
        *,
        bodies_dir: Path,
        traces_dir: Path,
        trace_id: str,
        max_cost_usd: float | None,
        secrets: Sequence[str] = (),
        script: ModelScript | None = None,
        token: str | None = None,
        attempt: int = 1,
    ) -> RunHandle:
        """Register a run and return its handle; `handle.token` is what the sandbox gets as its key.

        `script` overrides the gateway's script for this run only (None: the gateway's script, or
        forward mode if the gateway has none). `token` fixes the run token (tests, or a gateway
        acting as somebody's upstream); by default it is random. `attempt`: which turns of the
        script play (a turn may be limited to some attempts of a retried run).
        """
        token = token or "axp-run-" + _secrets.token_urlsafe(24)
        with self._runs_lock:
            if token in self._runs:
                raise ValueError("a run with this token is already open")
        chosen = script if script is not None else self._script
        redactor = Redactor([*secrets, token, self._api_key])
        handle = RunHandle(
            run_key=run_key,
            token=token,
            bodies_dir=Path(bodies_dir),
            traces_dir=Path(traces_dir),
            trace_id=trace_id,
            max_cost_usd=max_cost_usd,
            _script=chosen,
            _cursor=chosen.cursor(attempt) if chosen is not None else None,
            _redactor=redactor,
        )
        handle._recorder = BodyRecorder(handle.bodies_dir, redactor)
        handle._otlp = OtlpStore(handle.traces_dir, trace_id, redactor)
        with self._runs_lock:
            self._runs[token] = handle
        return handle

    def close_run(self, handle: RunHandle, *, timeout: float = 10.0) -> None:
        """Wait briefly for the run's in-flight calls, flush its files and unregister its token."""
        loop = self._loop
        if loop is not None and loop.is_running():
            asyncio.run_coroutine_threadsafe(self._aclose_run(handle, timeout), loop).result(timeout=timeout + 10)
        else:
            self._finish_close(handle)

    async def _aclose_run(self, handle: RunHandle, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while handle._inflight > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        self._finish_close(handle)

    def _finish_close(self, handle: RunHandle) -> None:
        with self._runs_lock:
            self._runs.pop(handle.token, None)
        handle.closed = True
        if handle._otlp is not None:
            handle._otlp.write()

    def _lookup(self, token: str | None) -> RunHandle | None:
        if not token:
            return None
        with self._runs_lock:
            return self._runs.get(token)

    # ---- HTTP plumbing ---------------------------------------------------------------------

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._conn_tasks.add(task)
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                try:
                    request = await self._read_request(conn, reader, writer)
                except h11.RemoteProtocolError:
                    if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                        responder = _Responder(conn, writer, "GET")
                        await responder.send_json(400, _error_body("invalid_request_error", "malformed HTTP request"))
                    return
                if request is None:
                    return
                responder = _Responder(conn, writer, request.method)
                try:
                    await self._dispatch(request, responder)
                except (ConnectionError, asyncio.CancelledError):
                    raise
                except Exception as exc:  # a bug must not kill the server; tell the client if we still can
                    if not responder.started:
                        await responder.send_json(500, _error_body("api_error", f"axp gateway error: {type(exc).__name__}"))
                    else:
                        return
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    return
                conn.start_next_cycle()
        except (ConnectionError, asyncio.CancelledError, h11.LocalProtocolError, h11.RemoteProtocolError):
            pass
        finally:
            try:
                writer.close()
            except Exception:
                pass
            if task is not None:
                self._conn_tasks.discard(task)

    async def _read_request(
        self, conn: h11.Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> _Request | None:
        head: h11.Request | None = None
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                if conn.they_are_waiting_for_100_continue:
                    writer.write(conn.send(h11.InformationalResponse(status_code=100, headers=[])) or b"")
                conn.receive_data(await reader.read(65536))
            elif isinstance(event, h11.Request):
                head = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                assert head is not None
                target = head.target.decode("latin-1")
                return _Request(
                    method=head.method.decode("ascii"),
                    target=target,
                    path=target.split("?", 1)[0],
                    headers=[(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in head.headers],
                    body=bytes(body),
                )
            else:  # ConnectionClosed or PAUSED
                return None

    async def _dispatch(self, req: _Request, resp: _Responder) -> None:
        if req.method == "POST" and req.path == "/v1/messages":
            await self._messages(req, resp)
        elif req.method == "POST" and req.path == "/v1/messages/count_tokens":
            await self._count_tokens(req, resp)
        elif req.method == "POST" and req.path in SIGNALS:
            await self._telemetry(req, resp)
        else:
            # /api/hello and anything else the CLI probes: answer at once so it never stalls.
            await resp.send_json(200, {})

    # ---- Messages API ----------------------------------------------------------------------

    def _authenticate(self, req: _Request) -> RunHandle | None:
        token = req.header("x-api-key")
        if not token:
            auth = req.header("authorization") or ""
            if auth.lower().startswith("bearer "):
                token = auth[7:].strip()
        return self._lookup(token)

    async def _messages(self, req: _Request, resp: _Responder) -> None:
        await self._authenticated_call(req, resp, count_tokens=False)

    async def _count_tokens(self, req: _Request, resp: _Responder) -> None:
        await self._authenticated_call(req, resp, count_tokens=True)

    async def _authenticated_call(self, req: _Request, resp: _Responder, *,
                                  count_tokens: bool) -> None:
        handle = self._authenticate(req)
        if handle is None:
            await resp.send_json(401, _error_body("authentication_error", "axp gateway: unknown or expired run token"))
            return
        handle._inflight += 1
        try:
            if not count_tokens:  # a model request; token counting is not one
                with handle._lock:
                    handle.requests += 1
            await self._run_call(handle, req, resp, scripted_count_tokens=count_tokens)
        finally:
            handle._inflight -= 1

    async def _run_call(self, handle: RunHandle, req: _Request, resp: _Responder, *, scripted_count_tokens: bool) -> None:
        recorder = handle._recorder
        assert recorder is not None
        seq = recorder.next_seq()
        started = time.monotonic()
        try:
            body: Any = json.loads(req.body.decode("utf-8")) if req.body else {}
        except (UnicodeDecodeError, ValueError):
            body = None
        recorder.write(seq, "request", {
            "seq": seq,
            "time": _now(),
            "method": req.method,
            "path": req.target,
            "headers": redact_headers(req.headers),
            "body": body if body is not None else {"_unparsed": req.body.decode("utf-8", "replace")},
        })
        record: dict[str, Any] = {"seq": seq}

        def finish(status: int, **extra: Any) -> None:
            record.update(status=status, duration_ms=round((time.monotonic() - started) * 1000), **extra)
            recorder.write(seq, "response", record)

        if not isinstance(body, dict):
            err = _error_body("invalid_request_error", "axp gateway: request body is not a JSON object")
            await resp.send_json(400, err)
            handle._error(f"request {seq}: body is not a JSON object")
            finish(400, mode="gateway", body=err)
            return
        if scripted_count_tokens is False and consumes_turn(body):
            with handle._lock:
                handle.turns += 1
        if handle.stopped_reason is not None:
            err = _error_body(STOPPED_ERROR_TYPE, f"axp: run stopped: {handle.stopped_reason}")
            await resp.send_json(STOPPED_STATUS, err, [("x-should-retry", "false")])
            finish(STOPPED_STATUS, mode="gateway", refused=True, body=err)
            return
        if handle._cursor is not None:
            if scripted_count_tokens:
                estimate = {"input_tokens": max(1, len(req.body) // 4)}
                await resp.send_json(200, estimate)
                finish(200, mode="scripted", body=estimate)
            else:
                await self._answer_scripted(handle, seq, body, resp, finish)
        elif self._no_model():
            handle.unreachable = NO_MODEL_REASON
            err = _error_body(STOPPED_ERROR_TYPE, f"axp gateway: model API unreachable: {NO_MODEL_REASON}")
            await resp.send_json(STOPPED_STATUS, err, [("x-should-retry", "false")])
            handle._error(f"request {seq}: refused: {NO_MODEL_REASON}")
            finish(STOPPED_STATUS, mode="gateway", refused=True, body=err)
        else:
            await self._forward(handle, seq, req, body, resp, finish)

    async def _answer_scripted(self, handle: RunHandle, seq: int, body: dict[str, Any], resp: _Responder, finish: Any) -> None:
        assert handle._cursor is not None and handle._script is not None
        reply: Reply = handle._cursor.next_reply(body)
        script_info = {"kind": reply.kind, "turn_index": reply.turn_index}
        if reply.error is not None:
            err = reply.error_body()
            await resp.send_json(reply.error.status, err)
            handle._error(f"request {seq}: scripted error {reply.error.status} at turn {reply.turn_index}: {reply.error.message}")
            finish(reply.error.status, mode="scripted", script=script_info, body=err)
            return
        message = reply.message
        assert message is not None
        usage = dict(message["usage"])
        if body.get("stream"):
            await resp.start(200, [("content-type", "text/event-stream; charset=utf-8"), ("cache-control", "no-cache")])
            events: list[dict[str, Any]] = []
            delay = handle._script.stream_delay_s
            try:
                for name, data in events_of_message(message):
                    if delay and events:
                        await asyncio.sleep(delay)
                    await resp.send(encode_event(name, data))
                    events.append({"event": name, "data": data})
                await resp.end()
            except ConnectionError as exc:
                handle._error(f"request {seq}: client disconnected mid-stream")
                finish(200, mode="scripted", script=script_info, events=handle._redactor.events(events),
                       error=f"client disconnected mid-stream ({type(exc).__name__})")
                raise
            cost = handle._add_usage(message.get("model"), usage)
            finish(200, mode="scripted", script=script_info, usage=usage, cost_usd=cost,
                   events=handle._redactor.events(events), message=message)
        else:
            await resp.send_json(200, message)
            cost = handle._add_usage(message.get("model"), usage)
            finish(200, mode="scripted", script=script_info, usage=usage, cost_usd=cost, body=message)

    async def _forward(self, handle: RunHandle, seq: int, req: _Request, body: dict[str, Any], resp: _Responder, finish: Any) -> None:
        assert self._client is not None
        headers = [(k, v) for k, v in req.headers if k not in _HOP_BY_HOP and k not in _CREDENTIAL_HEADERS and k != "accept-encoding"]
        if self._api_key:
            headers.append(("x-api-key", self._api_key))
        # Identity encoding so the SSE can be parsed (and recorded) while it is passed through.
        headers.append(("accept-encoding", "identity"))
        upstream_req = self._client.build_request("POST", self._upstream + req.target, headers=headers, content=req.body)
        try:
            upstream = await self._client.send(upstream_req, stream=True)
        except httpx.HTTPError as exc:
            handle.unreachable = f"{self._upstream} could not be reached ({type(exc).__name__})"
            err = _error_body("api_error", f"axp gateway: upstream request failed: {type(exc).__name__}")
            await resp.send_json(502, err)
            handle._error(f"request {seq}: upstream request failed: {type(exc).__name__}")
            finish(502, mode="forward", body=err)
            return
        handle.unreachable = None  # reached: what it answered is the agent's to handle
        try:
            out_headers = [(k, v) for k, v in upstream.headers.multi_items() if k.lower() not in _HOP_BY_HOP]
            content_type = upstream.headers.get("content-type", "")
            resp_headers = redact_headers(upstream.headers.multi_items())
            model = body.get("model")
            if upstream.status_code >= 400:
                handle._error(f"request {seq}: upstream HTTP {upstream.status_code}")
            if "text/event-stream" in content_type:
                await resp.start(upstream.status_code, out_headers)
                parser, assembler = SSEParser(), MessageAssembler()
                events: list[dict[str, Any]] = []
                client_gone = None

                def take(pairs: list[tuple[str, str]]) -> None:
                    for name, raw in pairs:
                        try:
                            data: Any = json.loads(raw)
                        except ValueError:
                            data = raw
                        events.append({"event": name, "data": data})
                        assembler.add(name, data)

                async for chunk in upstream.aiter_raw():
                    take(parser.feed(chunk))
                    if client_gone is None:
                        try:
                            await resp.send(chunk)
                        except ConnectionError as exc:
                            client_gone = type(exc).__name__
                            break
                take(parser.close())
                if client_gone is None:
                    await resp.end()
                message = assembler.message or {}
                usage = assembler.usage()
                cost = handle._add_usage(message.get("model") or model, usage)
                extra: dict[str, Any] = {}
                if client_gone:
                    extra["error"] = f"client disconnected mid-stream ({client_gone})"
                    handle._error(f"request {seq}: client disconnected mid-stream")
                if assembler.error is not None:
                    extra["stream_error"] = assembler.error
                    handle._error(f"request {seq}: error event in upstream stream")
                finish(upstream.status_code, mode="forward", headers=resp_headers, usage=usage, cost_usd=cost,
                       events=handle._redactor.events(events), message=message, **extra)
                if client_gone:
                    raise ConnectionResetError(client_gone)
            else:
                data = await upstream.aread()
                await resp.send_bytes(upstream.status_code, data, content_type or "application/json",
                                      [(k, v) for k, v in out_headers if k.lower() != "content-type"])
                try:
                    parsed: Any = json.loads(data.decode("utf-8"))
                except (UnicodeDecodeError, ValueError):
                    parsed = {"_unparsed": data.decode("utf-8", "replace")}
                usage = parsed.get("usage") if isinstance(parsed, dict) and isinstance(parsed.get("usage"), dict) else {}
                extra = {}
                if usage and req.path == "/v1/messages":
                    extra = {"usage": usage, "cost_usd": handle._add_usage(parsed.get("model") or model, usage)}
                finish(upstream.status_code, mode="forward", headers=resp_headers, body=parsed, **extra)
        finally:
            await upstream.aclose()

    # ---- OTLP ------------------------------------------------------------------------------

    async def _telemetry(self, req: _Request, resp: _Responder) -> None:
        content_type = req.header("content-type") or ""
        is_proto = "protobuf" in content_type.lower()
        handle = self._lookup(req.header(RUN_TOKEN_HEADER))
        if handle is None:
            # Accept and drop: a refusal would only make the exporter retry.
            self.unattributed_telemetry += 1
        else:
            try:
                items = decode_export(req.path, req.body, content_type, req.header("content-encoding"))
            except Exception as exc:
                handle._error(f"telemetry {req.path}: undecodable payload: {type(exc).__name__}: {exc}")
                await resp.send_json(400, {"code": 3, "message": "undecodable OTLP payload"})
                return
            with handle._lock:
                handle.telemetry_posts += 1
            assert handle._otlp is not None
            handle._otlp.add(req.path, items)
        if is_proto:
            await resp.send_bytes(200, b"", "application/x-protobuf")
        else:
            await resp.send_json(200, {})

