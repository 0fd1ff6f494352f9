"""Waiting for an exec's exit code: the engine may report it some time after the stream ends."""

from __future__ import annotations

from docker.errors import APIError

from pytest_axp.sandbox.docker import _await_exit_code


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def answers(*states):
    replies = list(states)

    def inspect():
        reply = replies.pop(0) if len(replies) > 1 else replies[0]
        if isinstance(reply, Exception):
            raise reply
        return reply
    return inspect


def test_an_exit_code_reported_at_once_is_taken_without_waiting():
    clock = Clock()
    assert _await_exit_code(answers({"Running": False, "ExitCode": 3}), timeout=30,
                            sleep=clock.sleep, clock=clock) == 3
    assert clock.slept == []


def test_it_asks_again_while_running_or_without_a_code():
    clock = Clock()
    inspect = answers({"Running": True, "ExitCode": None}, {"Running": False, "ExitCode": None},
                      {"Running": True, "ExitCode": 0}, {"Running": False, "ExitCode": 0})
    assert _await_exit_code(inspect, timeout=30, sleep=clock.sleep, clock=clock) == 0
    assert len(clock.slept) == 3


def test_a_zero_code_is_a_code():
    clock = Clock()
    assert _await_exit_code(answers({"Running": False, "ExitCode": 0}), timeout=1,
                            sleep=clock.sleep, clock=clock) == 0


def test_an_engine_error_counts_as_not_yet():
    clock = Clock()
    inspect = answers(APIError("busy"), {}, {"Running": False, "ExitCode": 137})
    assert _await_exit_code(inspect, timeout=30, sleep=clock.sleep, clock=clock) == 137


def test_a_code_never_reported_is_none_after_the_bound():
    clock = Clock()
    inspect = answers({"Running": True, "ExitCode": None})
    assert _await_exit_code(inspect, timeout=30, sleep=clock.sleep, clock=clock) is None
    assert 30 <= clock.now < 32
    assert max(clock.slept) <= 1.0, "asked at least once a second"
