"""AXP_TRACE_PATH: ACP-shaped JSONL events a test script can grep and jq (EXPERIMENT.md §3)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class TraceWriter:
    session_id: str
    events: list[dict[str, Any]] = field(default_factory=list)

    def add(self, kind: str, raw_json: dict[str, Any], tool_call_id: str | None = None,
            ts_ns: int | None = None) -> None:
        event: dict[str, Any] = {
            "seq": len(self.events),
            "ts_ns": ts_ns if ts_ns is not None else time.time_ns(),
            "kind": kind,
            "session_id": self.session_id,
        }
        if tool_call_id is not None:
            event["tool_call_id"] = tool_call_id
        event["raw_json"] = raw_json
        self.events.append(event)

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
        return "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in self.events).encode()
