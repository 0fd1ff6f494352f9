"""The agent protocol: how the runner hands a prompt to an agent in the sandbox."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ..record.layout import VariantPaths
from ..record.summary import AgentOutcome
from ..record.trace import TraceWriter

if TYPE_CHECKING:
    from ..experiment import ResolvedVariant
    from ..sandbox.docker import DockerSandbox
    from ..services import Services


class AgentNotAvailable(Exception):
    """The experiment names an agent this installation cannot run."""


@dataclass
class AgentContext:
    variant: "ResolvedVariant"
    sandbox: "DockerSandbox"
    paths: VariantPaths
    env: dict[str, str]          # environment_variables, secrets and AXP_* for the agent
    timeout: float | None        # limits.max_time_seconds
    trace: TraceWriter
    run_id: str
    repeat: int
    services: "Services"         # shared per-process services (e.g. the model gateway)
    trace_id: str = ""           # the run's trace id: agent OTLP files are named by it
    secret_values: tuple[str, ...] = ()   # to redact from anything the agent side records
    gateway_host: str = "host.docker.internal"  # how the sandbox reaches the model gateway
    attempt: int = 1             # 2, 3, ... when an infrastructure error is retried


class Agent(Protocol):
    name: str

    def run(self, ctx: AgentContext) -> AgentOutcome:
        """Run to completion or timeout; write agent-raw.json and agent.log; fill the trace."""
        ...
