import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_axp.secrets import MARKER, EnvError, Redactor, parse_env_file, resolve_values


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
    for cut in sorted(set(c for c in cuts if c <= len(data))) + [len(data)]:
        out += r.feed(data[last:cut])
        last = cut
    out += r.flush()
    assert secret not in out
    assert out == r.bytes(data)
