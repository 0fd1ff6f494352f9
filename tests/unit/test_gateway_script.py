from __future__ import annotations

from pathlib import Path

import pytest

from pytest_axp.gateway import ModelScript, ScriptError
from pytest_axp.gateway.script import EXHAUSTED_TEXT, SIDE_TEXT, TextBlock, consumes_turn

SCRIPT = """
turns:
  - tool_use: {name: Write, input: {file_path: /workspace/hello.txt, content: "hello\\n"}}
  - tool_use: {name: Bash, input: {command: "cat /workspace/hello.txt"}}
  - text: "Done."
  - content: [{text: "two blocks"}, {tool_use: {name: Bash, input: {command: "ls"}}}]
  - error: {status: 500, message: "overloaded"}
usage: {input_tokens: 120, output_tokens: 30}
"""

MAIN = {
    "model": "claude-sonnet-4-5",
    "tools": [{"name": "Bash"}],
    "messages": [{"role": "user", "content": "hi"}],
}


def _main(n: int) -> dict:
    return {**MAIN, "messages": [{"role": "user", "content": f"turn {n}"}]}


def test_load_full_example(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SCRIPT)
    script = ModelScript.load(path)
    assert len(script.turns) == 5
    assert script.usage.input_tokens == 120 and script.usage.output_tokens == 30
    assert script.turns[3].blocks[1].name == "Bash"
    assert script.turns[4].error is not None and script.turns[4].error.status == 500
    assert script.turns[4].error.type == "api_error"
    assert script.source == str(path)


def test_cursor_answers_in_order_and_exhausts() -> None:
    cursor = ModelScript.from_yaml(SCRIPT).cursor()
    first = cursor.next_reply(_main(1))
    assert first.kind == "turn" and first.turn_index == 0
    block = first.message["content"][0]
    assert block["type"] == "tool_use" and block["name"] == "Write"
    assert block["input"] == {"file_path": "/workspace/hello.txt", "content": "hello\n"}
    assert first.message["stop_reason"] == "tool_use"
    assert first.message["model"] == "claude-sonnet-4-5"
    assert first.message["usage"]["input_tokens"] == 120
    assert cursor.next_reply(_main(2)).message["content"][0]["name"] == "Bash"
    done = cursor.next_reply(_main(3))
    assert done.message["content"] == [{"type": "text", "text": "Done."}]
    assert done.message["stop_reason"] == "end_turn"
    two = cursor.next_reply(_main(4)).message
    assert [b["type"] for b in two["content"]] == ["text", "tool_use"]
    err = cursor.next_reply(_main(5))
    assert err.kind == "error" and err.error.status == 500
    assert err.error_body() == {
        "type": "error",
        "error": {"type": "api_error", "message": "overloaded"},
    }
    end = cursor.next_reply(_main(6))
    assert end.kind == "exhausted" and end.message["content"][0]["text"] == EXHAUSTED_TEXT
    assert end.message["stop_reason"] == "end_turn"


def test_each_cursor_has_its_own_turns() -> None:
    script = ModelScript.from_yaml(SCRIPT)
    a, b = script.cursor(), script.cursor()
    assert a.next_reply(_main(1)).turn_index == 0
    assert a.next_reply(_main(2)).turn_index == 1
    assert b.next_reply(_main(1)).turn_index == 0


def test_side_requests_do_not_consume_turns() -> None:
    cursor = ModelScript.from_yaml(SCRIPT).cursor()
    side = cursor.next_reply(
        {"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "title?"}]}
    )
    assert side.kind == "side" and side.message["content"][0]["text"] == SIDE_TEXT
    assert side.message["model"] == "claude-haiku-4-5"
    assert cursor.next_reply(_main(1)).turn_index == 0
    assert consumes_turn({"tools": []}) is False


def test_tool_use_ids_unique_across_cursors() -> None:
    script = ModelScript.from_yaml("turns: [{tool_use: {name: Bash, input: {command: ls}}}]")
    ids = {script.cursor().next_reply(MAIN).message["content"][0]["id"] for _ in range(200)}
    assert len(ids) == 200
    assert all(i.startswith("toolu_") for i in ids)


def test_error_repeats_for_retries_of_the_same_request() -> None:
    cursor = ModelScript.from_yaml("turns: [{error: {status: 500}}, {text: ok}]").cursor()
    assert cursor.next_reply(_main(1)).kind == "error"
    assert cursor.next_reply(_main(1)).kind == "error"  # the CLI's retry
    assert cursor.next_reply(_main(2)).message["content"][0]["text"] == "ok"


def test_error_times_is_transient() -> None:
    cursor = ModelScript.from_yaml("turns: [{error: {status: 529, times: 2}}, {text: ok}]").cursor()
    first = cursor.next_reply(_main(1))
    assert first.error.type == "overloaded_error"
    assert cursor.next_reply(_main(1)).kind == "error"
    assert cursor.next_reply(_main(1)).message["content"][0]["text"] == "ok"


def test_per_turn_usage_and_stream_delay() -> None:
    script = ModelScript.from_yaml(
        "turns: [{text: a, usage: {input_tokens: 5, output_tokens: 1,"
        " cache_read_input_tokens: 7}}]\n"
        "stream_delay_ms: 20"
    )
    assert script.stream_delay_s == pytest.approx(0.02)
    usage = script.cursor().next_reply(MAIN).message["usage"]
    assert usage == {
        "input_tokens": 5,
        "output_tokens": 1,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 7,
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- a\n", "must be a mapping"),
        ("turns: {a: 1}", "'turns' must be a list"),
        ("turns: [hello]", "turns[0]: must be a mapping like {text: ...}, got a bare string"),
        ("turns: [{text: a}, {}]", "turns[1]: needs exactly one of"),
        ("turns: [{text: a, tool_use: {name: x}}]", "turns[0]: needs exactly one of"),
        ("turns: [{tool_use: {input: {}}}]", "turns[0].tool_use.name: must be a non-empty string"),
        (
            "turns: [{tool_use: {name: Bash, input: [1]}}]",
            "turns[0].tool_use.input: must be a mapping",
        ),
        ("turns: [{tool_use: {name: Bash, args: {}}}]", "turns[0].tool_use: unknown key(s): args"),
        ("turns: [{text: 3}]", "turns[0].text: must be a string"),
        ("turns: [{content: []}]", "turns[0].content: must be a non-empty list"),
        ("turns: [{content: [{image: x}]}]", "turns[0].content[0]: a block is"),
        ("turns: [{error: {status: 200}}]", "turns[0].error.status: must be an HTTP error status"),
        (
            "turns: [{error: {status: 500, times: 0}}]",
            "turns[0].error.times: must be a positive integer",
        ),
        ("turns: [{texts: a}]", "turns[0]: unknown key(s): texts"),
        (
            "turns: []\nusage: {input_tokens: -1}",
            "usage: input_tokens must be a non-negative integer",
        ),
        ("turns: []\nusage: {prompt_tokens: 1}", "usage: unknown key(s)"),
        ("turns: []\nmodel: x", "unknown top-level key(s): model"),
        ("turns: [\n", "invalid YAML (line"),
    ],
)
def test_validation_errors_name_file_turn_and_problem(text: str, expected: str) -> None:
    with pytest.raises(ScriptError) as info:
        ModelScript.from_yaml(text, source="my.yaml")
    message = str(info.value)
    assert message.startswith("my.yaml: ")
    assert expected in message
    assert info.value.__context__ is None or info.value.__suppress_context__  # no chained traceback


def test_missing_file_is_a_script_error(tmp_path: Path) -> None:
    with pytest.raises(ScriptError, match="cannot read model script"):
        ModelScript.load(tmp_path / "nope.yaml")


def test_turn_limited_to_an_attempt_rehearses_a_retry() -> None:
    script = ModelScript.from_yaml(
        "turns: [{error: {status: 503}, attempts: [1]}, {text: ok}]")
    first = script.cursor(attempt=1)
    assert first.next_reply(_main(1)).error.status == 503
    assert first.next_reply(_main(1)).kind == "error"  # the CLI's own retry: still failing
    second = script.cursor(attempt=2)
    assert second.next_reply(_main(1)).message["content"][0]["text"] == "ok"


@pytest.mark.parametrize("value", ["1", [], [0], [True], "[1, x]"])
def test_attempts_must_be_attempt_numbers(value) -> None:
    with pytest.raises(ScriptError, match=r"turns\[0\]\.attempts: must be a non-empty list"):
        ModelScript.from_data({"turns": [{"text": "a", "attempts": value}]}, source="m.yaml")


@pytest.mark.parametrize("field", ["messages", "input", "contents"])
def test_a_sticky_error_tells_retries_from_new_turns_in_each_apis_conversation(field: str) -> None:
    script = ModelScript.from_yaml("turns: [{error: {status: 500}}, {text: ok}]")
    cursor = script.cursor()
    tools = {"tools": [{"name": "x"}]}
    assert cursor.next_reply({**tools, field: ["one"]}).kind == "error"
    assert cursor.next_reply({**tools, field: ["one"]}).kind == "error"  # a retry
    assert cursor.next_reply({**tools, field: ["one", "two"]}).blocks == (TextBlock("ok"),)
