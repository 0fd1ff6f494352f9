"""Managed model access: `/gateway/<model API path>` answers a signed-in user's model calls
with the organisation's key, which never leaves the server.

The caller's key is their axp token (the local gateway of `axp local run
--managed-model-access` forwards here with it). Each call goes through the model gateway's own
forwarding (`gateway.calls.serve_call`: streaming, usage, cost), with the organisation's
upstream and key from its server secrets, the ones of the API the path belongs to
(ANTHROPIC_API_KEY/ANTHROPIC_BASE_URL, OPENAI_API_KEY/OPENAI_BASE_URL,
GEMINI_API_KEY/GOOGLE_GEMINI_BASE_URL), and what it used is written to the database for
that user. Bodies are not kept on the server.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from pathlib import Path
from typing import Any

import httpx

from ..gateway.apis import REGISTRY, Call
from ..gateway.calls import Upstream, serve_call
from ..gateway.http import Request, run_token
from ..gateway.recorder import ApiRedactor, BodyRecorder
from ..gateway.runs import RunHandle
from .store import Store

PREFIX = "/gateway"

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class AsgiResponder:
    """The gateway's Responder interface, written to an ASGI `send`."""

    def __init__(self, send: Send, method: str) -> None:
        self._send = send
        self._head = method == "HEAD"
        self.started = False
        self.status = 0

    async def start(self, status: int, headers: Iterable[tuple[str, str]]) -> None:
        self.started, self.status = True, status
        await self._send({"type": "http.response.start", "status": status,
                          "headers": [(k.lower().encode("latin-1"), v.encode("latin-1"))
                                      for k, v in headers]})

    async def send(self, data: bytes) -> None:
        if data and not self._head:
            await self._send({"type": "http.response.body", "body": data, "more_body": True})

    async def end(self) -> None:
        await self._send({"type": "http.response.body", "body": b"", "more_body": False})

    async def send_bytes(self, status: int, body: bytes, content_type: str,
                         headers: Iterable[tuple[str, str]] = ()) -> None:
        await self.start(status, [("content-type", content_type),
                                  ("content-length", str(len(body))), *headers])
        await self.send(body)
        await self.end()

    async def send_json(self, status: int, obj: Any,
                        headers: Iterable[tuple[str, str]] = ()) -> None:
        await self.send_bytes(status, json.dumps(obj).encode("utf-8"), "application/json",
                              headers)


async def _read_body(receive: Receive, limit: int = 64 << 20) -> bytes:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionError("client went away")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise ValueError("request body too large")
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


class ManagedGateway:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._client: httpx.AsyncClient | None = None

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _upstream(self, org: str, key_env: str, base_url_env: str,
                  api: Any) -> Upstream:
        secrets = self.store.secrets(org)
        url = secrets.get(base_url_env) or api.default_upstream
        # No fallback to the server's own environment: an organisation uses its own key.
        return Upstream.of(api, url, secrets.get(key_env, ""))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        path = scope["path"][len(PREFIX):] or "/"
        query = scope.get("query_string", b"").decode("latin-1")
        headers = [(k.decode("latin-1").lower(), v.decode("latin-1"))
                   for k, v in scope.get("headers", [])]
        resp = AsgiResponder(send, method)
        try:
            body = await _read_body(receive)
        except ValueError:
            await resp.send_json(413, {"error": "request body too large"})
            return
        req = Request(method, path + (f"?{query}" if query else ""), path, headers, body)
        found = REGISTRY.route(method, path)
        if found is None:
            await resp.send_json(404, {"error": f"no model API serves {method} {path}"})
            return
        api, route = found
        user = self.store.user_for_token(run_token(req))
        if user is None:
            err = api.error(401, "axp server: unknown token; sign in with `axp auth login`")
            await resp.send_json(err.status, err.body, err.headers)
            return
        upstream = self._upstream(user.org, api.key_env, api.base_url_env, api)
        if not upstream.key:
            err = api.error(402, f"axp server: organisation {user.org} has no {api.key_env}; "
                                 f"an admin sets it: axp server secret set {api.key_env} "
                                 f"--org {user.org}")
            await resp.send_json(err.status, err.body, err.headers)
            return
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=httpx.Timeout(None, connect=30.0),
                                             follow_redirects=False)
        try:
            parsed = json.loads(body.decode("utf-8")) if body else {}
        except (UnicodeDecodeError, ValueError):
            parsed = None
        model = (api.request_model(Call(0, req, parsed, route))
                 if isinstance(parsed, dict) else None)
        with tempfile.TemporaryDirectory(prefix="axp-managed-") as tmp:
            # One handle per call, so concurrent calls of one user meter apart.
            redactor = ApiRedactor([upstream.key or "", run_token(req) or ""])
            handle = RunHandle(run_key=f"managed:{user.name}", token="", bodies_dir=Path(tmp),
                               traces_dir=Path(tmp), trace_id="managed", max_cost_usd=None,
                               model_api=api.name, _redactor=redactor)
            handle._recorder = BodyRecorder(Path(tmp), redactor)
            try:
                # The gateway's Responder interface, duck-typed onto ASGI.
                await serve_call(handle, api, route, req, resp,  # type: ignore[arg-type]
                                 upstream, self._client)
            finally:
                if route.model_call:
                    self.store.add_usage(user, api.name, model, resp.status or 0,
                                         handle.meter.snapshot())
