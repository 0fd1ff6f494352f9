from pathlib import Path

from pytest_axp.record.summary import (
    AgentOutcome, Failure, TestOutcome, VariantOutcome, rollup, tail,
)


def _test(status: str) -> TestOutcome:
    return TestOutcome("t", "application", status, 0 if status == "pass" else 1, 0.1,
                      Path("/nonexistent"), Path("/nonexistent"))


def test_rollup_follows_seed_004():
    ok = AgentOutcome(exit_code=0)
    assert rollup(VariantOutcome(agent=ok, tests=[_test("pass")])) == "pass"
    assert rollup(VariantOutcome(agent=ok, tests=[])) == "pass"
    assert rollup(VariantOutcome(agent=ok, tests=[_test("pass"), _test("fail")])) == "fail"
    assert rollup(VariantOutcome(agent=AgentOutcome(exit_code=None, timed_out=True))) == "timeout"
    # A non-zero agent exit does not by itself make an all-passing run an error...
    assert rollup(VariantOutcome(agent=AgentOutcome(exit_code=1), tests=[_test("pass")])) == "pass"
    # ...but with no tests run it does.
    assert rollup(VariantOutcome(agent=AgentOutcome(exit_code=1), tests=[])) == "error"
    assert rollup(VariantOutcome(failure=Failure("setup", "s", "boom", 2))) == "error"


def test_tail_keeps_exactly_the_last_8k(tmp_path):
    log = tmp_path / "x.log"
    data = "".join(f"{i:06d}\n" for i in range(3000))
    log.write_text(data)
    assert tail(log) == data[-8192:]
    assert tail(tmp_path / "absent.log") == ""


def test_tail_drops_a_character_cut_in_half(tmp_path):
    log = tmp_path / "u.log"
    log.write_bytes("é".encode() * 5000)  # 2 bytes each: the cut lands mid-character
    out = tail(log, 8191)
    assert out == "é" * 4095
    assert "\ufffd" not in out


def test_tail_of_binary_output_is_safe(tmp_path):
    log = tmp_path / "b.log"
    log.write_bytes(b"\x00\xff\xfe" * 4000)
    out = tail(log)
    assert isinstance(out, str) and len(out) > 0
