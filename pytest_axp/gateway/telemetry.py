"""OTLP/HTTP intake: the agent's traces, metrics and logs, attributed to a run by the
`x-axp-run-token` header the exporter is configured to send (OTEL_EXPORTER_OTLP_HEADERS)."""

from __future__ import annotations

import threading
from collections.abc import Callable

from .http import RUN_TOKEN_HEADER, Request, Responder
from .otlp import SIGNALS, decode_export
from .runs import RunHandle

__all__ = ["SIGNALS", "TelemetryIntake"]


class TelemetryIntake:
    def __init__(self, lookup: Callable[[str | None], RunHandle | None]) -> None:
        self._lookup = lookup
        self._lock = threading.Lock()
        self.unattributed = 0  # posts without a known run token (dropped)

    @staticmethod
    def serves(req: Request) -> bool:
        return req.method == "POST" and req.path in SIGNALS

    async def receive(self, req: Request, resp: Responder) -> None:
        content_type = req.header("content-type") or ""
        handle = self._lookup(req.header(RUN_TOKEN_HEADER))
        if handle is None:
            # Accept and drop: a refusal would only make the exporter retry.
            with self._lock:
                self.unattributed += 1
        else:
            try:
                items = decode_export(
                    req.path, req.body, content_type, req.header("content-encoding")
                )
            except Exception as exc:
                handle._error(
                    f"telemetry {req.path}: undecodable payload: {type(exc).__name__}: {exc}"
                )
                await resp.send_json(400, {"code": 3, "message": "undecodable OTLP payload"})
                return
            with handle._lock:
                handle.telemetry_posts += 1
            assert handle._otlp is not None
            handle._otlp.add(req.path, items)
        if "protobuf" in content_type.lower():
            await resp.send_bytes(200, b"", "application/x-protobuf")
        else:
            await resp.send_json(200, {})
