"""The scripted model: answers Messages API requests from a YAML list of turns.

Which requests consume a turn: Claude Code 2.1.328 with CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1
sends only main-conversation requests in `-p` mode, and each carries the `tools` list. Requests
without tools (title/summary/side queries of other versions or modes) get a short text and do
not consume a turn, so a script stays aligned with the agent's tool loop.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import secrets as _secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

EXHAUSTED_TEXT = "(script exhausted)"
SIDE_TEXT = "(axp scripted model: side request)"

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}

# Ids must be unique across the whole gateway (a repeated tool_use id makes the CLI loop).
_ids = itertools.count(1)
_id_salt = _secrets.token_hex(4)


def new_id(prefix: str) -> str:
    return f"{prefix}_axp{_id_salt}{next(_ids):06d}{_secrets.token_hex(4)}"


def error_type_for_status(status: int) -> str:
    return _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")


class ScriptError(ValueError):
    """A model script is malformed; the message names the file, the turn and the problem."""


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
        }


@dataclass(frozen=True)
class TextBlock:
    text: str


@dataclass(frozen=True)
class ToolUseBlock:
    name: str
    input: Mapping[str, Any]


@dataclass(frozen=True)
class ErrorSpec:
    status: int
    message: str
    type: str
    # None: the error repeats for retries of the same request (a persistent failure);
    # N: it answers the next N main requests, then the script moves on (a transient failure).
    times: int | None = None


@dataclass(frozen=True)
class Turn:
    blocks: tuple[TextBlock | ToolUseBlock, ...] = ()
    error: ErrorSpec | None = None
    usage: Usage | None = None
    # Played only on these attempts of a run (None: every attempt), to rehearse retries.
    attempts: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Reply:
    """What the scripted model answers to one request."""

    kind: str  # "turn", "side", "exhausted", "error"
    turn_index: int | None = None
    message: dict[str, Any] | None = None  # as the Messages API answers it
    error: ErrorSpec | None = None
    # The same answer, agent-neutral, for other model APIs to render in their own terms.
    blocks: tuple[TextBlock | ToolUseBlock, ...] = ()
    usage: Usage = Usage()

    def error_body(self) -> dict[str, Any]:
        assert self.error is not None
        return {"type": "error", "error": {"type": self.error.type, "message": self.error.message}}


@dataclass(frozen=True)
class ModelScript:
    turns: tuple[Turn, ...]
    usage: Usage = Usage()
    side_usage: Usage = Usage()
    stream_delay_s: float = 0.0  # pause between SSE events, to make streaming observable
    source: str = "<script>"

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ModelScript:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise ScriptError(f"{p}: cannot read model script: {exc.strerror or exc}") from None
        return cls.from_yaml(text, source=str(p))

    @classmethod
    def from_yaml(cls, text: str, *, source: str = "<script>") -> ModelScript:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc)
            raise ScriptError(f"{source}: invalid YAML{where}: {problem}") from None
        return cls.from_data(data, source=source)

    @classmethod
    def from_data(cls, data: Any, *, source: str = "<script>") -> ModelScript:
        if not isinstance(data, Mapping):
            raise ScriptError(f"{source}: a model script must be a mapping with a 'turns' list")
        unknown = set(data) - {"turns", "usage", "side_usage", "stream_delay_ms"}
        if unknown:
            raise ScriptError(
                f"{source}: unknown top-level key(s): {', '.join(sorted(map(str, unknown)))}"
            )
        turns_data = data.get("turns")
        if not isinstance(turns_data, list):
            raise ScriptError(f"{source}: 'turns' must be a list")
        turns = tuple(_parse_turn(t, f"{source}: turns[{i}]") for i, t in enumerate(turns_data))
        usage = _parse_usage(data.get("usage"), f"{source}: usage") or Usage()
        side_usage = _parse_usage(data.get("side_usage"), f"{source}: side_usage") or Usage()
        delay = data.get("stream_delay_ms", 0)
        if isinstance(delay, bool) or not isinstance(delay, (int, float)) or delay < 0:
            raise ScriptError(f"{source}: stream_delay_ms must be a non-negative number")
        return cls(
            turns=turns,
            usage=usage,
            side_usage=side_usage,
            stream_delay_s=delay / 1000.0,
            source=source,
        )

    def cursor(self, attempt: int = 1) -> ScriptCursor:
        """Fresh per-run state: each run consumes its own copy of the turns (those that
        play on this attempt)."""
        return ScriptCursor(self, attempt=attempt)


def _parse_usage(value: Any, where: str) -> Usage | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ScriptError(f"{where}: must be a mapping of token counts")
    allowed = set(Usage.__dataclass_fields__)
    unknown = set(value) - allowed
    if unknown:
        raise ScriptError(
            f"{where}: unknown key(s) {sorted(map(str, unknown))}; allowed: {sorted(allowed)}"
        )
    for key, count in value.items():
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ScriptError(f"{where}: {key} must be a non-negative integer, got {count!r}")
    return Usage(**dict(value))


def _parse_turn(value: Any, where: str) -> Turn:
    if isinstance(value, str):
        raise ScriptError(f"{where}: must be a mapping like {{text: ...}}, got a bare string")
    if not isinstance(value, Mapping):
        raise ScriptError(f"{where}: must be a mapping with one of text, tool_use, content, error")
    kinds = [k for k in ("text", "tool_use", "content", "error") if k in value]
    unknown = set(value) - {"text", "tool_use", "content", "error", "usage", "attempts"}
    if unknown:
        raise ScriptError(f"{where}: unknown key(s): {', '.join(sorted(map(str, unknown)))}")
    if len(kinds) != 1:
        raise ScriptError(
            f"{where}: needs exactly one of text, tool_use, content, error "
            f"(found {kinds or 'none'})"
        )
    usage = _parse_usage(value.get("usage"), f"{where}.usage")
    attempts = _parse_attempts(value.get("attempts"), f"{where}.attempts")
    kind = kinds[0]
    if kind == "error":
        return Turn(error=_parse_error(value["error"], f"{where}.error"), usage=usage,
                    attempts=attempts)
    if kind == "content":
        items = value["content"]
        if not isinstance(items, list) or not items:
            raise ScriptError(
                f"{where}.content: must be a non-empty list of {{text: ...}} / {{tool_use: ...}}"
            )
        blocks = tuple(_parse_block(item, f"{where}.content[{j}]") for j, item in enumerate(items))
        return Turn(blocks=blocks, usage=usage, attempts=attempts)
    return Turn(blocks=(_parse_block({kind: value[kind]}, where),), usage=usage,
                attempts=attempts)


def _parse_attempts(value: Any, where: str) -> tuple[int, ...] | None:
    if value is None:
        return None
    if (not isinstance(value, list) or not value
            or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in value)):
        raise ScriptError(f"{where}: must be a non-empty list of attempt numbers (1, 2, ...)")
    return tuple(value)


def _parse_block(value: Any, where: str) -> TextBlock | ToolUseBlock:
    if (
        not isinstance(value, Mapping)
        or len(value) != 1
        or next(iter(value)) not in ("text", "tool_use")
    ):
        raise ScriptError(f"{where}: a block is {{text: STRING}} or {{tool_use: {{name, input}}}}")
    if "text" in value:
        text = value["text"]
        if not isinstance(text, str):
            raise ScriptError(f"{where}.text: must be a string, got {type(text).__name__}")
        return TextBlock(text)
    spec = value["tool_use"]
    if not isinstance(spec, Mapping):
        raise ScriptError(f"{where}.tool_use: must be a mapping with name and input")
    unknown = set(spec) - {"name", "input"}
    if unknown:
        raise ScriptError(
            f"{where}.tool_use: unknown key(s): {', '.join(sorted(map(str, unknown)))}"
        )
    name = spec.get("name")
    if not isinstance(name, str) or not name:
        raise ScriptError(f"{where}.tool_use.name: must be a non-empty string (e.g. Bash, Write)")
    tool_input = spec.get("input", {})
    if tool_input is None:
        tool_input = {}
    if not isinstance(tool_input, Mapping):
        raise ScriptError(
            f"{where}.tool_use.input: must be a mapping, got {type(tool_input).__name__}"
        )
    try:
        json.dumps(tool_input)
    except (TypeError, ValueError) as exc:
        raise ScriptError(f"{where}.tool_use.input: not JSON-serialisable: {exc}") from None
    return ToolUseBlock(name=name, input=dict(tool_input))


def _parse_error(value: Any, where: str) -> ErrorSpec:
    if not isinstance(value, Mapping):
        raise ScriptError(f"{where}: must be a mapping like {{status: 500, message: ...}}")
    unknown = set(value) - {"status", "message", "type", "times"}
    if unknown:
        raise ScriptError(f"{where}: unknown key(s): {', '.join(sorted(map(str, unknown)))}")
    status = value.get("status", 500)
    if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
        raise ScriptError(f"{where}.status: must be an HTTP error status 400..599, got {status!r}")
    message = value.get("message", "scripted error")
    if not isinstance(message, str):
        raise ScriptError(f"{where}.message: must be a string")
    etype = value.get("type", error_type_for_status(status))
    if not isinstance(etype, str) or not etype:
        raise ScriptError(f"{where}.type: must be a non-empty string")
    times = value.get("times")
    if times is not None and (isinstance(times, bool) or not isinstance(times, int) or times < 1):
        raise ScriptError(f"{where}.times: must be a positive integer")
    return ErrorSpec(status=status, message=message, type=etype, times=times)


# Claude Code's prompt-suggestion side request carries the tools but its last user message
# holds this marker (seen with claude-agent-acp 0.101.0).
SUGGESTION_MARKER = "[SUGGESTION MODE"


def _last_user_text(body: Mapping[str, Any]) -> str:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return ""
    last = messages[-1]
    if not isinstance(last, dict) or last.get("role") != "user":
        return ""
    content = last.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(b.get("text", "") for b in content
                       if isinstance(b, dict) and b.get("type") == "text"
                       and isinstance(b.get("text"), str))
    return ""


def consumes_turn(body: Mapping[str, Any]) -> bool:
    """Main-conversation requests carry the tool list; side requests do not (or, Claude
    Code's prompt suggestion, say so in their last user message)."""
    tools = body.get("tools")
    if not (isinstance(tools, list) and len(tools) > 0):
        return False
    return SUGGESTION_MARKER not in _last_user_text(body)


# Where each model API keeps the conversation: Messages, OpenAI Responses, Gemini.
_CONVERSATION_FIELDS = ("messages", "input", "contents")


def _conversation_key(body: Mapping[str, Any]) -> str:
    """Same conversation, same key: a retry of a request, not the next turn."""
    conversation = next((body[f] for f in _CONVERSATION_FIELDS if f in body), None)
    raw = json.dumps(conversation, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


@dataclass
class ScriptCursor:
    script: ModelScript
    attempt: int = 1
    position: int = 0
    _sticky: tuple[str, int, ErrorSpec] | None = None
    _repeat: tuple[int, int, ErrorSpec] | None = None  # (turn index, remaining, spec)
    consumed: list[int] = field(default_factory=list)

    def next_reply(self, body: Mapping[str, Any]) -> Reply:
        model = str(body.get("model") or "claude-scripted")
        if not consumes_turn(body):
            return _reply("side", None, (TextBlock(SIDE_TEXT),), model, self.script.side_usage)
        key = _conversation_key(body)
        if self._repeat is not None:
            index, remaining, spec = self._repeat
            self._repeat = (index, remaining - 1, spec) if remaining > 1 else None
            return Reply("error", turn_index=index, error=spec)
        if self._sticky is not None:
            sticky_key, index, spec = self._sticky
            if sticky_key == key:
                return Reply("error", turn_index=index, error=spec)
            self._sticky = None
        turns = self.script.turns
        while self.position < len(turns) and not _plays_on(turns[self.position], self.attempt):
            self.position += 1
        if self.position >= len(turns):
            return _reply("exhausted", None, (TextBlock(EXHAUSTED_TEXT),), model,
                          self.script.usage)
        index = self.position
        turn = self.script.turns[index]
        self.position += 1
        self.consumed.append(index)
        if turn.error is not None:
            if turn.error.times is None:
                self._sticky = (key, index, turn.error)
            elif turn.error.times > 1:
                self._repeat = (index, turn.error.times - 1, turn.error)
            return Reply("error", turn_index=index, error=turn.error)
        return _reply("turn", index, turn.blocks, model, turn.usage or self.script.usage)


def _reply(kind: str, index: int | None, blocks: tuple[TextBlock | ToolUseBlock, ...], model: str,
           usage: Usage) -> Reply:
    return Reply(
        kind,
        turn_index=index,
        message=build_message(blocks, model, usage),
        blocks=blocks,
        usage=usage,
    )


def _plays_on(turn: Turn, attempt: int) -> bool:
    return turn.attempts is None or attempt in turn.attempts


def build_message(blocks: Any, model: str, usage: Usage) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    for block in blocks:
        if isinstance(block, ToolUseBlock):
            content.append(
                {
                    "type": "tool_use",
                    "id": new_id("toolu"),
                    "name": block.name,
                    "input": dict(block.input),
                }
            )
        else:
            content.append({"type": "text", "text": block.text})
    stop = "tool_use" if any(b["type"] == "tool_use" for b in content) else "end_turn"
    return {
        "id": new_id("msg"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": usage.as_dict(),
    }
