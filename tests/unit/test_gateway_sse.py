from __future__ import annotations

import json

from pytest_axp.gateway import ModelScript
from pytest_axp.gateway.sse import MessageAssembler, SSEParser, encode_event, events_of_message


def _message() -> dict:
    script = ModelScript.from_yaml(
        'turns: [{content: [{text: "héllo wörld"},'
        ' {tool_use: {name: Bash, input: {command: "echo ✓"}}}]}]\n'
        "usage: {input_tokens: 11, output_tokens: 7}"
    )
    return (
        script.cursor()
        .next_reply({"model": "m", "tools": [{"name": "Bash"}], "messages": []})
        .message
    )


def test_frame_has_event_line_and_single_data_line() -> None:
    frame = encode_event("message_stop", {"type": "message_stop"})
    assert frame == b'event: message_stop\ndata: {"type":"message_stop"}\n\n'


def test_event_sequence_matches_messages_api() -> None:
    message = _message()
    events = list(events_of_message(message))
    names = [n for n, _ in events]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    start = events[0][1]["message"]
    assert (
        start["content"] == []
        and start["role"] == "assistant"
        and start["id"]
        and start["model"] == "m"
    )
    assert start["usage"]["input_tokens"] == 11
    # every block: start -> deltas -> stop; tool input only through input_json_delta
    assert names.count("content_block_start") == 2 and names.count("content_block_stop") == 2
    tool_start = [d for n, d in events if n == "content_block_start"][1]["content_block"]
    assert tool_start["type"] == "tool_use" and tool_start["input"] == {}
    partial = "".join(
        d["delta"]["partial_json"]
        for n, d in events
        if n == "content_block_delta" and d["index"] == 1
    )
    assert json.loads(partial) == {"command": "echo ✓"}
    delta = events[-2][1]
    assert delta["delta"]["stop_reason"] == "tool_use" and delta["usage"]["output_tokens"] == 7


def test_parser_and_assembler_roundtrip_with_arbitrary_chunking() -> None:
    message = _message()
    raw = b"".join(encode_event(n, d) for n, d in events_of_message(message)).replace(
        b"\n", b"\r\n"
    )
    for size in (1, 3, 17, len(raw)):
        parser, assembler = SSEParser(), MessageAssembler()
        pairs = []
        for i in range(0, len(raw), size):
            pairs += parser.feed(raw[i : i + size])
        pairs += parser.close()
        for name, data in pairs:
            assembler.add(name, json.loads(data))
        assert next(p[0] for p in pairs) == "message_start"
        rebuilt = assembler.message
        assert rebuilt["content"] == message["content"]
        assert rebuilt["stop_reason"] == "tool_use"
        assert assembler.usage()["output_tokens"] == 7 and assembler.usage()["input_tokens"] == 11


def test_parser_ignores_comments_and_joins_multiline_data() -> None:
    parser = SSEParser()
    out = parser.feed(b": ping\n\nevent: x\ndata: a\ndata: b\n\n")
    assert out == [("x", "a\nb")]


def test_assembler_records_error_event() -> None:
    assembler = MessageAssembler()
    assembler.add(
        "error", {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}
    )
    assert assembler.error == {"type": "overloaded_error", "message": "busy"}
