"""Run summaries: status rollup and log tails exactly as seed 004 states them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TAIL_BYTES = 8 * 1024
STATUSES = ("pass", "fail", "timeout", "error")


def tail(path: Path, limit: int = TAIL_BYTES) -> str:
    """The last `limit` bytes of a log as text; a multi-byte character cut at the edge is
    dropped."""
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
    timed_out: bool = False
    reason: str | None = None   # why it failed when no exit code says it (a timeout)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "status": self.status,
            "exit_code": self.exit_code,
            "timed_out": self.timed_out,
            "reason": self.reason,
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
    # Where the model's answers came from: "scripted" (--model-script), "live" (a real
    # model API) or "none" (no model, or none reachable). Runs of different sources are
    # never pooled into one rate.
    model_source: str = "none"
    # The HTTP status of the model API error the agent ended on, when it ended on one.
    api_error_status: int | None = None
    # Why the model gateway could not reach a model for this run (its own words), if so.
    api_unreachable: str | None = None
    # Processes of the agent user still running when its step ended, then stopped.
    processes_stopped: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "model": self.model,
            "model_source": self.model_source,
            "exit_code": self.exit_code,
            "turns": self.turns,
            "cost_usd": self.cost_usd,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
            "timed_out": self.timed_out,
            "stopped_reason": self.stopped_reason,
            "api_error_status": self.api_error_status,
            "processes_stopped": self.processes_stopped,
        }


@dataclass
class Failure:
    """Why a variant ended as `error` (ours): it could not start, or the infrastructure
    failed its agent or tests (see agent_failure)."""

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


@dataclass
class VariantOutcome:
    agent: AgentOutcome | None = None
    tests: list[TestOutcome] = field(default_factory=list)
    failure: Failure | None = None
    notes: list[str] = field(default_factory=list)


NO_TESTS_NOTE = "no tests: status reflects the agent's exit only"

# Model API answers that say nothing about the agent: timeouts, rate limits, overload and
# server errors, once the agent's own retries have given up on them.
_INFRA_API_STATUSES = frozenset({408, 429, 500, 502, 503, 504, 529})
_CREDENTIAL_API_STATUSES = frozenset({401, 403})


def agent_failure(agent: AgentOutcome) -> Failure | None:
    """The Failure an agent's ending stands for when it is not the agent's doing, else None.

    Infrastructure (retried by --retries): the model API was unreachable (the gateway says
    why), answered 408/429/5xx/529 after the agent's own retries, or the agent's exit code
    was lost. A rejected key (401/403) is an error too, but retrying will not mend it.
    A timeout or any other ending is left to the tests and the rollup.
    """
    if agent.timed_out:
        return None
    name = agent.name or "agent"
    if agent.exit_code == 0:
        return None
    if agent.api_unreachable:
        return Failure(phase="model_api", name=name, infrastructure=True,
                       message=f"model API unreachable: {agent.api_unreachable}")
    status = agent.api_error_status
    if status in _INFRA_API_STATUSES:
        return Failure(phase="model_api", name=name, infrastructure=True,
                       message=f"model API error: status {status} after the agent's retries")
    if status in _CREDENTIAL_API_STATUSES:
        return Failure(phase="model_api", name=name,
                       message=f"model API refused the credentials: status {status}")
    if agent.exit_code is None:
        return Failure(phase="agent", name=name, infrastructure=True,
                       message="the agent's exit code could not be read from the sandbox")
    return None


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
        "notes": list(outcome.notes),
    }
