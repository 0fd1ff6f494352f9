from pathlib import Path

import pytest

from pytest_axp.record.summary import (
    NO_TESTS_NOTE,
    AgentOutcome,
    Failure,
    TestOutcome,
    VariantOutcome,
    agent_failure,
    build_summary,
    rollup,
    tail,
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


# -- agent_failure: what of an agent's ending is not the agent's doing -----------------------

def _agent(**kw) -> AgentOutcome:
    return AgentOutcome(name="claude", **kw)


def test_model_api_unreachable_is_an_infrastructure_error():
    f = agent_failure(_agent(exit_code=1, api_error_status=402,
                             api_unreachable="no ANTHROPIC_API_KEY and no --model-script"))
    assert f is not None and f.infrastructure and f.phase == "model_api" and f.name == "claude"
    assert f.message == "model API unreachable: no ANTHROPIC_API_KEY and no --model-script"
    assert f.one_line() == ("model_api 'claude' failed: model API unreachable: "
                            "no ANTHROPIC_API_KEY and no --model-script")
    assert rollup(VariantOutcome(agent=_agent(exit_code=1), failure=f)) == "error"


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504, 529])
def test_overload_and_server_errors_after_retries_are_infrastructure(status):
    f = agent_failure(_agent(exit_code=1, api_error_status=status))
    assert f is not None and f.infrastructure
    assert f.message == f"model API error: status {status} after the agent's retries"


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_key_is_an_error_that_retrying_cannot_mend(status):
    f = agent_failure(_agent(exit_code=1, api_error_status=status))
    assert f is not None and not f.infrastructure and str(status) in f.message


def test_lost_exit_code_is_infrastructure():
    f = agent_failure(_agent(exit_code=None))
    assert f is not None and f.infrastructure and "exit code" in f.message


@pytest.mark.parametrize("agent", [
    _agent(exit_code=0),                                   # success
    _agent(exit_code=0, api_unreachable="x"),              # recovered after a failed call
    _agent(exit_code=None, timed_out=True),                # a timeout is its own status
    _agent(exit_code=143, timed_out=True, api_error_status=529),
    _agent(exit_code=1),                                   # max turns, a crash: the tests say
    _agent(exit_code=1, api_error_status=402),             # our cost limit stopped it
    _agent(exit_code=1, api_error_status=400),             # e.g. a prompt too long
])
def test_the_agents_own_endings_are_left_to_tests_and_rollup(agent):
    assert agent_failure(agent) is None


def test_summary_carries_notes_model_source_and_the_infrastructure_flag():
    f = agent_failure(_agent(exit_code=1, api_error_status=503))
    outcome = VariantOutcome(agent=_agent(exit_code=1, api_error_status=503,
                                          model_source="live"),
                             failure=f, notes=[NO_TESTS_NOTE])
    s = build_summary(run_id="r", variant_id="v", variant_tag="V", experiment_id="e",
                      repeat=1, fingerprint="f", outcome=outcome, started_at=0, ended_at=1)
    assert s["status"] == "error"
    assert s["error"]["infrastructure"] is True and s["error"]["phase"] == "model_api"
    assert s["agent"]["model_source"] == "live" and s["agent"]["api_error_status"] == 503
    assert s["notes"] == ["no tests: status reflects the agent's exit only"]
