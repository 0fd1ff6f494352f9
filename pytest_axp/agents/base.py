"""The agent adapter protocol: how the runner hands a prompt to an agent in the sandbox.

Adapters are found through the `pytest_axp_agent` hook (see hookspecs.py and registry.py).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ..record.layout import VariantPaths
from ..record.summary import AgentOutcome
from ..record.trace import TraceWriter

if TYPE_CHECKING:
    from ..experiment import Agent as AgentSpec
    from ..experiment import ResolvedVariant
    from ..sandbox.base import ExecResult, ImageLayer, SandboxProcess
    from ..services import Services


class AgentNotAvailable(Exception):
    """The experiment names an agent this installation cannot run."""


class AgentSandbox(Protocol):
    """What an agent may do with its sandbox (every backend's sandbox offers this)."""

    def exec(self, script: str | None = None, *, argv: Sequence[str] | None = None,
             phase: str, name: str, user: str = "root", workdir: str = "/workspace",
             env: Mapping[str, str] | None = None,
             timeout: float | None = None) -> ExecResult: ...

    def start(self, argv: Sequence[str], *, phase: str, name: str, user: str = "root",
              workdir: str = "/workspace",
              env: Mapping[str, str] | None = None) -> SandboxProcess: ...

    def put_file(self, path: str, content: bytes, mode: int = 0o644,
                 uid: int = 0) -> None: ...

    def get_archive(self, path: str) -> Iterator[bytes]: ...


@dataclass
class AgentContext:
    variant: ResolvedVariant
    sandbox: AgentSandbox
    paths: VariantPaths
    env: dict[str, str]          # environment_variables, secrets and AXP_* for the agent
    timeout: float | None        # limits.max_time_seconds
    trace: TraceWriter
    run_id: str
    repeat: int
    services: Services         # shared per-process services (e.g. the model gateway)
    trace_id: str = ""           # the run's trace id: agent OTLP files are named by it
    secret_values: tuple[str, ...] = ()   # to redact from anything the agent side records
    gateway_host: str = "host.docker.internal"  # how the sandbox reaches the model gateway
    attempt: int = 1             # 2, 3, ... when an infrastructure error is retried


class Agent(Protocol):
    """An agent adapter, as `pytest_axp_agent` returns it."""

    name: str
    # The model API the agent speaks through the gateway ("anthropic-messages"), or None
    # when it calls no model through pytest-axp.
    model_api: str | None

    def image_layer(self) -> ImageLayer | None:
        """What the agent adds to the base sandbox image, or None (it runs on the base)."""
        ...

    def validate(self, agent_spec: AgentSpec) -> list[str]:
        """Problems with the experiment's agent fields (e.g. `script`), one line each."""
        ...

    def run(self, ctx: AgentContext) -> AgentOutcome:
        """Run to completion or timeout; write agent-raw.json and agent.log; fill the trace."""
        ...


def model_fields(model: Any) -> tuple[str | None, dict[str, Any]]:
    """(model name, its other fields) for a string or object `model`."""
    if model is None:
        return None, {}
    if isinstance(model, str):
        return model, {}
    fields = model.model_dump(exclude_none=True)
    return fields.pop("name", None), fields
