import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_axp.secrets import (
    MARKER,
    MIN_SECRET_LENGTH,
    EnvError,
    Redactor,
    parse_env_file,
    resolve_values,
    too_short,
    too_short_message,
)


def test_precedence_chain(tmp_path):
    (tmp_path / ".env").write_text("A=dotenv\nB=dotenv\nC=dotenv\nD=dotenv\nUNDECLARED=x\n")
    f1 = tmp_path / "one.env"
    f1.write_text("export B=file1\nC='file1'\n")
    f2 = tmp_path / "two.env"
    f2.write_text('C="file2"  \n# comment\n')
    host = {"D": "host", "E": "host-e", "F": "host-f"}
    got = resolve_values(["A", "B", "C", "D", "E", "F", "G"], cwd=tmp_path,
                         env_files=[f1, f2], host_env=host, env_args=["E=cli", "F"])
    assert got == {"A": "dotenv", "B": "file1", "C": "file2", "D": "host", "E": "cli",
                   "F": "host-f"}
    assert "UNDECLARED" not in got and "G" not in got


def test_env_file_errors_name_the_line(tmp_path):
    bad = tmp_path / "bad.env"
    bad.write_text("OK=1\nthis is not an assignment\n")
    with pytest.raises(EnvError, match=r"bad.env:2: expected NAME=VALUE"):
        parse_env_file(bad)
    with pytest.raises(EnvError, match="not set in this environment"):
        resolve_values(["X"], cwd=tmp_path, host_env={}, env_args=["X"])
    with pytest.raises(EnvError, match="expected NAME=VALUE or NAME"):
        resolve_values(["X"], cwd=tmp_path, host_env={}, env_args=["1X=2"])


def test_redactor_whole_and_longest_first():
    r = Redactor(["sk-secret", "sk-secret-long"])
    assert r.bytes(b"a sk-secret-long b sk-secret c") == b"a " + MARKER + b" b " + MARKER + b" c"
    assert not Redactor([""])


@settings(max_examples=300, deadline=None)
@given(prefix=st.binary(max_size=40), suffix=st.binary(max_size=40),
       cuts=st.lists(st.integers(min_value=0, max_value=120), max_size=6))
def test_redactor_stream_finds_values_split_anywhere(prefix, suffix, cuts):
    secret = b"s3cr3t-VALUE-42"
    data = prefix + secret + suffix + secret
    r = Redactor([secret.decode()])
    out, last = b"", 0
    for cut in [*sorted(set(c for c in cuts if c <= len(data))), len(data)]:
        out += r.feed(data[last:cut])
        last = cut
    out += r.flush()
    assert secret not in out
    assert out == r.bytes(data)


# -- every form a value can be written in ---------------------------------------------

MULTI = "-----BEGIN KEY-----\nQUJDREVGR0hJSktMTU5PUA==\nab\n-----END KEY-----"
LONG_LINES = ["-----BEGIN KEY-----", "QUJDREVGR0hJSktMTU5PUA==", "-----END KEY-----"]


def _leaks(data: bytes, value: str = MULTI) -> list[str]:
    """The forms of `value` (itself, its long lines) still present in `data`."""
    return [f for f in [value, *LONG_LINES] if f.encode() in data]


def test_too_short_values_are_named():
    assert MIN_SECRET_LENGTH == 8
    assert too_short({"A": "x", "B": "1234567", "C": "12345678", "D": "",
                      "E": "  1234567\n"}) == ["A", "B", "E"]
    message = too_short_message("A", "x")
    assert "A" in message and "1 character" in message and "\n" not in message


def test_forms_cover_lines_json_url_and_base64():
    import base64
    import json
    from urllib.parse import quote

    r = Redactor([MULTI])
    for form in (MULTI, *LONG_LINES, json.dumps(MULTI)[1:-1], quote(MULTI, safe="")):
        assert r.bytes(b"<" + form.encode() + b">") == b"<" + MARKER + b">", form
    # Each line as a unified diff writes it, and inside a JSON document.
    patch = "".join(f"+{line}\n" for line in MULTI.splitlines())
    assert _leaks(r.text(patch).encode()) == []
    assert r.text(patch).count("[REDACTED]") == 3 and "+ab\n" in r.text(patch)
    assert _leaks(json.dumps({"k": MULTI, "lines": MULTI.splitlines()}).encode()) != []
    assert _leaks(r.text(json.dumps({"k": MULTI, "lines": MULTI.splitlines()})).encode()) == []
    # base64 of the value inside a longer encoded text, at each byte alignment.
    for before in (b"", b"x", b"xy", b"xyz"):
        encoded = base64.b64encode(before + MULTI.encode() + b"tail").decode()
        assert "[REDACTED]" in r.text(encoded), before


def test_non_ascii_value_in_ascii_json():
    import json

    value = "pässwörd-geheim"
    r = Redactor([value])
    assert r.text(json.dumps({"v": value})) == '{"v": "[REDACTED]"}'
    assert r.text(json.dumps({"v": value}, ensure_ascii=False)) == '{"v": "[REDACTED]"}'


def test_names_and_structures():
    r = Redactor(["NameSecret-42"])
    assert r.text("dir/file-NameSecret-42.txt") == "dir/file-[REDACTED].txt"
    assert r.obj({"path-NameSecret-42": ["a NameSecret-42", 3, None], "n": 1.5}) == {
        "path-[REDACTED]": ["a [REDACTED]", 3, None], "n": 1.5}
    assert Redactor([]).obj({"a": "b"}) == {"a": "b"}


def test_stream_finds_a_multi_line_value_split_at_every_offset():
    data = f"before {MULTI} middle\n{MULTI.replace(chr(10), chr(10) + '+')}\nafter".encode()
    for cut in range(len(data) + 1):
        r = Redactor([MULTI])
        out = r.feed(data[:cut]) + r.feed(data[cut:]) + r.flush()
        assert _leaks(out) == [], cut
    r = Redactor([MULTI])
    out = b"".join(r.feed(data[i:i + 1]) for i in range(len(data))) + r.flush()
    assert _leaks(out) == []


def test_a_cut_stream_keeps_no_beginning_of_a_value():
    r = Redactor(["SUPERSECRETVALUE123"])
    assert r.mask_cut_end(b"stdout:SUPERSECRETVA") == b"stdout:" + MARKER
    assert r.mask_cut_end(b"stdout:S") == b"stdout:" + MARKER
    assert r.mask_cut_end(b"stdout:") == b"stdout:"
    r.feed(b"stdout:SUPERSECRETVA")
    assert r.flush(cut=True) == b"stdout:" + MARKER


def _pumped(frames: list[tuple[int, bytes]], values: list[str], limit: int) -> tuple[bytes, bytes]:
    """Run sandbox.docker._pump over a real socket carrying Docker's framed stream."""
    import socket
    import struct
    import tempfile
    from pathlib import Path

    from pytest_axp.sandbox.docker import _pump

    a, b = socket.socketpair()
    with a, b, tempfile.TemporaryDirectory() as tmp:
        a.sendall(b"".join(bytes([s, 0, 0, 0]) + struct.pack(">I", len(p)) + p
                           for s, p in frames))
        a.shutdown(socket.SHUT_WR)
        out, err = Path(tmp, "out"), Path(tmp, "err")
        _pump(b, out, err, [0, 0], Redactor(values), limit)
        return out.read_bytes(), err.read_bytes()


def test_output_cap_at_every_offset_of_a_value():
    secret = "SUPERSECRETVALUE123"
    line = f"stdout:{secret}\n".encode()
    for limit in range(1, len(line) + 3):
        # The value in one frame, and split across frames at the cut.
        for frames in ([(1, line)], [(1, line[:limit]), (1, line[limit:])]):
            out, _ = _pumped([f for f in frames if f[1]], [secret], limit)
            kept = out.split(b"\n[axp: output cut")[0]
            assert secret[:2].encode() not in kept, (limit, out)
            if 7 < limit < len(line):
                assert kept == b"stdout:" + MARKER, (limit, out)
            if limit <= 7:
                assert kept == line[:limit]
            if limit >= len(line):
                assert out == b"stdout:" + MARKER + b"\n"


def test_output_cap_through_a_line_of_a_multi_line_value():
    data = f"x {MULTI}\n".encode()
    for limit in range(1, len(data)):
        out, err = _pumped([(2, data)], [MULTI], limit)
        kept = err.split(b"\n[axp: output cut")[0]
        assert _leaks(kept) == [], limit
        for line in LONG_LINES:
            assert not any(kept.endswith(line[:n].encode()) for n in range(2, len(line))), (
                limit, kept)
        assert out == b""


def test_a_run_refuses_a_too_short_secret(tmp_path):
    import textwrap

    from pytest_axp.experiment import load_and_resolve
    from pytest_axp.runner import VariantFailed, secret_values

    path = tmp_path / "exp.yaml"
    path.write_text(textwrap.dedent("""
        schema_version: 2
        id: short
        name: Short
        agents: [{name: command, script: "true"}]
        prompts: [go]
        secrets: [LONG_ONE, TINY]
        tests: {}
        limits: {}
    """))
    variant = load_and_resolve(str(path))[0]
    with pytest.raises(VariantFailed) as e:
        secret_values(variant, {"LONG_ONE": "long-enough-value", "TINY": "Qz7"})
    assert e.value.failure.phase == "secrets" and e.value.failure.name == "TINY"
    assert "TINY is 3 character(s)" in e.value.failure.message
    assert "Qz7" not in e.value.failure.message
    assert secret_values(variant, {"LONG_ONE": "long-enough-value", "TINY": "12345678"}) == {
        "LONG_ONE": "long-enough-value", "TINY": "12345678"}
