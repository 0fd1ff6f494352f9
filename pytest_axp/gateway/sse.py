"""Server-sent events as the Anthropic Messages API uses them: framing, parsing, reassembly."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from typing import Any


def encode_event(event: str | None, data: Any) -> bytes:
    """One SSE frame. Claude Code rejects data-only frames, so the `event:` line is sent whenever
    there is a name; None makes a data-only frame (as Gemini streams)."""
    payload = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    head = f"event: {event}\n" if event is not None else ""
    return f"{head}data: {payload}\n\n".encode()


class SSEParser:
    """Incremental parser: feed raw bytes as they arrive, get complete (event, data) pairs."""

    def __init__(self) -> None:
        self._buf = ""
        self._decoder_tail = b""
        self._cr = ""

    def feed(self, chunk: bytes) -> list[tuple[str, str]]:
        data = self._decoder_tail + chunk
        try:
            text = data.decode("utf-8")
            self._decoder_tail = b""
        except UnicodeDecodeError as exc:
            # A multi-byte character split across chunks: keep the incomplete tail for next time.
            text = data[: exc.start].decode("utf-8")
            self._decoder_tail = data[exc.start :]
        text = self._cr + text
        # A CR at the end may be half of a CRLF split across chunks: decide when the next chunk
        # comes.
        self._cr = "\r" if text.endswith("\r") else ""
        if self._cr:
            text = text[:-1]
        self._buf += text.replace("\r\n", "\n").replace("\r", "\n")
        out: list[tuple[str, str]] = []
        while "\n\n" in self._buf:
            frame, self._buf = self._buf.split("\n\n", 1)
            parsed = _parse_frame(frame)
            if parsed is not None:
                out.append(parsed)
        return out

    def close(self) -> list[tuple[str, str]]:
        """Flush a final frame that was not terminated by a blank line."""
        rest, self._buf = self._buf + ("\n" if self._cr else ""), ""
        self._cr = ""
        parsed = _parse_frame(rest) if rest.strip() else None
        return [parsed] if parsed is not None else []


def _parse_frame(frame: str) -> tuple[str, str] | None:
    event = "message"
    data_lines: list[str] = []
    for line in frame.split("\n"):
        if not line or line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "event":
            event = value
        elif field == "data":
            data_lines.append(value)
    if not data_lines and event == "message":
        return None
    return event, "\n".join(data_lines)


class MessageAssembler:
    """Rebuilds the final message object from Messages API stream events."""

    def __init__(self) -> None:
        self.message: dict[str, Any] | None = None
        self.error: Any = None
        self._json_parts: dict[int, list[str]] = {}

    def add(self, event: str, data: Any) -> None:
        if not isinstance(data, dict):
            return
        kind = data.get("type", event)
        if kind == "message_start" and isinstance(data.get("message"), dict):
            self.message = copy.deepcopy(data["message"])
            self.message.setdefault("content", [])
        elif kind == "error":
            self.error = data.get("error", data)
        elif self.message is None:
            return
        elif kind == "content_block_start":
            index = int(data.get("index", len(self.message["content"])))
            content = self.message["content"]
            while len(content) <= index:
                content.append({})
            content[index] = copy.deepcopy(data.get("content_block") or {})
        elif kind == "content_block_delta":
            self._apply_delta(int(data.get("index", 0)), data.get("delta") or {})
        elif kind == "content_block_stop":
            self._finish_block(int(data.get("index", 0)))
        elif kind == "message_delta":
            for key, value in (data.get("delta") or {}).items():
                self.message[key] = value
            merge_usage(self.message.setdefault("usage", {}), data.get("usage") or {})

    def _block(self, index: int) -> dict[str, Any]:
        assert self.message is not None
        content = self.message["content"]
        while len(content) <= index:
            content.append({})
        block: dict[str, Any] = content[index]
        return block

    def _apply_delta(self, index: int, delta: dict[str, Any]) -> None:
        block = self._block(index)
        kind = delta.get("type")
        if kind == "text_delta":
            block["text"] = block.get("text", "") + delta.get("text", "")
        elif kind == "input_json_delta":
            self._json_parts.setdefault(index, []).append(delta.get("partial_json", ""))
        elif kind == "thinking_delta":
            block["thinking"] = block.get("thinking", "") + delta.get("thinking", "")
        elif kind == "signature_delta":
            block["signature"] = delta.get("signature", "")
        elif kind == "citations_delta":
            block.setdefault("citations", []).append(delta.get("citation"))

    def _finish_block(self, index: int) -> None:
        parts = self._json_parts.pop(index, None)
        if parts is None:
            return
        raw = "".join(parts)
        block = self._block(index)
        try:
            block["input"] = json.loads(raw) if raw.strip() else {}
        except ValueError:
            block["input"] = {"_unparsed_partial_json": raw}

    def usage(self) -> dict[str, Any]:
        if self.message is None:
            return {}
        return dict(self.message.get("usage") or {})


def merge_usage(into: dict[str, Any], update: dict[str, Any]) -> None:
    """message_delta usage is cumulative: later non-null values replace earlier ones."""
    for key, value in update.items():
        if value is not None:
            into[key] = value


def events_of_message(message: dict[str, Any]) -> Iterable[tuple[str, dict[str, Any]]]:
    """The stream events that produce `message` (used by the scripted model)."""
    usage = dict(message.get("usage") or {})
    start_usage = dict(usage)
    start_usage["output_tokens"] = 0
    head = {k: v for k, v in message.items() if k not in ("content", "usage")}
    head.update({"content": [], "stop_reason": None, "stop_sequence": None, "usage": start_usage})
    yield "message_start", {"type": "message_start", "message": head}
    for index, block in enumerate(message.get("content") or []):
        if block.get("type") == "tool_use":
            start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            yield (
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": start},
            )
            # Tool input only counts when it arrives as input_json_delta; split it to look like a
            # real stream.
            raw = json.dumps(block.get("input") or {}, ensure_ascii=False)
            for piece in _split(raw):
                yield "content_block_delta", {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": "input_json_delta", "partial_json": piece},
                }
        else:
            yield "content_block_start", {
                "type": "content_block_start",
                "index": index,
                "content_block": {"type": "text", "text": ""},
            }
            for piece in _split(block.get("text", "")):
                yield "content_block_delta", {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": "text_delta", "text": piece},
                }
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
    yield "message_delta", {
        "type": "message_delta",
        "delta": {"stop_reason": message.get("stop_reason"), "stop_sequence": None},
        "usage": {"output_tokens": usage.get("output_tokens", 0)},
    }
    yield "message_stop", {"type": "message_stop"}


def _split(text: str, parts: int = 2) -> list[str]:
    if len(text) < 2:
        return [text]
    step = -(-len(text) // parts)
    return [text[i : i + step] for i in range(0, len(text), step)]
