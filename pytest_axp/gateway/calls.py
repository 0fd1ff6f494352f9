"""One authenticated call to a model API, handled the same way whatever the API: the request and
the response are recorded, a stopped run is refused, the answer comes from the run's model script
or from the real upstream (streamed through as it arrives), and what it used goes to the meter."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from .apis import Answer, Call, ErrorReply, ModelApi, Route
from .http import CREDENTIAL_HEADERS, Request, Responder
from .recorder import redact_headers
from .runs import RunHandle
from .script import consumes_turn
from .sse import SSEParser, encode_event

# The status of every refusal (run stopped, no model to ask); each API words it its own way.
STOPPED_STATUS = 402

_HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "transfer-encoding", "upgrade", "host", "content-length", "content-encoding",
}
_SSE_HEADERS = [("content-type", "text/event-stream; charset=utf-8"), ("cache-control", "no-cache")]

Finish = Callable[..., None]


@dataclass(frozen=True)
class Upstream:
    """Where an API's calls are forwarded, with the real key."""

    url: str
    key: str | None
    default: bool  # the API's public endpoint, which cannot answer without a key

    @classmethod
    def of(cls, api: ModelApi, url: str | None = None, key: str | None = None) -> Upstream:
        """Explicit values first, then the API's environment variables, then its public URL."""
        chosen = (url or os.environ.get(api.base_url_env) or api.default_upstream).rstrip("/")
        # An API whose base-URL convention differs from its request paths (OpenAI's ends in
        # /v1) says how to get the root the paths are appended to.
        root = getattr(api, "upstream_root", None)
        if callable(root):
            chosen = str(root(chosen))
        real_key = key if key is not None else os.environ.get(api.key_env)
        return cls(chosen, real_key, chosen == api.default_upstream.rstrip("/"))

    @property
    def usable(self) -> bool:
        # Forwarding to the real API with no key can only fail, after the client's retries.
        return bool(self.key) or not self.default


def no_model_reason(api: ModelApi) -> str:
    return f"no {api.key_env} and no --model-script"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


async def _send_error(resp: Responder, err: ErrorReply) -> None:
    await resp.send_json(err.status, err.body, err.headers)


async def serve_call(handle: RunHandle, api: ModelApi, route: Route, req: Request, resp: Responder,
                     upstream: Upstream, client: httpx.AsyncClient | None) -> None:
    handle._inflight += 1
    try:
        if route.model_call:
            handle.meter.count_request()
        await _serve(handle, api, route, req, resp, upstream, client)
    finally:
        handle._inflight -= 1


async def _serve(handle: RunHandle, api: ModelApi, route: Route, req: Request, resp: Responder,
                 upstream: Upstream, client: httpx.AsyncClient | None) -> None:
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
    main_turn = [False]

    def finish(status: int, **extra: Any) -> None:
        if main_turn[0]:
            handle.last_turn_status = status
        record.update(
            status=status, duration_ms=round((time.monotonic() - started) * 1000), **extra
        )
        recorder.write(seq, "response", record)

    if not isinstance(body, dict):
        err = api.error(400, "axp gateway: request body is not a JSON object")
        await _send_error(resp, err)
        handle._error(f"request {seq}: body is not a JSON object")
        finish(400, mode="gateway", body=err.body)
        return
    call = Call(seq, req, body, route)
    if route.model_call and consumes_turn(body):
        main_turn[0] = True
        handle.meter.count_turn()
    if handle.stopped_reason is not None:
        err = api.error(STOPPED_STATUS, f"axp: run stopped: {handle.stopped_reason}")
        await _send_error(resp, err)
        finish(err.status, mode="gateway", refused=True, body=err.body)
    elif handle._cursor is not None:
        await _scripted(handle, api, call, resp, finish)
    elif not upstream.usable:
        reason = no_model_reason(api)
        handle.unreachable = reason
        err = api.error(STOPPED_STATUS, f"axp gateway: model API unreachable: {reason}")
        await _send_error(resp, err)
        handle._error(f"request {seq}: refused: {reason}")
        finish(err.status, mode="gateway", refused=True, body=err.body)
    else:
        assert client is not None
        await _forward(handle, api, call, resp, finish, upstream, client)


def _meter(handle: RunHandle, api: ModelApi, call: Call, answer: Answer) -> float:
    return handle.meter.add(answer.model or api.request_model(call), api.tokens(answer.usage))


def _event_records(events: Sequence[tuple[str | None, Any]]) -> list[dict[str, Any]]:
    return [{"event": name, "data": data} for name, data in events]


async def _scripted(
    handle: RunHandle, api: ModelApi, call: Call, resp: Responder, finish: Finish
) -> None:
    assert handle._cursor is not None and handle._script is not None
    if not call.route.model_call:
        answer_body = api.side_answer(call)
        await resp.send_json(200, answer_body)
        finish(200, mode="scripted", body=answer_body)
        return
    reply = handle._cursor.next_reply(call.body)
    script_info = {"kind": reply.kind, "turn_index": reply.turn_index}
    if reply.error is not None:
        err = api.error(reply.error.status, reply.error.message, reply.error.type)
        # as the real API would: retries are the client's call
        await resp.send_json(err.status, err.body)
        handle._error(
            f"request {call.seq}: scripted error {reply.error.status} at turn {reply.turn_index}: "
            f"{reply.error.message}"
        )
        finish(err.status, mode="scripted", script=script_info, body=err.body)
        return
    answer = api.render(call, reply)
    if answer.events is None:
        await resp.send_json(200, answer.message)
        cost = _meter(handle, api, call, answer)
        finish(
            200,
            mode="scripted",
            script=script_info,
            usage=answer.usage,
            cost_usd=cost,
            body=answer.message,
        )
        return
    await resp.start(200, _SSE_HEADERS)
    sent: list[tuple[str | None, Any]] = []
    delay = handle._script.stream_delay_s
    try:
        for name, data in answer.events:
            if delay and sent:
                await asyncio.sleep(delay)
            await resp.send(encode_event(name, data))
            sent.append((name, data))
        await resp.end()
    except ConnectionError as exc:
        handle._error(f"request {call.seq}: client disconnected mid-stream")
        finish(
            200,
            mode="scripted",
            script=script_info,
            events=handle._redactor.events(_event_records(sent)),
            error=f"client disconnected mid-stream ({type(exc).__name__})",
        )
        raise
    cost = _meter(handle, api, call, answer)
    finish(200, mode="scripted", script=script_info, usage=answer.usage, cost_usd=cost,
           events=handle._redactor.events(_event_records(sent)), message=answer.message)


async def _forward(handle: RunHandle, api: ModelApi, call: Call, resp: Responder, finish: Finish,
                   upstream: Upstream, client: httpx.AsyncClient) -> None:
    req, seq = call.request, call.seq
    headers = [(k, v) for k, v in req.headers
               if k not in _HOP_BY_HOP and k not in CREDENTIAL_HEADERS and k != "accept-encoding"]
    if upstream.key:
        headers += api.upstream_headers(upstream.key)
    # Identity encoding so the SSE can be parsed (and recorded) while it is passed through.
    headers.append(("accept-encoding", "identity"))
    upstream_req = client.build_request(
        req.method, upstream.url + req.target, headers=headers, content=req.body
    )
    try:
        answer = await client.send(upstream_req, stream=True)
    except httpx.HTTPError as exc:
        handle.unreachable = f"{upstream.url} could not be reached ({type(exc).__name__})"
        err = api.error(502, f"axp gateway: upstream request failed: {type(exc).__name__}")
        await _send_error(resp, err)
        handle._error(f"request {seq}: upstream request failed: {type(exc).__name__}")
        finish(502, mode="forward", body=err.body)
        return
    handle.unreachable = None  # reached: what it answered is the agent's to handle
    try:
        if answer.status_code >= 400:
            handle._error(f"request {seq}: upstream HTTP {answer.status_code}")
        if "text/event-stream" in answer.headers.get("content-type", ""):
            await _forward_stream(handle, api, call, resp, finish, answer)
        else:
            await _forward_whole(handle, api, call, resp, finish, answer)
    finally:
        await answer.aclose()


def _passed_headers(answer: httpx.Response) -> list[tuple[str, str]]:
    return [(k, v) for k, v in answer.headers.multi_items() if k.lower() not in _HOP_BY_HOP]


async def _forward_stream(
    handle: RunHandle,
    api: ModelApi,
    call: Call,
    resp: Responder,
    finish: Finish,
    answer: httpx.Response,
) -> None:
    await resp.start(answer.status_code, _passed_headers(answer))
    parser = SSEParser()
    events: list[tuple[str, Any]] = []

    def take(pairs: list[tuple[str, str]]) -> None:
        for name, raw in pairs:
            try:
                data: Any = json.loads(raw)
            except ValueError:
                data = raw
            events.append((name, data))

    client_gone = None
    async for chunk in answer.aiter_raw():
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
    final = api.read_stream(events)
    cost = _meter(handle, api, call, final) if call.route.model_call else 0.0
    extra: dict[str, Any] = {}
    if client_gone:
        extra["error"] = f"client disconnected mid-stream ({client_gone})"
        handle._error(f"request {call.seq}: client disconnected mid-stream")
    if final.error is not None:
        extra["stream_error"] = final.error
        handle._error(f"request {call.seq}: error event in upstream stream")
    finish(answer.status_code, mode="forward", headers=redact_headers(answer.headers.multi_items()),
           usage=final.usage, cost_usd=cost, events=handle._redactor.events(_event_records(events)),
           message=final.message, **extra)
    if client_gone:
        raise ConnectionResetError(client_gone)


async def _forward_whole(
    handle: RunHandle,
    api: ModelApi,
    call: Call,
    resp: Responder,
    finish: Finish,
    answer: httpx.Response,
) -> None:
    data = await answer.aread()
    content_type = answer.headers.get("content-type", "")
    await resp.send_bytes(
        answer.status_code,
        data,
        content_type or "application/json",
        [(k, v) for k, v in _passed_headers(answer) if k.lower() != "content-type"],
    )
    try:
        parsed: Any = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        parsed = {"_unparsed": data.decode("utf-8", "replace")}
    final = api.read_body(parsed)
    extra: dict[str, Any] = {}
    if final.usage and call.route.model_call:
        extra = {"usage": final.usage, "cost_usd": _meter(handle, api, call, final)}
    finish(answer.status_code, mode="forward", headers=redact_headers(answer.headers.multi_items()),
           body=parsed, **extra)
