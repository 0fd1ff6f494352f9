"""The model gateway: a small HTTP/1.1 server on the host that the sandboxed agent talks to instead
of the model API.

It authenticates each call by a per-run token, answers from a model script or forwards to the
real upstream with the real key, records every body of a run, meters tokens and cost, stops a
run that passes its cost limit, and receives the agent's OTLP telemetry. This module composes
the parts: `http` (the server), `apis` (which model API serves a path; `messages` is the
built-in one), `calls` (one model call, the same for every API), `meter` and `telemetry`.
"""

from __future__ import annotations

import asyncio
import secrets as _secrets
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Self

import httpx

from .apis import REGISTRY, ModelApi, ModelApiRegistry, register_model_api
from .calls import STOPPED_STATUS, Upstream, no_model_reason, serve_call
from .gemini import GEMINI
from .http import RUN_TOKEN_HEADER, HttpServer, Request, Responder, run_token
from .messages import MESSAGES, REFUSAL_ERROR_TYPE
from .otlp import OtlpStore
from .recorder import ApiRedactor, BodyRecorder
from .responses import RESPONSES
from .runs import RunHandle
from .script import ModelScript
from .telemetry import TelemetryIntake

__all__ = [
    "DEFAULT_UPSTREAM",
    "NO_MODEL_REASON",
    "RUN_TOKEN_HEADER",
    "STOPPED_ERROR_TYPE",
    "STOPPED_STATUS",
    "ModelGateway",
    "RunHandle",
]

register_model_api(MESSAGES)  # built in, registered as a plugin's API would be
register_model_api(RESPONSES)
register_model_api(GEMINI)

DEFAULT_UPSTREAM = MESSAGES.default_upstream
STOPPED_ERROR_TYPE = REFUSAL_ERROR_TYPE
NO_MODEL_REASON = no_model_reason(MESSAGES)


class ModelGateway:
    """HTTP gateway between sandboxed agents and the model APIs. See the module docstring.

    `upstream_url` and `api_key` are the Messages API's (default: ANTHROPIC_BASE_URL and
    ANTHROPIC_API_KEY); `upstreams` sets any API's by name; other APIs read their own variables.
    """

    def __init__(
        self,
        *,
        upstream_url: str | None = None,
        api_key: str | None = None,
        script: ModelScript | None = None,
        bind_host: str | Sequence[str] = "0.0.0.0",
        port: int = 0,
        apis: ModelApiRegistry | None = None,
        upstreams: Mapping[str, Upstream] | None = None,
    ) -> None:
        self._apis = apis if apis is not None else REGISTRY
        self._upstreams: dict[str, Upstream] = dict(upstreams or {})
        if MESSAGES.name not in self._upstreams:
            self._upstreams[MESSAGES.name] = Upstream.of(MESSAGES, upstream_url, api_key)
        self._script = script
        self._runs: dict[str, RunHandle] = {}
        self._runs_lock = threading.Lock()
        self._client: httpx.AsyncClient | None = None
        self._http = HttpServer(self._dispatch, bind_host, port, on_start=self._open_client,
                                on_stop=self._close_client)
        self._telemetry = TelemetryIntake(self._lookup)

    def __repr__(self) -> str:  # the key stays out of reprs and logs
        return (
            f"ModelGateway(upstream={self.upstream_url!r}, scripted={self._script is not None}, "
            f"port={self._http.port})"
        )

    # ---- lifecycle -------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._http.port is None:
            raise RuntimeError("ModelGateway is not started")
        return self._http.port

    @property
    def upstream_url(self) -> str:
        return self._upstreams[MESSAGES.name].url

    @property
    def unattributed_telemetry(self) -> int:
        """OTLP posts without a known run token (dropped)."""
        return self._telemetry.unattributed

    def upstream_for(self, api: ModelApi) -> Upstream:
        with self._runs_lock:
            upstream = self._upstreams.get(api.name)
            if upstream is None:
                upstream = self._upstreams[api.name] = Upstream.of(api)
            return upstream

    def model_source(self, handle: RunHandle) -> str:
        """Where a run's answers come from: scripted, live, or none (nothing to ask)."""
        if handle.scripted:
            return "scripted"
        return "live" if self.upstream_for(self._apis.get(handle.model_api)).usable else "none"

    def start(self) -> None:
        self._http.start()

    async def _open_client(self) -> None:
        # No overall timeout on upstream calls: a model turn can stream for minutes.
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(None, connect=30.0), follow_redirects=False
        )

    def stop(self) -> None:
        self._http.stop()

    async def _close_client(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def __enter__(self) -> Self:
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
        max_turns: int | None = None,
        secrets: Sequence[str] = (),
        script: ModelScript | None = None,
        token: str | None = None,
        attempt: int = 1,
        model_api: str = MESSAGES.name,
    ) -> RunHandle:
        """Register a run and return its handle; `handle.token` is what the sandbox gets as its key.

        `script` overrides the gateway's script for this run only (None: the gateway's script, or
        forward mode if the gateway has none). `token` fixes the run token (tests, or a gateway
        acting as somebody's upstream); by default it is random. `attempt`: which turns of the
        script play (a turn may be limited to some attempts of a retried run). `model_api`
        names the API the run's agent speaks (the run's token is good for every API).
        `max_turns`: main-conversation calls past this many are refused, like calls past
        `max_cost_usd` (for agents that cannot enforce the limit themselves).
        """
        api = self._apis.get(model_api)  # an unknown name fails here, not on the first call
        token = token or "axp-run-" + _secrets.token_urlsafe(24)
        with self._runs_lock:
            if token in self._runs:
                raise ValueError("a run with this token is already open")
        chosen = script if script is not None else self._script
        # Every real key this gateway may forward with stays out of the run's files.
        keys = [self.upstream_for(known).key for known in self._apis.all()]
        redactor = ApiRedactor([*secrets, token, *keys, *(u.key for u in self._upstreams.values())])
        handle = RunHandle(
            run_key=run_key,
            token=token,
            bodies_dir=Path(bodies_dir),
            traces_dir=Path(traces_dir),
            trace_id=trace_id,
            max_cost_usd=max_cost_usd,
            max_turns=max_turns,
            model_api=api.name,
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
        if self._http.running:
            self._http.call(self._aclose_run(handle, timeout), timeout=timeout + 10)
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

    # ---- routing ---------------------------------------------------------------------------

    async def _dispatch(self, req: Request, resp: Responder) -> None:
        if self._telemetry.serves(req):
            await self._telemetry.receive(req, resp)
            return
        found = self._apis.route(req.method, req.path)
        if found is None:
            # /api/hello and anything else a client probes: answer at once so it never stalls.
            await resp.send_json(200, {})
            return
        api, route = found
        handle = self._lookup(run_token(req))
        if handle is None:
            err = api.error(401, "axp gateway: unknown or expired run token")
            await resp.send_json(err.status, err.body, err.headers)
            return
        await serve_call(handle, api, route, req, resp, self.upstream_for(api), self._client)
