"""One registered run of the gateway: its token, where its files go, its meter and its state."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from .meter import Meter
from .otlp import OtlpStore
from .recorder import ApiRedactor, BodyRecorder
from .script import ModelScript, ScriptCursor

T = TypeVar("T")


class _FromMeter(Generic[T]):
    """A read-only attribute of the handle that is its meter's attribute of the same name."""

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    def __get__(self, handle: RunHandle | None, owner: type | None = None) -> T:
        if handle is None:  # on the class: there is no meter to read
            raise AttributeError(self._name)
        value: T = getattr(handle.meter, self._name)
        return value


@dataclass(eq=False)
class RunHandle:
    """One registered run: its token, where its files go, and live counters (from its meter)."""

    run_key: str
    token: str
    bodies_dir: Path
    traces_dir: Path
    trace_id: str
    max_cost_usd: float | None
    max_turns: int | None = None  # model turns after which calls are refused (None: no cap)
    model_api: str = "anthropic-messages"  # the API the run's agent speaks (for model_source)
    # Why the last model call could not reach a model (None once one got an answer).
    unreachable: str | None = None
    errors: list[str] = field(default_factory=list)
    # The HTTP status the last main-conversation call was answered with (None before one).
    last_turn_status: int | None = None
    telemetry_posts: int = 0
    closed: bool = False
    meter: Meter = field(default_factory=Meter, repr=False)
    _script: ModelScript | None = field(default=None, repr=False)
    _cursor: ScriptCursor | None = field(default=None, repr=False)
    _redactor: ApiRedactor = field(default_factory=lambda: ApiRedactor(()), repr=False)
    _recorder: BodyRecorder | None = field(default=None, repr=False)
    _otlp: OtlpStore | None = field(default=None, repr=False)
    _inflight: int = field(default=0, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.meter.max_cost_usd = self.max_cost_usd
        self.meter.max_turns = self.max_turns

    def __repr__(self) -> str:  # never show the token
        return (f"RunHandle(run_key={self.run_key!r}, requests={self.requests}, "
                f"cost_usd={self.cost_usd:.6f})")

    @property
    def scripted(self) -> bool:
        return self._script is not None

    # The meter's counters, read as the handle's own (agents read them after a run).
    requests = _FromMeter[int]()
    turns = _FromMeter[int]()
    input_tokens = _FromMeter[int]()
    output_tokens = _FromMeter[int]()
    cache_creation_input_tokens = _FromMeter[int]()
    cache_read_input_tokens = _FromMeter[int]()
    cost_usd = _FromMeter[float]()
    stopped_reason = _FromMeter["str | None"]()

    def snapshot(self) -> dict[str, Any]:
        """Counters as a plain dict (safe to log: no token)."""
        snap = self.meter.snapshot()
        with self._lock:
            snap["errors"] = list(self.errors)
        return snap

    def _error(self, message: str) -> None:
        with self._lock:
            self.errors.append(message)
