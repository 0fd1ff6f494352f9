"""AXP_TRACE_PATH: ACP-shaped JSONL events a test script can grep and jq (EXPERIMENT.md §3)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any


@dataclass
class TraceWriter:
    session_id: str
    events: list[dict[str, Any]] = field(default_factory=list)
    _sink: IO[bytes] | None = field(default=None, repr=False)
    _redact: Callable[[bytes], bytes] | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def stream_to(self, path: Path, redact: Callable[[bytes], bytes]) -> None:
        """From now on every event is also appended to `path` (redacted) as it is added, so
        an interrupted run keeps what was said; the events so far are written first."""
        with self._lock:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._sink = open(path, "wb")
            self._redact = redact
            for event in self.events:
                self._write(event)

    def close_stream(self) -> None:
        with self._lock:
            if self._sink is not None:
                self._sink.close()
                self._sink = None

    def _write(self, event: dict[str, Any]) -> None:
        if self._sink is None or self._redact is None:
            return
        line = (json.dumps(event, ensure_ascii=False) + "\n").encode()
        try:
            self._sink.write(self._redact(line))
            self._sink.flush()
        except OSError:
            pass  # the in-memory events are still written at the end of the step

    def add(self, kind: str, raw_json: dict[str, Any], tool_call_id: str | None = None,
            ts_ns: int | None = None, **envelope: Any) -> None:
        with self._lock:
            self._add(kind, raw_json, tool_call_id, ts_ns, envelope)

    def _add(self, kind: str, raw_json: dict[str, Any], tool_call_id: str | None,
             ts_ns: int | None, envelope: dict[str, Any]) -> None:
        event: dict[str, Any] = {
            "seq": len(self.events),
            "ts_ns": ts_ns if ts_ns is not None else time.time_ns(),
            "kind": kind,
            "session_id": self.session_id,
        }
        if tool_call_id is not None:
            event["tool_call_id"] = tool_call_id
        event.update(envelope)
        event["raw_json"] = raw_json
        self.events.append(event)
        self._write(event)

    def meta(self, **fields: Any) -> None:
        self.add("axp_meta", {"schema_version": 1, **fields})

    def session_update(self, kind: str, update: dict[str, Any],
                       tool_call_id: str | None = None, ts_ns: int | None = None) -> None:
        """An event in the shape of ACP's `session/update` notification."""
        self.add(kind, {
            "jsonrpc": "2.0",
            "method": "session/update",
            "params": {"sessionId": self.session_id,
                       "update": {"sessionUpdate": kind, **update}},
        }, tool_call_id=tool_call_id, ts_ns=ts_ns)

    def agent_text(self, text: str, ts_ns: int | None = None) -> None:
        self.session_update("agent_message_chunk",
                            {"content": {"type": "text", "text": text}}, ts_ns=ts_ns)

    def jsonl(self) -> bytes:
        with self._lock:
            return self._jsonl()

    def _jsonl(self) -> bytes:
        return "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in self.events).encode()
