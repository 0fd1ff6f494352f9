"""Run summaries: status rollup and log tails exactly as seed 004 states them."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TAIL_BYTES = 8 * 1024
STATUSES = ("pass", "fail", "timeout", "error")


def tail(path: Path, limit: int = TAIL_BYTES) -> str:
    """The last `limit` bytes of a log as text; a multi-byte character cut at the edge is dropped."""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - limit))
            data = f.read()
    except OSError:
        return ""
    if size > limit:
        # Skip UTF-8 continuation bytes left over from a character cut in half.
        i = 0
        while i < min(3, len(data)) and (data[i] & 0xC0) == 0x80:
            i += 1
        data = data[i:]
    return data.decode("utf-8", errors="replace")


@dataclass
class TestOutcome:
    __test__ = False  # not a pytest test class, despite the name

    name: str
    kind: str
    status: str
    exit_code: int | None
    duration_seconds: float
    stdout_log: Path
    stderr_log: Path

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "status": self.status,
            "exit_code": self.exit_code,
            "duration_seconds": round(self.duration_seconds),
            "duration_ms": round(self.duration_seconds * 1000),
            "stdout_tail": tail(self.stdout_log),
            "stderr_tail": tail(self.stderr_log),
        }


@dataclass
class AgentOutcome:
    name: str = ""
    exit_code: int | None = None
    timed_out: bool = False
    turns: int = 0
    cost_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    stopped_reason: str | None = None
    subtype: str | None = None   # the CLI's result subtype, when it printed one
    model: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "model": self.model,
            "exit_code": self.exit_code,
            "turns": self.turns,
            "cost_usd": self.cost_usd,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
            "timed_out": self.timed_out,
            "stopped_reason": self.stopped_reason,
        }


@dataclass
class Failure:
    """Why a variant ended as `error` before its agent or tests could run (ours)."""

    phase: str
    name: str
    message: str
    exit_code: int | None = None
    stdout_tail: str = ""
    stderr_tail: str = ""
    # True when the cause lies outside the experiment (engine, sandbox creation, a lost exit
    # code, the model API unreachable or overloaded): such a variant may be retried.
    infrastructure: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "phase": self.phase, "name": self.name, "message": self.message,
            "exit_code": self.exit_code,
            "stdout_tail": self.stdout_tail, "stderr_tail": self.stderr_tail,
            "infrastructure": self.infrastructure,
        }

    def one_line(self) -> str:
        code = "" if self.exit_code is None else f" (exit {self.exit_code})"
        return f"{self.phase} '{self.name}' failed{code}: {self.message}"


_UPSTREAM = re.compile(r"^api_error: upstream status (?P<status>\d+|None)?\s*$")


def model_api_failure(agent: AgentOutcome | None) -> Failure | None:
    """The agent gave up because the model API failed it (unreachable, 429, 5xx or
    overloaded, after the agent's own retries): an infrastructure error, not a result of
    the experiment. Other API errors (400, 401, ...) are the experiment's own."""
    reason = agent.stopped_reason if agent is not None else None
    m = _UPSTREAM.match(reason or "")
    if m is None:
        return None
    status = m["status"]
    if status not in (None, "None") and not (int(status) == 429 or int(status) >= 500):
        return None
    what = "no answer" if status in (None, "None") else f"status {status}"
    return Failure(phase="model_api", name=agent.name or "agent", exit_code=agent.exit_code,
                   message=f"the model API failed the agent ({what}); tests were not run",
                   infrastructure=True)


@dataclass
class VariantOutcome:
    agent: AgentOutcome | None = None
    tests: list[TestOutcome] = field(default_factory=list)
    failure: Failure | None = None


def rollup(outcome: VariantOutcome) -> str:
    """Seed 004's status rules, plus ours: a staging/setup failure is `error`."""
    if outcome.failure is not None:
        return "error"
    agent = outcome.agent
    if agent is not None and agent.timed_out:
        return "timeout"
    if any(t.status != "pass" for t in outcome.tests):
        return "fail"
    if not outcome.tests and agent is not None and agent.exit_code not in (0, None):
        return "error"
    if agent is None:
        return "error"
    return "pass"


def build_summary(*, run_id: str, variant_id: str, variant_tag: str, experiment_id: str,
                  repeat: int, fingerprint: str, outcome: VariantOutcome,
                  started_at: float, ended_at: float) -> dict[str, Any]:
    agent = outcome.agent or AgentOutcome()
    return {
        "schema_version": 1,
        "run_id": run_id,
        "variant_id": variant_id,
        "variant_tag": variant_tag,
        "experiment_id": experiment_id,
        "status": rollup(outcome),
        "agent": agent.to_json(),
        "started_at_epoch": int(started_at),
        "ended_at_epoch": int(ended_at),
        "duration_seconds": round(ended_at - started_at),
        "duration_ms": round((ended_at - started_at) * 1000),
        "tests": [t.to_json() for t in outcome.tests],
        "repeat": repeat,
        "fingerprint": fingerprint,
        "error": outcome.failure.to_json() if outcome.failure else None,
    }
