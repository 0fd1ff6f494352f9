"""Sandboxes created ahead: one creation per key, taken once, the rest removed."""

from __future__ import annotations

import threading

from pytest_axp.sandbox.ahead import CreatedAhead


class Box:
    def __init__(self, name: str, removed: list[str]) -> None:
        self.name = name
        self._removed = removed

    def remove(self) -> None:
        self._removed.append(self.name)


def test_one_creation_per_key_and_taken_once() -> None:
    removed: list[str] = []
    made: list[str] = []
    gate = threading.Event()

    def make(name: str) -> Box:
        gate.wait(5)
        made.append(name)
        return Box(name, removed)

    ahead: CreatedAhead[Box] = CreatedAhead()
    ahead.start("a", lambda: make("first"))
    ahead.start("a", lambda: make("second"))  # already under way: ignored
    gate.set()
    started, box = ahead.take("a", lambda made: True)
    assert started and box is not None and box.name == "first"
    assert ahead.take("a", lambda made: True) == (False, None)
    assert made == ["first"]
    ahead.discard()
    assert removed == []  # taken sandboxes are the taker's


def test_discard_removes_untaken_and_tolerates_failed_creations() -> None:
    removed: list[str] = []

    def fail() -> Box:
        raise RuntimeError("engine said no")

    ahead: CreatedAhead[Box] = CreatedAhead()
    ahead.start("a", lambda: Box("a", removed))
    ahead.start("b", fail)
    ahead.start("c", lambda: Box("c", removed))
    ahead.discard()
    assert sorted(removed) == ["a", "c"]
    assert ahead.take("a", lambda made: True) == (False, None)


def test_a_failed_creation_is_started_but_gives_nothing_and_a_misfit_is_removed() -> None:
    removed: list[str] = []

    def fail() -> Box:
        raise RuntimeError("engine said no")

    ahead: CreatedAhead[Box] = CreatedAhead()
    ahead.start("a", fail)
    ahead.start("b", lambda: Box("b", removed))
    assert ahead.take("a", lambda made: True) == (True, None)
    assert ahead.take("b", lambda made: made.name == "other") == (True, None)
    assert removed == ["b"]
