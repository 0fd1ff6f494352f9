"""What the runner needs from a sandbox, independent of the backend."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

LABEL_RUN_ID = "axp.run_id"
LABEL_VARIANT_ID = "axp.variant_id"
LABEL_REPEAT = "axp.repeat"
LABEL_OWNER_PID = "axp.owner_pid"
LABEL_OWNER_HOST = "axp.owner_host"
AGENT_USER = "agent"
AGENT_UID = 1000
WORKSPACE = "/workspace"


class SandboxError(Exception):
    """The sandbox backend could not do what was asked (engine down, image missing...)."""


@dataclass(frozen=True)
class ExecResult:
    command_id: str
    exit_code: int | None
    timed_out: bool
    duration_seconds: float
    stdout_path: Path
    stderr_path: Path

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out
