"""The Anthropic Messages API as a gateway model API: `POST /v1/messages` (whole or SSE) and
`POST /v1/messages/count_tokens`.

What Claude Code 2.1.328 sends (measured, `-p`, CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1):
only `POST /v1/messages?beta=true` (stream: true; headers x-api-key, anthropic-version,
anthropic-beta, x-claude-code-session-id, x-stainless-*, user-agent claude-cli/2.1.328), one per
turn, each with the full `tools` list; no title/summary/haiku side requests and no count_tokens.
Without that variable it also sends `HEAD /api/hello` first (the gateway answers any unrouted
request with 200 {}).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .apis import Answer, Call, ErrorReply, Route
from .pricing import TokenUsage
from .script import Reply, error_type_for_status
from .sse import MessageAssembler, events_of_message
from .tools import agent_tool_call, offered_from_schemas

# How a refused call is answered (a stopped run, or no model to ask). Measured with Claude Code
# 2.1.328: 401, 408, 409, 429 and 5xx are retried; a 400 invalid_request_error is not retried as
# such, but the CLI re-sends the request up to 5 times with features dropped (betas, thinking
# display, tool search) in case one of them caused the 400; 403/404/413 get misleading messages
# ("Failed to authenticate", "issue with the selected model", "Request too large"). 402
# billing_error (the API's documented status for billing problems) ends it after that one call
# with is_error and the message shown verbatim. `x-should-retry: false` additionally tells its
# SDK not to retry.
REFUSAL_ERROR_TYPE = "billing_error"


class MessagesApi:
    name = "anthropic-messages"
    routes = (
        Route("POST", "/v1/messages"),
        Route("POST", "/v1/messages/count_tokens", model_call=False),
    )
    key_env = "ANTHROPIC_API_KEY"
    base_url_env = "ANTHROPIC_BASE_URL"
    default_upstream = "https://api.anthropic.com"

    def upstream_headers(self, key: str) -> list[tuple[str, str]]:
        return [("x-api-key", key)]

    def error(self, status: int, message: str, kind: str | None = None) -> ErrorReply:
        if status == 402:
            body = error_body(kind or REFUSAL_ERROR_TYPE, message)
            return ErrorReply(status, body, (("x-should-retry", "false"),))
        return ErrorReply(status, error_body(kind or error_type_for_status(status), message))

    def request_model(self, call: Call) -> str | None:
        model = call.body.get("model")
        return model if isinstance(model, str) else None

    def render(self, call: Call, reply: Reply) -> Answer:
        assert reply.message is not None
        message = _as_offered(reply.message, call.body.get("tools"))
        events = list(events_of_message(message)) if call.body.get("stream") else None
        return Answer(message, dict(message["usage"]), message.get("model"), events=events)

    def side_answer(self, call: Call) -> Any:
        # token counting: a rough estimate is all a scripted run needs
        return {"input_tokens": max(1, len(call.request.body) // 4)}

    def read_stream(self, events: list[tuple[str, Any]]) -> Answer:
        assembler = MessageAssembler()
        for name, data in events:
            assembler.add(name, data)
        message = assembler.message or {}
        return Answer(message, assembler.usage(), message.get("model"), error=assembler.error)

    def read_body(self, body: Any) -> Answer:
        if not isinstance(body, dict):
            return Answer(None)
        usage = body.get("usage")
        return Answer(body, dict(usage) if isinstance(usage, dict) else {}, body.get("model"))

    def tokens(self, usage: Mapping[str, Any]) -> TokenUsage:
        return TokenUsage.from_mapping(usage)


def _as_offered(message: dict[str, Any], tools: Any) -> dict[str, Any]:
    """`message` with neutral tool calls (`shell`...) as the tools this request offers."""
    if not any(b.get("type") == "tool_use" for b in message.get("content", ())):
        return message
    offered = offered_from_schemas(
        (t.get("name", ""), t.get("input_schema")) for t in tools or () if isinstance(t, dict))
    content = []
    for block in message["content"]:
        if block.get("type") == "tool_use":
            name, tool_input = agent_tool_call(block["name"], block["input"], offered)
            block = {**block, "name": name, "input": tool_input}
        content.append(block)
    return {**message, "content": content}


def error_body(kind: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}}


MESSAGES = MessagesApi()
