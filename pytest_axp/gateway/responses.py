"""The OpenAI Responses API as a gateway model API: `POST /v1/responses`, whole or SSE.

What codex-acp 0.16.0 (codex 0.137) sends with a custom provider (`wire_api = "responses"`,
measured): `POST /v1/responses` with `Authorization: Bearer <env_key's value>`, `stream: true`,
the conversation under `input` and its tools under `tools` (function tools with a JSON-schema
`parameters`; its shell tool is `exec_command {cmd}`). It reads response.output_item.done for
each item, response.output_text.delta for text, and needs response.completed to end a turn.

Usage: OpenAI's `input_tokens` include the cached ones (`input_tokens_details.cached_tokens`);
the meter, like the Messages API, counts uncached input and cache reads apart. OpenAI has no
cache writes: a script's `cache_creation_input_tokens` are plain input here.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from typing import Any

from .apis import Answer, Call, ErrorReply, Route
from .pricing import TokenUsage
from .script import Reply, TextBlock, ToolUseBlock, Usage, error_type_for_status, new_id
from .tools import agent_tool_call, offered_from_schemas

# How a refused call is answered (a stopped run, or no model to ask). Measured with codex-acp
# 0.16.0 (codex 0.137) and stream_max_retries = 2: 401, 402, 403, 404 and 5xx are retried as
# a lost stream (3 calls); a 429 whose type is a quota one is not retried but its message is
# replaced by "exceeded retry limit"; a 400 ends the turn after that one call with the body
# shown verbatim in the prompt's error. So the gateway's 402 is sent as a 400.
REFUSAL_STATUS = 400
REFUSAL_CODE = "axp_refused"

# OpenAI's `error.type` by status; a scripted error naming no type of its own gets these.
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "invalid_request_error",
    404: "invalid_request_error",
    429: "rate_limit_exceeded",
}


class ResponsesApi:
    name = "openai-responses"
    routes = (Route("POST", "/v1/responses"),)
    key_env = "OPENAI_API_KEY"
    base_url_env = "OPENAI_BASE_URL"
    default_upstream = "https://api.openai.com"

    def upstream_headers(self, key: str) -> list[tuple[str, str]]:
        return [("authorization", f"Bearer {key}")]

    def upstream_root(self, url: str) -> str:
        """OPENAI_BASE_URL conventionally ends in /v1 (the SDKs' form); requests are forwarded
        with their own /v1 path, so the root is what is kept."""
        url = url.rstrip("/")
        return url[: -len("/v1")] if url.endswith("/v1") else url

    def error(self, status: int, message: str, kind: str | None = None) -> ErrorReply:
        if status == 402:
            return ErrorReply(REFUSAL_STATUS,
                              error_body("invalid_request_error", message, REFUSAL_CODE))
        if kind is None or kind == error_type_for_status(status):
            # the Messages API's default name for this status: use OpenAI's
            kind = _ERROR_TYPES.get(status, "server_error" if status >= 500 else
                                    "invalid_request_error")
        return ErrorReply(status, error_body(kind, message))

    def request_model(self, call: Call) -> str | None:
        model = call.body.get("model")
        return model if isinstance(model, str) else None

    def render(self, call: Call, reply: Reply) -> Answer:
        model = self.request_model(call) or "gpt-scripted"
        response = build_response(reply.blocks, model, reply.usage, call.body.get("tools"))
        events = list(events_of_response(response)) if call.body.get("stream") else None
        return Answer(response, dict(response["usage"]), model, events=events)

    def side_answer(self, call: Call) -> Any:
        return {}

    def read_stream(self, events: list[tuple[str, Any]]) -> Answer:
        return read_events(events)

    def read_body(self, body: Any) -> Answer:
        if not isinstance(body, dict):
            return Answer(None)
        usage = body.get("usage")
        return Answer(body, dict(usage) if isinstance(usage, dict) else {}, body.get("model"),
                      error=body.get("error"))

    def tokens(self, usage: Mapping[str, Any]) -> TokenUsage:
        return tokens_of(usage)


def error_body(kind: str, message: str, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def _count(value: Any) -> int:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


def tokens_of(usage: Mapping[str, Any]) -> TokenUsage:
    """A Responses `usage` object in the meter's shape: cached input apart from the rest."""
    details = usage.get("input_tokens_details")
    cached = _count(details.get("cached_tokens")) if isinstance(details, Mapping) else 0
    total_in = _count(usage.get("input_tokens"))
    cached = min(cached, total_in)
    return TokenUsage(input_tokens=total_in - cached,
                      output_tokens=_count(usage.get("output_tokens")), cache_read_tokens=cached)


def usage_of(usage: Usage) -> dict[str, Any]:
    """A script's usage as the Responses API reports it."""
    total_in = (usage.input_tokens + usage.cache_read_input_tokens
                + usage.cache_creation_input_tokens)
    return {
        "input_tokens": total_in,
        "input_tokens_details": {"cached_tokens": usage.cache_read_input_tokens},
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": total_in + usage.output_tokens,
    }


def build_response(blocks: Any, model: str, usage: Usage, tools: Any) -> dict[str, Any]:
    """The completed response object for a scripted reply: text blocks become message items,
    tool calls `function_call` items named as the request's tools name them."""
    offered = offered_from_schemas(
        (str(t.get("name", "")), t.get("parameters"))
        for t in tools or () if isinstance(t, dict) and t.get("name"))
    output: list[dict[str, Any]] = []
    for block in blocks:
        if isinstance(block, ToolUseBlock):
            name, args = agent_tool_call(block.name, block.input, offered)
            output.append({
                "type": "function_call",
                "id": new_id("fc"),
                "call_id": new_id("call"),
                "name": name,
                "arguments": json.dumps(args, ensure_ascii=False),
                "status": "completed",
            })
        elif isinstance(block, TextBlock):
            output.append({
                "type": "message",
                "id": new_id("msg"),
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": block.text, "annotations": []}],
            })
    return {
        "id": new_id("resp"),
        "object": "response",
        "created_at": int(time.time()),
        "status": "completed",
        "model": model,
        "output": output,
        "usage": usage_of(usage),
    }


def events_of_response(response: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """The SSE events a streamed answer of `response` is made of, in the API's order."""
    seq = iter(range(1 << 30))

    def event(kind: str, **fields: Any) -> tuple[str, dict[str, Any]]:
        return kind, {"type": kind, "sequence_number": next(seq), **fields}

    head = {k: v for k, v in response.items() if k not in ("output", "usage")}
    yield event("response.created", response={**head, "status": "in_progress", "output": []})
    yield event("response.in_progress", response={**head, "status": "in_progress", "output": []})
    for index, item in enumerate(response.get("output") or ()):
        where = {"item_id": item["id"], "output_index": index}
        if item["type"] == "function_call":
            yield event("response.output_item.added", output_index=index,
                        item={**item, "arguments": "", "status": "in_progress"})
            for piece in _halves(item["arguments"]):
                yield event("response.function_call_arguments.delta", **where, delta=piece)
            yield event("response.function_call_arguments.done", **where,
                        arguments=item["arguments"])
        else:
            text = item["content"][0]["text"]
            part = {"type": "output_text", "text": "", "annotations": []}
            yield event("response.output_item.added", output_index=index,
                        item={**item, "status": "in_progress", "content": []})
            yield event("response.content_part.added", **where, content_index=0, part=part)
            for piece in _halves(text):
                yield event("response.output_text.delta", **where, content_index=0, delta=piece)
            yield event("response.output_text.done", **where, content_index=0, text=text)
            yield event("response.content_part.done", **where, content_index=0,
                        part={**part, "text": text})
        yield event("response.output_item.done", output_index=index, item=item)
    yield event("response.completed", response=dict(response))


def _halves(text: str) -> list[str]:
    # Two deltas, as a real stream splits its text.
    middle = len(text) // 2
    return [text[:middle], text[middle:]] if middle else [text]


_FINAL_EVENTS = ("response.completed", "response.incomplete", "response.failed")


def read_events(events: list[tuple[str, Any]]) -> Answer:
    """A streamed answer's final response and usage: the final event's response, or (a stream
    cut before it) the items that were done so far."""
    final: dict[str, Any] | None = None
    items: dict[int, Any] = {}
    error: Any = None
    created: dict[str, Any] = {}
    for name, data in events:
        if not isinstance(data, dict):
            continue
        kind = data.get("type", name)
        if kind in _FINAL_EVENTS and isinstance(data.get("response"), dict):
            final = data["response"]
            if kind == "response.failed":
                error = final.get("error") or {"message": "response.failed"}
        elif kind == "response.created" and isinstance(data.get("response"), dict):
            created = data["response"]
        elif kind == "response.output_item.done" and isinstance(data.get("item"), dict):
            items[_count(data.get("output_index"))] = data["item"]
        elif kind == "error":
            error = data.get("error", data)
    if final is None:
        if not created and not items:
            return Answer(None, error=error)
        final = {**created, "output": [items[i] for i in sorted(items)]}
    elif not final.get("output") and items:
        final = {**final, "output": [items[i] for i in sorted(items)]}
    usage = final.get("usage")
    return Answer(final, dict(usage) if isinstance(usage, dict) else {}, final.get("model"),
                  error=error)


RESPONSES = ResponsesApi()
