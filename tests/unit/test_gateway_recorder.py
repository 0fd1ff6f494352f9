from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from pytest_axp.gateway.recorder import (
    REDACTED,
    ApiRedactor,
    BodyRecorder,
    redact_headers,
    write_json_record,
)


def test_redacts_secrets_in_nested_values_and_keys() -> None:
    r = ApiRedactor(["sk-test-SECRET", "tok123", "", None])
    out = r.obj({"a": ["x sk-test-SECRET y", {"tok123": 1}], "n": 5, "b": None})
    assert out == {"a": [f"x {REDACTED} y", {REDACTED: 1}], "n": 5, "b": None}


def test_longest_secret_wins_and_escaped_forms_are_caught() -> None:
    r = ApiRedactor(["abc", "abcdef", 'q"uo\\te'])
    text = r.dumps({"v": "abcdef abc", "w": 'q"uo\\te'})
    assert "abc" not in text.replace(REDACTED, "") and "uo" not in text
    assert json.loads(text) == {"v": f"{REDACTED} {REDACTED}", "w": REDACTED}


def test_headers_with_credentials_are_redacted() -> None:
    headers = redact_headers(
        [
            ("X-Api-Key", "k"),
            ("Authorization", "Bearer t"),
            ("x-axp-run-token", "t"),
            ("anthropic-version", "2023"),
        ]
    )
    assert headers == {
        "x-api-key": REDACTED,
        "authorization": REDACTED,
        "x-axp-run-token": REDACTED,
        "anthropic-version": "2023",
    }


def test_a_record_is_written_whole_and_readable(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "f.json"
    write_json_record(target, "{}")
    write_json_record(target, '{"a": 1}')
    assert json.loads(target.read_text()) == {"a": 1}
    assert os.listdir(target.parent) == ["f.json"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_body_recorder_numbers_files_in_order(tmp_path: Path) -> None:
    rec = BodyRecorder(tmp_path, ApiRedactor(["s3cr3t"]))
    for _ in range(2):
        seq = rec.next_seq()
        rec.write(seq, "request", {"body": {"k": "s3cr3t"}})
        rec.write(seq, "response", {"status": 200})
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "0001.request.json", "0001.response.json", "0002.request.json", "0002.response.json",
    ]
    assert "s3cr3t" not in (tmp_path / "0001.request.json").read_text()


def test_secret_split_across_deltas_is_coalesced() -> None:
    r = ApiRedactor(["my-run-secret"])
    events = [
        {
            "event": "content_block_delta",
            "data": {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "input_json_delta", "partial_json": '{"c": "my-ru'},
            },
        },
        {
            "event": "content_block_delta",
            "data": {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "input_json_delta", "partial_json": 'n-secret"}'},
            },
        },
        {
            "event": "content_block_delta",
            "data": {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "text_delta", "text": "fine"},
            },
        },
    ]
    out = r.events(events)
    assert out is not events and events[0]["data"]["delta"]["partial_json"] == '{"c": "my-ru'
    deltas = [e["data"]["delta"] for e in out]
    assert deltas[0]["partial_json"] + deltas[1]["partial_json"] == '{"c": "[REDACTED]"}'
    assert deltas[0]["_coalesced"] is True and deltas[2]["text"] == "fine"
    assert r.events(events[2:]) is not None and ApiRedactor(["zzz"]).events(events) is events


def test_a_multi_line_secret_is_caught_whole_and_line_by_line() -> None:
    value = "first-line-AAAA\nsecond-line-BBBB"
    r = ApiRedactor([value])
    text = r.dumps({"whole": f"x {value} y", "lines": ["first-line-AAAA", "+second-line-BBBB"],
                    "escaped": json.dumps(value)})
    assert "line-AAAA" not in text and "line-BBBB" not in text
    assert json.loads(text)["lines"] == ["[REDACTED]", "+[REDACTED]"]
