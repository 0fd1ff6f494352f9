"""What the runner needs from a sandbox, independent of the backend."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ..record.commands import CommandLog

LABEL_RUN_ID = "axp.run_id"
LABEL_VARIANT_ID = "axp.variant_id"
LABEL_REPEAT = "axp.repeat"
LABEL_OWNER_PID = "axp.owner_pid"
LABEL_OWNER_HOST = "axp.owner_host"
LABEL_SPEC = "axp.spec"  # digest of the creation arguments (see creation_spec)
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


# The defaults, shared: ResourceLimits is frozen, so one instance serves every default.
DEFAULT_LIMITS = ResourceLimits()


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


@dataclass(frozen=True)
class SandboxInfo:
    """A sandbox as a backend lists it (orphans): enough to show and remove it."""

    id: str
    name: str
    labels: Mapping[str, str]
    state: str


class SandboxProcess(Protocol):
    """A process started in a sandbox with its stdio attached (`Sandbox.start`): stdin is
    ours to write, stdout is read line by line, stderr goes to the command's stderr file.
    Its record in commands.jsonl is finished by `wait` (or `kill`)."""

    command_id: str
    stderr_path: Path

    def write(self, data: bytes) -> None:
        """Send bytes to its stdin; SandboxError once stdin is gone."""
        ...

    def read_line(self, timeout: float | None = None) -> bytes | None:
        """The next stdout line (with its newline); None at end of stdout; TimeoutError if
        none came within `timeout` seconds."""
        ...

    def close_stdin(self) -> None: ...

    def kill(self, timed_out: bool = True) -> None:
        """Stop it now (TERM, a short grace, KILL); harmless once it has ended. Its command
        record says `timed_out` unless the caller says it was stopped for another reason
        (e.g. an adapter that does not exit once its work is done)."""
        ...

    def wait(self, timeout: float | None = None) -> int | None:
        """Its exit code once it ended (None if the engine lost it or `timeout` passed)."""
        ...


@runtime_checkable
class Sandbox(Protocol):
    """One variant run's isolated machine, as the engine uses it. Every exec is recorded
    through `commands` (set by the runner before the first exec); failures of the backend
    itself are SandboxError, never the backend's own exception types. A new sandbox's
    WORKSPACE exists and belongs to AGENT_USER (AGENT_UID); `user` AGENT_USER runs as it."""

    id: str
    spec: str                       # digest of the creation arguments (see creation_spec)
    commands: CommandLog | None

    def exec(self, script: str | None = None, *, argv: Sequence[str] | None = None,
             phase: str, name: str, user: str = "root", workdir: str = WORKSPACE,
             env: Mapping[str, str] | None = None,
             timeout: float | None = None) -> ExecResult:
        """Run a bash `script` or an `argv`; ExecResult once it ended (or timed out)."""
        ...

    def start(self, argv: Sequence[str], *, phase: str, name: str, user: str = "root",
              workdir: str = WORKSPACE,
              env: Mapping[str, str] | None = None) -> SandboxProcess:
        """Start `argv` with stdin/stdout attached (e.g. an ACP adapter); recorded in
        commands.jsonl like exec, its stdout and stderr captured (redacted) as well."""
        ...

    def put_archive(self, path: str, data: bytes | IO[bytes]) -> None:
        """Unpack the tar `data` into the folder `path`."""
        ...

    def get_archive(self, path: str) -> Iterator[bytes]:
        """`path` as a tar stream (its last component is the top entry)."""
        ...

    def put_file(self, path: str, content: bytes, mode: int = 0o644, uid: int = 0) -> None:
        ...

    def remove(self, wait: bool = True) -> None:
        """Remove the sandbox; with wait=False possibly in the background (see
        SandboxBackend.finish). Removing twice is harmless."""
        ...


@runtime_checkable
class SandboxBackend(Protocol):
    """Where sandboxes come from: the one object the engine asks for them. Returned by the
    `pytest_axp_sandbox_backend` hook; Docker's is pytest_axp.sandbox.docker.DockerBackend.

    Creation arguments (`args`) are the keyword arguments of `create`: name, image, labels,
    network_mode, extra_hosts, limits. Sandboxes may be created ahead (`create_ahead`) and
    taken later by the same key, in this process, or by name in another one that was told
    so (`adopt_by_name`, the `--axp-created-ahead` option)."""

    name: str
    adopt_by_name: bool

    def ensure_image(self, agent: str, resolve: Callable[[str], str]) -> str:
        """The image reference for an agent's sandboxes. `resolve` is the engine's own image
        builder (AxpSession.resolve_image); a backend that needs no image ignores it."""
        ...

    def create(self, *, image: str, labels: Mapping[str, str], name: str | None = None,
               network_mode: str = "bridge", extra_hosts: Mapping[str, str] | None = None,
               limits: ResourceLimits = DEFAULT_LIMITS,
               commands: CommandLog | None = None) -> Sandbox:
        ...

    def create_ahead(self, key: str, args: Mapping[str, Any]) -> None:
        """Start creating the sandbox `args` describe, for whoever later takes `key`."""
        ...

    def take(self, key: str, args: Mapping[str, Any]) -> Sandbox | None:
        """The sandbox created ahead for `key` (or under `args["name"]` by another process,
        when adopt_by_name) if it was made with these very `args`; else None."""
        ...

    def discard_ahead(self) -> None:
        """Remove every sandbox this process created ahead that nobody took."""
        ...

    def finish(self) -> None:
        """End of session: nothing created ahead is left, background removals are done,
        and no sandbox this process created still exists."""
        ...

    def remove_labelled(self, labels: Mapping[str, str]) -> int:
        """Remove every sandbox carrying all these labels; how many were removed."""
        ...

    def orphans(self) -> list[SandboxInfo]:
        """Sandboxes of this tool whose owner process, on this host, is gone."""
        ...

    def remove_sandbox(self, sandbox_id: str) -> None:
        """Remove one sandbox by id (an orphan); SandboxError if it cannot be."""
        ...

    def host_address(self, isolated: bool) -> str:
        """The host's address as sandboxes reach it (where the model gateway binds); with
        `isolated`, on the agent network that leads nowhere else."""
        ...

    def isolate(self, sandbox: Sandbox) -> None:
        """Move `sandbox` to the agent network: from then on it reaches
        host_address(isolated=True) and nothing else."""
        ...


def creation_spec(*, image: str, network_mode: str = "bridge",
                  extra_hosts: Mapping[str, str] | None = None,
                  limits: ResourceLimits = DEFAULT_LIMITS) -> str:
    """A digest of the arguments a sandbox is made with: one created ahead is used only if
    the run would have made the same one."""
    body = json.dumps({"image": image, "network": network_mode,
                       "hosts": dict(extra_hosts or {}), "limits": dataclasses.asdict(limits)},
                      sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def spec_of(args: Mapping[str, Any]) -> str:
    return creation_spec(image=args["image"], network_mode=args.get("network_mode", "bridge"),
                         extra_hosts=args.get("extra_hosts"),
                         limits=args.get("limits") or DEFAULT_LIMITS)
