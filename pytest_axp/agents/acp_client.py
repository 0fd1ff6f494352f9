"""A small ACP (Agent Client Protocol) client: newline-delimited JSON-RPC 2.0 over a
sandbox process's stdio, every frame handed to a recorder as it is read or written.

Threads, not asyncio: the transport is the sandbox backend's blocking process object, and
the caller enforces deadlines by waiting on a call with a timeout.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from ..sandbox.base import SandboxError, SandboxProcess

TO_AGENT = "client->agent"
FROM_AGENT = "agent->client"
PROTOCOL_VERSION = 1

Recorder = Callable[[str, dict[str, Any]], None]
RequestHandler = Callable[[str, dict[str, Any]], dict[str, Any]]
NotificationHandler = Callable[[str, dict[str, Any]], None]


class AcpError(Exception):
    """The agent answered a request with a JSON-RPC error."""

    def __init__(self, method: str, error: Any) -> None:
        err = error if isinstance(error, dict) else {"message": str(error)}
        self.code = err.get("code")
        self.error_message = str(err.get("message", ""))
        self.data = err.get("data")
        detail = f": {self.data}" if self.data not in (None, "", {}) else ""
        super().__init__(f"{method} failed: {self.error_message} (code {self.code}){detail}")


class AcpClosed(Exception):
    """The agent's stdout ended before it answered."""


class MethodNotFound(Exception):
    """Raised by a request handler for a method the client does not offer."""


class PendingCall:
    """A request sent and not yet answered."""

    def __init__(self, method: str) -> None:
        self.method = method
        self._event = threading.Event()
        self._result: dict[str, Any] | None = None
        self._error: BaseException | None = None

    def _resolve(self, result: Any = None, error: BaseException | None = None) -> None:
        self._result = result if isinstance(result, dict) else {}
        self._error = error
        self._event.set()

    @property
    def done(self) -> bool:
        return self._event.is_set()

    def result(self, timeout: float | None = None) -> dict[str, Any]:
        """The result; TimeoutError if none within `timeout`; AcpError/AcpClosed."""
        if not self._event.wait(timeout):
            raise TimeoutError(f"{self.method}: no answer within {timeout} s")
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result


class AcpConnection:
    """One JSON-RPC connection to an ACP agent. `record(direction, frame)` sees every frame
    (parsed JSON object) before it is written or acted on; non-JSON stdout lines go to
    `record` as `{"axp_stdout": line}` so nothing the agent said is lost."""

    def __init__(self, process: SandboxProcess, record: Recorder,
                 on_request: RequestHandler, on_notification: NotificationHandler) -> None:
        self.process = process
        self._record = record
        self._on_request = on_request
        self._on_notification = on_notification
        self._next_id = 0
        self._pending: dict[int, PendingCall] = {}
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self.closed = threading.Event()
        self._reader = threading.Thread(target=self._read_loop, daemon=True,
                                        name="axp-acp-reader")

    def start(self) -> None:
        self._reader.start()

    # -- sending --------------------------------------------------------------------------

    def _send(self, frame: dict[str, Any]) -> None:
        data = (json.dumps(frame, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        with self._write_lock:
            self._record(TO_AGENT, frame)
            self.process.write(data)

    def call(self, method: str, params: dict[str, Any]) -> PendingCall:
        """Send a request; its answer arrives on the returned PendingCall."""
        with self._lock:
            request_id = self._next_id
            self._next_id += 1
            pending = PendingCall(method)
            if self.closed.is_set():
                pending._resolve(error=AcpClosed(f"{method}: the agent has exited"))
                return pending
            self._pending[request_id] = pending
        try:
            self._send({"jsonrpc": "2.0", "id": request_id, "method": method,
                        "params": params})
        except SandboxError as e:
            with self._lock:
                self._pending.pop(request_id, None)
            pending._resolve(error=AcpClosed(f"{method}: {e}"))
        return pending

    def request(self, method: str, params: dict[str, Any],
                timeout: float | None = None) -> dict[str, Any]:
        return self.call(method, params).result(timeout)

    def notify(self, method: str, params: dict[str, Any]) -> None:
        try:
            self._send({"jsonrpc": "2.0", "method": method, "params": params})
        except SandboxError:
            pass  # the agent is gone: nothing to tell

    # -- receiving ------------------------------------------------------------------------

    def _read_loop(self) -> None:
        try:
            while True:
                line = self.process.read_line()
                if line is None:
                    return
                text = line.decode("utf-8", "replace").strip()
                if not text:
                    continue
                try:
                    frame = json.loads(text)
                except ValueError:
                    frame = None
                if not isinstance(frame, dict):
                    self._record(FROM_AGENT, {"axp_stdout": text})
                    continue
                self._record(FROM_AGENT, frame)
                self._dispatch(frame)
        finally:
            with self._lock:
                self.closed.set()
                pending = list(self._pending.values())
                self._pending.clear()
            for call in pending:
                call._resolve(error=AcpClosed(f"{call.method}: the agent exited before "
                                              "answering"))

    def _dispatch(self, frame: dict[str, Any]) -> None:
        method = frame.get("method")
        params = frame.get("params")
        params = params if isinstance(params, dict) else {}
        if isinstance(method, str) and "id" in frame:
            self._answer(frame["id"], method, params)
        elif isinstance(method, str):
            try:
                self._on_notification(method, params)
            except Exception:  # a handler bug must not stop the reader
                pass
        elif "id" in frame:
            with self._lock:
                call = self._pending.pop(frame["id"], None) if isinstance(
                    frame["id"], int) else None
            if call is None:
                return
            if "error" in frame:
                call._resolve(error=AcpError(call.method, frame["error"]))
            else:
                call._resolve(result=frame.get("result"))

    def _answer(self, request_id: Any, method: str, params: dict[str, Any]) -> None:
        try:
            result = self._on_request(method, params)
            reply: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "result": result}
        except MethodNotFound:
            reply = {"jsonrpc": "2.0", "id": request_id,
                     "error": {"code": -32601, "message": f"method not found: {method}"}}
        except Exception as e:
            reply = {"jsonrpc": "2.0", "id": request_id,
                     "error": {"code": -32603, "message": f"{type(e).__name__}: {e}"}}
        try:
            self._send(reply)
        except SandboxError:
            pass
