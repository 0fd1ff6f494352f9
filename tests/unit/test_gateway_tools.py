"""Neutral tool calls in a model script become each agent's own tools."""

from pytest_axp.gateway.tools import OfferedTool, agent_tool_call, offered_from_schemas

CLAUDE = offered_from_schemas([
    ("Bash", {"properties": {"command": {"type": "string"}, "timeout": {"type": "number"}}}),
    ("Write", {"properties": {"file_path": {"type": "string"}, "content": {"type": "string"}}}),
    ("Read", {"properties": {"file_path": {"type": "string"}}}),
])
CODEX = offered_from_schemas([("exec_command", {"properties": {"cmd": {"type": "string"}}})])
CODEX_OLD = offered_from_schemas([("shell", {"properties": {"command": {"type": "array"}}})])
GEMINI = offered_from_schemas([
    ("run_shell_command", {"properties": {"command": {"type": "string"},
                                          "description": {"type": "string"}}}),
    ("write_file", {"properties": {"file_path": {}, "content": {}}}),
    ("read_file", {"properties": {"absolute_path": {}}}),
])


def test_an_offered_name_passes_unchanged() -> None:
    assert agent_tool_call("Bash", {"command": "ls"}, CLAUDE) == ("Bash", {"command": "ls"})
    # a name nobody offers and that is not neutral is the script's to answer for
    assert agent_tool_call("Skill", {"skill": "x"}, CLAUDE) == ("Skill", {"skill": "x"})


def test_shell_becomes_each_agents_shell_tool() -> None:
    call = {"command": "echo hi > out.txt"}
    assert agent_tool_call("shell", call, CLAUDE) == ("Bash", call)
    assert agent_tool_call("shell", call, CODEX) == ("exec_command",
                                                     {"cmd": "echo hi > out.txt"})
    assert agent_tool_call("shell", call, GEMINI) == ("run_shell_command", call)
    assert agent_tool_call("shell", call, CODEX_OLD) == (
        "shell", {"command": ["bash", "-lc", "echo hi > out.txt"]})


def test_file_tools_use_the_schemas_parameter_names() -> None:
    args = {"path": "/workspace/a.txt", "content": "x"}
    assert agent_tool_call("write_file", args, CLAUDE) == (
        "Write", {"file_path": "/workspace/a.txt", "content": "x"})
    assert agent_tool_call("read_file", {"path": "/w/a"}, GEMINI) == (
        "read_file", {"absolute_path": "/w/a"})


def test_without_a_file_tool_a_file_call_is_a_shell_command() -> None:
    name, args = agent_tool_call("write_file", {"path": "/w/it's.txt", "content": "a b"}, CODEX)
    assert name == "exec_command"
    assert "'/w/it'\"'\"'s.txt'" in args["cmd"] and "YSBi" in args["cmd"]  # quoted; base64
    assert agent_tool_call("read_file", {"path": "/w/x"}, CODEX) == (
        "exec_command", {"cmd": "cat /w/x"})


def test_nothing_offered_leaves_the_call_as_written() -> None:
    assert agent_tool_call("shell", {"command": "ls"}, [OfferedTool("Other")]) == (
        "shell", {"command": "ls"})
