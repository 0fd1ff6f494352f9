"""What the runner needs from a sandbox, independent of the backend."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

LABEL_RUN_ID = "axp.run_id"
LABEL_VARIANT_ID = "axp.variant_id"
LABEL_REPEAT = "axp.repeat"
LABEL_OWNER_PID = "axp.owner_pid"
LABEL_OWNER_HOST = "axp.owner_host"
LABEL_SPEC = "axp.spec"  # digest of the creation arguments (see docker.sandbox_spec)
AGENT_USER = "agent"
AGENT_UID = 1000
WORKSPACE = "/workspace"


@dataclass(frozen=True)
class ResourceLimits:
    """What one sandbox may use. Defaults suit a small machine; override them in
    configuration (pytest ini options axp_memory, axp_cpus, axp_pids_limit,
    axp_output_limit_bytes) or with `axp local run --memory/--cpus/--pids-limit`."""

    memory: str = "4g"
    cpus: float = 2.0
    pids: int = 2048
    output_bytes: int = 64 * 1024 * 1024  # per stream of each command; the rest is cut


class SandboxError(Exception):
    """The sandbox backend could not do what was asked (engine down, image missing...)."""


class ExitCodeLost(SandboxError):
    """A command ran but the engine never said how it ended: the variant cannot be judged
    (an infrastructure error, never a failed test). Its record is already written."""

    def __init__(self, command_id: str, message: str) -> None:
        super().__init__(f"command {command_id}: {message}")
        self.command_id = command_id


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


@dataclass(frozen=True)
class ImageLayer:
    """What an agent adds to the base sandbox image, built once per (base image, key).

    `key` identifies the content without building it (the Dockerfile's text and any pinned
    version): a new key is a new image. `context(log)` makes the build context (file name
    -> bytes or a host path) and is called only when the image must be built (`log`, when
    not None, takes progress lines); its Dockerfile starts `FROM ${BASE}`: the build
    argument BASE is the base image's tag.
    """

    name: str   # the image repository is pytest-axp/<name>
    key: str
    context: Callable[[Callable[[str], None] | None], Mapping[str, bytes | Path]]
