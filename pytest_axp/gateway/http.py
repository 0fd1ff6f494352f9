"""HTTP/1.1 plumbing of the gateway: an asyncio server (h11) in one daemon thread, so that
synchronous callers (pytest items, several threads) can share it, handing each request to one
async handler. What a request means is the handler's business, not this module's."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import h11

RUN_TOKEN_HEADER = "x-axp-run-token"
# Every header a client may carry its key in, by the API it speaks: Anthropic, Gemini,
# OpenAI (Authorization: Bearer), and the telemetry exporters' own header.
CREDENTIAL_HEADERS = frozenset({"x-api-key", "x-goog-api-key", "authorization", RUN_TOKEN_HEADER})

T = TypeVar("T")


def error_body(kind: str, message: str) -> dict[str, Any]:
    """The gateway's own error shape (for requests no model API claimed)."""
    return {"type": "error", "error": {"type": kind, "message": message}}


@dataclass
class Request:
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


def run_token(req: Request) -> str | None:
    """The key a model client sent, in whichever header its API uses; all of them name the
    same thing, a run token."""
    for name in ("x-api-key", "x-goog-api-key"):
        value = req.header(name)
        if value:
            return value
    auth = req.header("authorization") or ""
    if auth.lower().startswith("bearer "):
        return auth[7:].strip() or None
    return None


class Responder:
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

    async def send_bytes(self, status: int, body: bytes, content_type: str,
                         headers: Iterable[tuple[str, str]] = ()) -> None:
        hdrs = [("content-type", content_type), ("content-length", str(len(body))), *headers]
        await self.start(status, hdrs)
        await self.send(body)
        await self.end()

    async def send_json(
        self, status: int, obj: Any, headers: Iterable[tuple[str, str]] = ()
    ) -> None:
        await self.send_bytes(status, json.dumps(obj).encode("utf-8"), "application/json", headers)


Handler = Callable[[Request, Responder], Awaitable[None]]


Hook = Callable[[], Coroutine[Any, Any, None]]


class HttpServer:
    """Serves `handler` on (host, port) from an event loop in its own thread. `on_start` runs on
    the loop before it listens, `on_stop` after the connections are closed."""

    def __init__(self, handler: Handler, host: str | Sequence[str], port: int = 0, *,
                 on_start: Hook | None = None, on_stop: Hook | None = None) -> None:
        self._handler = handler
        self._on_start = on_start
        self._on_stop = on_stop
        self._host = host
        self._requested_port = port
        self.port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None
        self._more: list[asyncio.AbstractServer] = []  # the other addresses, same port
        self._conn_tasks: set[asyncio.Task[Any]] = set()

    @property
    def running(self) -> bool:
        return self._loop is not None and self._loop.is_running()

    def start(self) -> None:
        if self._thread is not None:
            return
        loop = asyncio.new_event_loop()
        thread = threading.Thread(
            target=self._run_loop, args=(loop,), name="axp-model-gateway", daemon=True
        )
        self._loop, self._thread = loop, thread
        thread.start()
        try:
            self.call(self._astart(), timeout=30)
        except BaseException:
            self.stop()
            raise

    def call(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run a coroutine on the server's loop from another thread and wait for it."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=timeout)

    @staticmethod
    def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        loop.run_forever()

    async def _astart(self) -> None:
        if self._on_start is not None:
            await self._on_start()
        hosts = [self._host] if isinstance(self._host, str) else list(self._host)
        for tries_left in range(8, -1, -1):
            self._server = await asyncio.start_server(
                self._on_connection, hosts[0], self._requested_port
            )
            self.port = self._server.sockets[0].getsockname()[1]
            try:
                # One port on every address (a pool's engines each reach the host on
                # their own bridge): a sandbox's URL does not depend on its engine.
                for host in hosts[1:]:
                    self._more.append(
                        await asyncio.start_server(self._on_connection, host, self.port))
                return
            except OSError:
                for server in [self._server, *self._more]:
                    server.close()
                self._more.clear()
                if self._requested_port or not tries_left:
                    raise

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if thread.is_alive():
            try:
                self.call(self._astop(), timeout=30)
            except Exception:
                pass
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=30)
        if not loop.is_running():
            loop.close()
        self._loop = self._thread = None
        self._server = None
        self.port = None

    async def _astop(self) -> None:
        for server in [self._server, *self._more]:
            if server is not None:
                server.close()
        self._more.clear()
        for task in list(self._conn_tasks):
            task.cancel()
        if self._conn_tasks:
            await asyncio.gather(*self._conn_tasks, return_exceptions=True)
        if self._on_stop is not None:
            await self._on_stop()

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._conn_tasks.add(task)
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                try:
                    request = await _read_request(conn, reader, writer)
                except h11.RemoteProtocolError:
                    if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                        responder = Responder(conn, writer, "GET")
                        await responder.send_json(
                            400, error_body("invalid_request_error", "malformed HTTP request")
                        )
                    return
                if request is None:
                    return
                responder = Responder(conn, writer, request.method)
                try:
                    await self._handler(request, responder)
                except (ConnectionError, asyncio.CancelledError):
                    raise
                except (
                    Exception
                ) as exc:  # a bug must not kill the server; tell the client if we still can
                    if not responder.started:
                        await responder.send_json(
                            500, error_body("api_error", f"axp gateway error: {type(exc).__name__}")
                        )
                    else:
                        return
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    return
                conn.start_next_cycle()
        except (
            ConnectionError,
            asyncio.CancelledError,
            h11.LocalProtocolError,
            h11.RemoteProtocolError,
        ):
            pass
        finally:
            try:
                writer.close()
            except Exception:
                pass
            if task is not None:
                self._conn_tasks.discard(task)


async def _read_request(conn: h11.Connection, reader: asyncio.StreamReader,
                        writer: asyncio.StreamWriter) -> Request | None:
    head: h11.Request | None = None
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            if conn.they_are_waiting_for_100_continue:
                writer.write(
                    conn.send(h11.InformationalResponse(status_code=100, headers=[])) or b""
                )
            conn.receive_data(await reader.read(65536))
        elif isinstance(event, h11.Request):
            head = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            assert head is not None
            target = head.target.decode("latin-1")
            return Request(
                method=head.method.decode("ascii"),
                target=target,
                path=target.split("?", 1)[0],
                headers=[
                    (k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in head.headers
                ],
                body=bytes(body),
            )
        else:  # ConnectionClosed or PAUSED
            return None
