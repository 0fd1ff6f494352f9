"""The Gemini API as a gateway model API: `POST /v1beta/models/{model}:streamGenerateContent`
(SSE with `alt=sse`: `data:` lines only), `:generateContent` (whole) and `:countTokens`.

What Gemini CLI 0.61.0 sends (read from its bundle and measured over ACP): the main
conversation as `:streamGenerateContent?alt=sse` with `tools: [{functionDeclarations}]` and
the key in `x-goog-api-key`; side calls through its "base LLM client" as `:generateContent`
without tools, asking for JSON by `generationConfig.responseJsonSchema`: the model router's
classifier (`{complexity_reasoning, complexity_score}`), the next-speaker check
(`{reasoning, next_speaker}`), the loop detector (`{unproductive_state_analysis,
unproductive_state_confidence}`); the session summary asks for plain text. Every side call
gets an answer that changes nothing (no extra turn, no loop alarm) and consumes no turn.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from .apis import Answer, Call, ErrorReply, Route
from .pricing import TokenUsage
from .script import SIDE_TEXT, Reply, TextBlock, ToolUseBlock, Usage, error_type_for_status, new_id
from .tools import agent_tool_call, offered_from_schemas

# `models/NAME` or `tunedModels/NAME`, under any API version the SDK may be told to use.
_MODEL_PATH = r"/v1(?:beta|alpha)?/(?:models|tunedModels)/([^/:]+)"
_STREAM = re.compile(_MODEL_PATH + ":streamGenerateContent")

# Google's canonical error status for each HTTP code the gateway or a script uses.
_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

# How a refused call is answered (a stopped run, or no model to ask). Gemini CLI 0.61.0
# retries 429, 499 and 5xx (and treats 403 and 404 specially: account validation, model
# fallback); any other 4xx ends the prompt after that one call with the message shown.
# 402 is not a code Google uses, so FAILED_PRECONDITION, the API's status for billing
# problems, names it.
REFUSAL_STATUS_NAME = "FAILED_PRECONDITION"

# Answers to the CLI's JSON side calls, by the properties their schema requires: each the
# answer that leaves the conversation as it is.
_SIDE_JSON: tuple[tuple[frozenset[str], dict[str, Any]], ...] = (
    (frozenset({"complexity_reasoning", "complexity_score"}),
     {"complexity_reasoning": "axp scripted model: routing check", "complexity_score": 1}),
    (frozenset({"reasoning", "next_speaker"}),
     {"reasoning": "axp scripted model: the user speaks next", "next_speaker": "user"}),
    (frozenset({"unproductive_state_analysis", "unproductive_state_confidence"}),
     {"unproductive_state_analysis": "axp scripted model: no loop",
      "unproductive_state_confidence": 0}),
)


class GeminiApi:
    name = "gemini"
    routes = (
        Route("POST", _MODEL_PATH + ":streamGenerateContent", pattern=True),
        Route("POST", _MODEL_PATH + ":generateContent", pattern=True),
        Route("POST", _MODEL_PATH + ":countTokens", model_call=False, pattern=True),
    )
    key_env = "GEMINI_API_KEY"
    base_url_env = "GOOGLE_GEMINI_BASE_URL"
    default_upstream = "https://generativelanguage.googleapis.com"

    def upstream_headers(self, key: str) -> list[tuple[str, str]]:
        return [("x-goog-api-key", key)]

    def error(self, status: int, message: str, kind: str | None = None) -> ErrorReply:
        return ErrorReply(status, error_body(status, message, kind))

    def request_model(self, call: Call) -> str | None:
        return model_of_path(call.request.path)

    def render(self, call: Call, reply: Reply) -> Answer:
        model = self.request_model(call) or "gemini-scripted"
        if reply.kind == "side":
            parts = [{"text": side_text(call.body)}]
        else:
            parts = _parts(reply.blocks, call.body.get("tools"))
        usage = usage_metadata(reply.usage)
        response_id = new_id("gresp")
        whole = _response(parts, usage, model, response_id)
        events = None
        if _STREAM.fullmatch(call.request.path):
            # SDKs always ask `alt=sse`; a stream without it would be a JSON array of the chunks.
            events = [(None, chunk) for chunk in stream_chunks(parts, usage, model, response_id)]
        return Answer(whole, usage, model, events=events)

    def side_answer(self, call: Call) -> Any:
        # token counting: a rough estimate is all a scripted run needs
        return {"totalTokens": max(1, len(call.request.body) // 4)}

    def read_stream(self, events: list[tuple[str, Any]]) -> Answer:
        return _assemble([data for _, data in events])

    def read_body(self, body: Any) -> Answer:
        if isinstance(body, list):  # a stream asked without `alt=sse`: the chunks as an array
            return _assemble(body)
        if not isinstance(body, dict):
            return Answer(None)
        usage = body.get("usageMetadata")
        model = body.get("modelVersion")
        return Answer(body, dict(usage) if isinstance(usage, dict) else {},
                      model if isinstance(model, str) else None)

    def tokens(self, usage: Mapping[str, Any]) -> TokenUsage:
        return tokens_of(usage)


def model_of_path(path: str) -> str | None:
    found = re.match(_MODEL_PATH, path)
    return unquote(found.group(1)) if found else None


def error_body(status: int, message: str, kind: str | None = None) -> dict[str, Any]:
    """Google's error shape. `kind` is a script's error type; the Messages-style names a
    script gets by default become Google's status name for the code."""
    if kind is None or kind == error_type_for_status(status):
        kind = REFUSAL_STATUS_NAME if status == 402 else _STATUS_NAMES.get(
            status, "INTERNAL" if status >= 500 else "FAILED_PRECONDITION")
    return {"error": {"code": status, "message": message, "status": kind}}


def side_text(body: Mapping[str, Any]) -> str:
    """A side call's answer: JSON when it asks for JSON, else a short text."""
    config = body.get("generationConfig")
    config = config if isinstance(config, Mapping) else {}
    schema = config.get("responseJsonSchema") or config.get("responseSchema")
    if config.get("responseMimeType") != "application/json" and schema is None:
        return SIDE_TEXT
    required = schema.get("required") if isinstance(schema, Mapping) else None
    wanted = frozenset(str(n) for n in required) if isinstance(required, list) else frozenset()
    for names, answer in _SIDE_JSON:
        if names == wanted:
            return json.dumps(answer)
    # An object missing what the caller looks for: every caller then keeps its default.
    return "{}"


def _parts(blocks: tuple[TextBlock | ToolUseBlock, ...], tools: Any) -> list[dict[str, Any]]:
    offered = offered_from_schemas(_declared(tools))
    parts: list[dict[str, Any]] = []
    for block in blocks:
        if isinstance(block, ToolUseBlock):
            name, args = agent_tool_call(block.name, block.input, offered)
            parts.append({"functionCall": {"name": name, "args": args}})
        else:
            parts.append({"text": block.text})
    return parts


def _declared(tools: Any) -> list[tuple[str, Any]]:
    """(name, parameter schema) of every function a request declares."""
    found = []
    for tool in tools if isinstance(tools, list) else ():
        declarations = tool.get("functionDeclarations") if isinstance(tool, Mapping) else None
        for decl in declarations if isinstance(declarations, list) else ():
            if isinstance(decl, Mapping) and isinstance(decl.get("name"), str):
                schema = decl.get("parametersJsonSchema") or decl.get("parameters")
                found.append((decl["name"], schema))
    return found


def usage_metadata(usage: Usage) -> dict[str, int]:
    """A script's usage as Gemini reports it. Gemini counts cached tokens inside the prompt
    and bills no cache writes: a script's cache writes are ordinary prompt tokens here."""
    prompt = usage.input_tokens + usage.cache_creation_input_tokens + usage.cache_read_input_tokens
    meta = {"promptTokenCount": prompt, "candidatesTokenCount": usage.output_tokens,
            "totalTokenCount": prompt + usage.output_tokens}
    if usage.cache_read_input_tokens:
        meta["cachedContentTokenCount"] = usage.cache_read_input_tokens
    return meta


def tokens_of(usage: Mapping[str, Any]) -> TokenUsage:
    """usageMetadata in the meter's shape: the cached part of the prompt is a cache read,
    tool-use prompt tokens are input, thinking tokens are output (billed as such)."""
    def count(key: str) -> int:
        value = usage.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    cached = min(count("cachedContentTokenCount"), count("promptTokenCount"))
    return TokenUsage(
        input_tokens=count("promptTokenCount") - cached + count("toolUsePromptTokenCount"),
        output_tokens=count("candidatesTokenCount") + count("thoughtsTokenCount"),
        cache_read_tokens=cached,
    )


def _response(parts: list[dict[str, Any]], usage: dict[str, int] | None, model: str,
              response_id: str, finish: bool = True) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish:
        candidate["finishReason"] = "STOP"
    response: dict[str, Any] = {"candidates": [candidate]}
    if usage is not None:
        response["usageMetadata"] = usage
    response.update(modelVersion=model, responseId=response_id)
    return response


def stream_chunks(parts: list[dict[str, Any]], usage: dict[str, int], model: str,
                  response_id: str) -> list[dict[str, Any]]:
    """The chunks that stream `parts`: text cut in two, as a real stream cuts it; a function
    call whole (Gemini never splits one); the last chunk carries finishReason and usage."""
    pieces: list[dict[str, Any]] = []
    for part in parts:
        text = part.get("text")
        if isinstance(text, str) and len(text) > 1:
            half = (len(text) + 1) // 2
            pieces += [{"text": text[:half]}, {"text": text[half:]}]
        else:
            pieces.append(part)
    last = len(pieces) - 1
    return [_response([piece], usage if i == last else None, model, response_id, i == last)
            for i, piece in enumerate(pieces)]


def _assemble(chunks: list[Any]) -> Answer:
    """Streamed chunks as one whole response: consecutive text parts joined (thoughts apart),
    other parts kept in order; the last finishReason, usage and model win."""
    candidates: dict[int, dict[str, Any]] = {}
    usage: dict[str, Any] = {}
    head: dict[str, Any] = {}
    error = None
    for chunk in chunks:
        if not isinstance(chunk, dict):
            continue
        if "error" in chunk:
            error = chunk["error"]
        if isinstance(chunk.get("usageMetadata"), dict):
            usage = dict(chunk["usageMetadata"])
        for key in ("modelVersion", "responseId", "promptFeedback"):
            if key in chunk:
                head[key] = chunk[key]
        for cand in chunk.get("candidates") or ():
            if not isinstance(cand, dict):
                continue
            into = candidates.setdefault(int(cand.get("index", 0)), {
                "content": {"role": "model", "parts": []}, "index": int(cand.get("index", 0))})
            content = cand.get("content")
            for part in (content.get("parts") or ()) if isinstance(content, dict) else ():
                _add_part(into["content"]["parts"], part)
            for key, value in cand.items():
                if key not in ("content", "index"):
                    into[key] = value
    if not candidates and not usage and not head:
        return Answer(None, error=error)
    message: dict[str, Any] = {"candidates": [candidates[i] for i in sorted(candidates)]}
    if usage:
        message["usageMetadata"] = usage
    message.update(head)
    model = head.get("modelVersion")
    return Answer(message, usage, model if isinstance(model, str) else None, error=error)


def _add_part(parts: list[dict[str, Any]], part: Any) -> None:
    if not isinstance(part, dict):
        return
    previous = parts[-1] if parts else None
    if (previous is not None and set(part) <= {"text", "thought"} and "text" in part
            and set(previous) <= {"text", "thought"} and "text" in previous
            and bool(part.get("thought")) == bool(previous.get("thought"))):
        previous["text"] += str(part["text"])
    else:
        parts.append(dict(part))


GEMINI = GeminiApi()
