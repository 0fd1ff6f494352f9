"""The viewer's pure parts: the trace read in pages and folded into steps, one-line reasons,
file confinement, escaping, and the state file `axp local run` reads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_axp.record.layout import RunPaths
from pytest_axp.view import data
from pytest_axp.view.render import figure_json, render
from pytest_axp.view.server import STATE_FILE, viewer_url, write_state


def _update(seq: int, kind: str, update: dict, **extra) -> dict:
    return {"seq": seq, "ts_ns": 1_000_000_000 + seq * 1_000_000, "kind": kind,
            "session_id": "s", **extra,
            "raw_json": {"jsonrpc": "2.0", "method": "session/update",
                         "params": {"sessionId": "s",
                                    "update": {"sessionUpdate": kind, **update}}}}


def _write(path: Path, events: list[dict], tail: str = "") -> None:
    path.write_text("".join(json.dumps(e) + "\n" for e in events) + tail)


def test_steps_fold_chunks_tool_updates_and_usage(tmp_path):
    trace = tmp_path / "agent-trace.jsonl"
    _write(trace, [
        _update(0, "user_message_chunk", {"content": {"type": "text", "text": "Do it"}}),
        _update(1, "tool_call", {"toolCallId": "t1", "title": "Terminal", "kind": "execute",
                                 "status": "pending", "rawInput": {},
                                 "_meta": {"claudeCode": {"toolName": "Bash"}}},
                tool_call_id="t1"),
        _update(2, "usage_update", {"used": 11, "size": 1000}),
        _update(3, "usage_update", {"used": 22, "size": 1000,
                                    "cost": {"amount": 0.5, "currency": "USD"}}),
        _update(4, "tool_call_update", {"toolCallId": "t1", "rawInput": {"command": "ls -a"},
                                        "title": "ls -a"}, tool_call_id="t1"),
        _update(5, "tool_call_update", {"toolCallId": "t1", "status": "completed",
                                        "rawOutput": "a\nb"}, tool_call_id="t1"),
        _update(6, "agent_message_chunk", {"content": {"type": "text", "text": "Do"}}),
        _update(7, "agent_message_chunk", {"content": {"type": "text", "text": "ne."}}),
        {"seq": 8, "ts_ns": 1_008_000_000, "kind": "permission", "raw_json": {
            "jsonrpc": "2.0", "id": 0, "method": "session/request_permission",
            "params": {"toolCall": {"toolCallId": "t2", "title": "rm x",
                                    "rawInput": {"command": "rm x"}},
                       "options": [{"optionId": "allow-once", "name": "Yes"}]}}},
        {"seq": 9, "kind": "response", "raw_json": {
            "jsonrpc": "2.0", "id": 0, "result": {"outcome": {"optionId": "allow-once"}}}},
        {"seq": 10, "kind": "response", "raw_json": {
            "jsonrpc": "2.0", "id": 3, "result": {"stopReason": "end_turn",
                                                  "usage": {"inputTokens": 20}}}},
    ])
    page = data.trace_page(trace)
    assert page.next_offset is None and page.size == trace.stat().st_size
    kinds = [s.kind for s in page.steps]
    assert kinds == ["prompt", "tool", "usage", "message", "permission", "permission",
                     "result"]
    prompt, tool, usage, message, ask, answer, result = page.steps
    assert prompt.text == "Do it" and prompt.ts_ms == 0
    assert (tool.tool_name, tool.title, tool.status, tool.updates) == (
        "Bash", "ls -a", "completed", 2)
    assert json.loads(tool.input) == {"command": "ls -a"} and tool.output == "a\nb"
    assert usage.text == "context 22 of 1000 tokens; cost 0.5 USD"
    assert message.text == "Done."
    assert ask.title == "rm x" and "Yes" in ask.text and "rm x" in ask.input
    assert answer.text == "allow-once"
    assert result.text == "stop: end_turn; usage: inputTokens 20"


def test_frames_recorded_under_msg_read_too(tmp_path):
    trace = tmp_path / "frames.jsonl"
    _write(trace, [{"t": 1.5, "dir": "client->agent", "msg": {
        "jsonrpc": "2.0", "id": 3, "method": "session/prompt",
        "params": {"prompt": [{"type": "text", "text": "Create x.txt"}]}}}])
    (step,) = data.trace_page(trace).steps
    assert (step.kind, step.text, step.ts_ms) == ("prompt", "Create x.txt", 1500.0)


def test_pages_cover_every_event_once_and_leave_a_torn_line(tmp_path):
    trace = tmp_path / "agent-trace.jsonl"
    n = 1000
    events = [_update(i, "tool_call", {"toolCallId": f"c{i}", "title": f"step {i}"},
                      tool_call_id=f"c{i}") for i in range(n)]
    _write(trace, events, tail='{"seq": 1000, "kind": "tool_ca')  # being written
    seen, offset, pages = [], 0, 0
    while True:
        page = data.trace_page(trace, offset, limit=150)
        pages += 1
        assert len(page.steps) <= 150
        seen += [int(s.title.split()[1]) for s in page.steps]
        if page.next_offset is None or page.next_offset == offset:
            break
        offset = page.next_offset
    assert seen == list(range(n)) and pages == 8  # the last one finds only the torn line
    # The torn line is where the next read starts, not skipped.
    assert offset + len(trace.read_bytes()[offset:]) == trace.stat().st_size
    with open(trace, "a") as f:
        f.write('ll", "raw_json": {}}\n')
    last = data.trace_page(trace, offset)
    assert [s.kind for s in last.steps] == ["event"] and last.next_offset is None


def test_a_huge_line_is_listed_not_parsed(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "MAX_EVENT_BYTES", 1000)
    trace = tmp_path / "t.jsonl"
    _write(trace, [_update(0, "agent_message_chunk",
                           {"content": {"type": "text", "text": "x" * 5000}}),
                   _update(1, "agent_message_chunk", {"content": {"type": "text", "text": "ok"}})])
    steps = data.trace_page(trace).steps
    assert [s.kind for s in steps] == ["unreadable", "message"]
    assert steps[1].text == "ok"


def test_why_says_it_in_one_line():
    assert data.why({"status": "pass"}) == ""
    assert data.why({"status": "fail", "tests": [
        {"kind": "application", "name": "ok", "status": "pass"},
        {"kind": "application", "name": "has-x", "status": "fail", "exit_code": 1,
         "stderr_tail": "first\nno x in out.txt\n"}]}) == (
        "test application/has-x failed (exit 1): no x in out.txt")
    assert data.why({"status": "error", "error": {
        "phase": "model_api", "name": "claude", "message": "model API unreachable: refused",
        "exit_code": None, "stderr_tail": ""}}) == (
        "model_api 'claude' failed: model API unreachable: refused")
    assert data.why({"status": "timeout", "agent": {"timed_out": True}}) == (
        "the agent timed out; tests did not run")


def test_files_are_served_from_inside_the_variant_only(tmp_path):
    run = RunPaths(tmp_path / "exp-01ARZ3NDEKTSV4RRFFQ69G5FAV")
    v = run.results("a").root
    (v / "application").mkdir(parents=True)
    (v / "application" / "t.stderr.log").write_text("boom")
    (run.root / "index.json").write_text("{}")
    (v / "link").symlink_to(run.root / "index.json")
    assert data.variant_file(run, "a", "application/t.stderr.log").read_text() == "boom"
    for bad in ("../../index.json", "/etc/passwd", "link", "application/../../../index.json",
                "application", "", "a\\b"):
        with pytest.raises(data.BadPath):
            data.variant_file(run, "a", bad)


def test_trace_text_is_escaped_everywhere():
    hostile = "</pre><script>alert(1)</script><img src=x onerror=alert(2)>"
    step = data.Step("tool", 1, 0.0, title=hostile, text=hostile, tool_name=hostile,
                     input=hostile, output=hostile, status=hostile)
    page = data.TracePage([step], 0, None, 10, None)
    html = render("_steps.html", page=page, base="/runs/r/v")
    assert "<script>" not in html and "<img" not in html
    assert html.count("&lt;script&gt;alert(1)&lt;/script&gt;") == 7  # status twice
    block = figure_json({"data": [{"y": [hostile]}]})
    assert "</script>" not in block and "<img" not in block
    assert json.loads(str(block))["data"][0]["y"] == [hostile]


def test_state_file_names_a_live_viewer_only(tmp_path):
    assert viewer_url(tmp_path) is None
    write_state(tmp_path, "http://127.0.0.1:9999")
    assert viewer_url(tmp_path) == "http://127.0.0.1:9999"
    # A viewer that died without cleaning up: its file is ignored.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (tmp_path / STATE_FILE).write_text(json.dumps({"url": "http://127.0.0.1:1",
                                                   "pid": int(dead)}))
    assert viewer_url(tmp_path) is None
    (tmp_path / STATE_FILE).write_text("not json")
    assert viewer_url(tmp_path) is None


def test_run_set_groups_the_repeats_of_one_invocation(tmp_path):
    from ulid import ULID

    first = ULID()
    stamp = str(first)[:10]
    ids = [f"exp-{stamp}{'0' * 15}{c}" for c in "21"]  # repeat 2's id sorts first
    other = f"exp-{ULID.from_timestamp(first.timestamp + 5)!s}"
    for rid, rep in ((ids[0], 2), (ids[1], 1), (other, 1)):
        v = RunPaths(tmp_path / rid).results("a").root
        v.mkdir(parents=True)
        (v / "layout.json").write_text(json.dumps({"repeat": rep}))
    assert data.run_set(tmp_path, ids[0]) == [ids[1], ids[0]]
    assert data.run_set(tmp_path, other) == [other]


def test_a_run_is_live_while_its_writer_lives(tmp_path):
    rid = "exp-01ARZ3NDEKTSV4RRFFQ69G5FAV"
    assert not data.is_live(tmp_path, rid)
    lock = tmp_path / ".01ARZ3NDEKTSV4RRFFQ69G5FAV.lock"
    lock.write_text(json.dumps({"pid": os.getpid(), "run": rid}))
    assert data.is_live(tmp_path, rid)
    lock.write_text(json.dumps({"pid": 2 ** 22 + 12345, "run": rid}))
    assert not data.is_live(tmp_path, rid)


def test_chart_labels_carry_no_plotly_markup():
    from pytest_axp.view import charts

    fig = charts.timeline(['test <a href="https://x">x</a><br>'], [0.0], [1.0], [False])
    (label,) = fig["data"][0]["y"]
    assert "<" not in label and ">" not in label and "href" in label


def test_a_patch_named_outside_the_variant_is_not_read(tmp_path):
    run = RunPaths(tmp_path / "exp-01ARZ3NDEKTSV4RRFFQ69G5FAV")
    fs = run.results("a").fs_diff
    fs.mkdir(parents=True)
    (tmp_path / "secret.txt").write_text("+top secret\n")
    (fs / "2").mkdir()
    (fs / "2" / "ok.txt.patch").write_text("--- a/ok.txt\n+++ b/ok.txt\n@@ -0,0 +1 @@\n+fine\n")
    (fs / "2.json").write_text(json.dumps({"seq": 2, "point": "after_agent", "changes": [
        {"path": "ok.txt", "change": "added", "patch": "2/ok.txt.patch"},
        {"path": "x", "change": "added", "patch": "../../../../secret.txt"}]}))
    (point,) = data.diff_points(run, "a")
    ok, bad = point.changes
    assert ("add", "+fine") in ok.lines and ok.patch_path == "fs-diff/2/ok.txt.patch"
    assert bad.lines == [] and bad.patch_path is None


def test_acp_frames_with_their_envelope(tmp_path):
    trace = tmp_path / "t.jsonl"
    _write(trace, [
        {"seq": 0, "ts_ns": 5, "kind": "initialize", "direction": "client->agent",
         "raw_json": {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {}}},
        {"seq": 1, "ts_ns": 6, "kind": "response", "direction": "agent->client",
         "method": "initialize", "raw_json": {"jsonrpc": "2.0", "id": 0, "result": {
             "protocolVersion": 1}}},
        {"seq": 2, "ts_ns": 7, "kind": "response", "direction": "agent->client",
         "method": "session/new", "raw_json": {"jsonrpc": "2.0", "id": 1,
                                               "error": {"message": "no"}}},
        {"seq": 3, "ts_ns": 8, "kind": "agent_stdout", "raw_json": {"axp_stdout": "hi\n"}},
    ])
    steps = data.trace_page(trace).steps
    assert [(s.kind, s.title) for s in steps] == [
        ("event", "initialize"), ("event", "response to initialize"),
        ("event", "response to session/new: error"), ("stdout", "")]
    assert steps[3].text == "hi\n"


def test_the_runs_of_one_invocation_share_a_millisecond(tmp_path, monkeypatch):
    """new_ulids mints every repeat's ULID at one timestamp, however slowly, so run_set
    finds them all."""
    import time

    from pytest_axp.session import new_ulids

    clock = iter(range(1_700_000_000, 1_700_000_100))  # a second passes at every look
    monkeypatch.setattr(time, "time", lambda: float(next(clock)) + 0.0005)
    monkeypatch.setattr(time, "time_ns", lambda: next(clock) * 1_000_000_000)
    ulids = new_ulids(5)
    assert len(set(ulids)) == 5
    assert len({u[:10] for u in ulids}) == 1
    for n, u in enumerate(ulids, 1):
        v = RunPaths(tmp_path / f"exp-{u}").results("a").root
        v.mkdir(parents=True)
        (v / "layout.json").write_text(json.dumps({"repeat": n}))
    assert data.run_set(tmp_path, f"exp-{ulids[3]}") == [f"exp-{u}" for u in ulids]
