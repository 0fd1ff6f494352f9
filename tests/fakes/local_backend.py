"""A sandbox backend with no Docker: each sandbox is a temporary folder on the host, and
its commands are host subprocesses. Enable it with `-p tests.fakes.local_backend`.

The harness's absolute sandbox paths (/workspace, /axp/...) are rewritten to the folder
in every script, argv element, working directory and environment value. Users are not
switched (everything runs as the test's user) and nothing is isolated: it runs the test
suite's own experiments, not untrusted ones. Good enough to run `command`-agent
experiments end to end through the real plugin, runner and recorders.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import pytest

from pytest_axp.record.commands import CommandLog
from pytest_axp.sandbox.base import (
    DEFAULT_LIMITS,
    WORKSPACE,
    ExecResult,
    ResourceLimits,
    SandboxError,
    SandboxInfo,
    creation_spec,
    spec_of,
)
from pytest_axp.secrets import Redactor

IMAGE = "axp-fake-local"
_MAPPED_ROOTS = (WORKSPACE, "/axp")
_STOP_PROCESSES = "stop-processes"   # the runner's end-of-agent process sweep


class LocalSandbox:
    def __init__(self, root: Path, labels: Mapping[str, str], spec: str,
                 commands: CommandLog | None, output_limit: int) -> None:
        self.root = root
        self.labels = dict(labels)
        self.spec = spec
        self.commands = commands
        self.output_limit = output_limit
        self.id = uuid.uuid4().hex
        self.isolated = False
        self._agent_groups: list[int] = []  # process groups the agent user started
        for top in _MAPPED_ROOTS:
            self.host(top).mkdir(parents=True, exist_ok=True)
        (root / "home").mkdir(exist_ok=True)

    def host(self, path: str) -> Path:
        """The host path standing for the sandbox path `path`."""
        return Path(self.map(path))

    def map(self, text: str) -> str:
        for top in _MAPPED_ROOTS:
            text = text.replace(top, str(self.root) + top)
        return text

    def exec(self, script: str | None = None, *, argv: Sequence[str] | None = None,
             phase: str, name: str, user: str = "root", workdir: str = WORKSPACE,
             env: Mapping[str, str] | None = None, timeout: float | None = None) -> ExecResult:
        argv = ["bash", "-c", script] if argv is None else list(argv)
        assert self.commands is not None, "the runner sets the command log before any exec"
        started = time.time()
        rec, out_path, err_path = self.commands.start(
            phase=phase, name=name, argv=argv, user=user, workdir=workdir,
            started_at_epoch=started)
        timed_out = False
        try:
            if phase == "agent" and name == _STOP_PROCESSES:
                # The real sweep signals every process of the agent's uid: on the host that
                # is the test's own user. Stop what the agent started instead.
                stopped = self._stop_agent_groups()
                argv = ["bash", "-c", f"echo stopped={stopped} left=0"]
            run_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                       "HOME": str(self.root / "home"), "LANG": "C.UTF-8",
                       **{k: self.map(v) for k, v in (env or {}).items()}}
            with open(out_path, "wb") as out, open(err_path, "wb") as err:
                try:
                    proc = subprocess.Popen([self.map(a) for a in argv], stdout=out,
                                            stderr=err, cwd=self.map(workdir), env=run_env,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
                except OSError as e:
                    rec.extra["error"] = f"could not start: {e}"
                    raise SandboxError(f"command {rec.id} ({phase} {name}) could not "
                                       f"start: {e}") from None
                if user != "root":
                    self._agent_groups.append(proc.pid)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    timed_out = True
                    _kill_group(proc.pid)
                    proc.wait()
                except BaseException:
                    rec.extra["interrupted"] = True
                    _kill_group(proc.pid)
                    raise
            rec.exit_code, rec.timed_out = proc.returncode, timed_out
            counts = [self._redact(path) for path in (out_path, err_path)]
            rec.stdout_bytes, rec.stderr_bytes = counts
        finally:
            rec.duration_seconds = round(time.time() - started, 3)
            self.commands.finish(rec)
        return ExecResult(rec.id, rec.exit_code, timed_out, rec.duration_seconds,
                          out_path, err_path)

    def start(self, argv: Sequence[str], *, phase: str, name: str, user: str = "root",
              workdir: str = WORKSPACE,
              env: Mapping[str, str] | None = None) -> LocalProcess:
        assert self.commands is not None, "the runner sets the command log before any start"
        argv = list(argv)
        rec, out_path, err_path = self.commands.start(
            phase=phase, name=name, argv=argv, user=user, workdir=workdir,
            started_at_epoch=time.time())
        run_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                   "HOME": str(self.root / "home"), "LANG": "C.UTF-8",
                   **{k: self.map(v) for k, v in (env or {}).items()}}
        err = open(err_path, "wb")
        try:
            proc = subprocess.Popen([self.map(a) for a in argv], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=err,
                                    cwd=self.map(workdir), env=run_env,
                                    start_new_session=True)
        except OSError as e:
            err.close()
            rec.extra["error"] = f"could not start: {e}"
            self.commands.finish(rec)
            raise SandboxError(f"command {rec.id} ({phase} {name}) could not start: "
                               f"{e}") from None
        if user != "root":
            self._agent_groups.append(proc.pid)
        return LocalProcess(self, rec, proc, err, out_path, err_path)

    def _redact(self, path: Path) -> int:
        """Secrets out of a captured stream, cut at the output limit; its original size."""
        assert self.commands is not None
        data = path.read_bytes()
        red = Redactor(self.commands.redactor.values_text)
        kept = red.feed(data[:self.output_limit]) + red.flush(cut=len(data) > self.output_limit)
        path.write_bytes(kept)
        return len(data)

    def _stop_agent_groups(self) -> int:
        stopped = 0
        for pgid in self._agent_groups:
            if _kill_group(pgid):
                stopped += 1
        self._agent_groups.clear()
        return stopped

    def put_archive(self, path: str, data: bytes | IO[bytes]) -> None:
        dest = self.host(path)
        if not dest.is_dir():
            raise SandboxError(f"copy into {path} failed: no such folder")
        with tarfile.open(fileobj=io.BytesIO(data) if isinstance(data, bytes) else data) as tar:
            tar.extractall(dest, filter="fully_trusted")

    def get_archive(self, path: str) -> Iterator[bytes]:
        source = self.host(path)
        if not source.exists():
            raise SandboxError(f"copy out of {path} failed: no such file")
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            tar.add(source, arcname=source.name)
        return iter([buf.getvalue()])

    def put_file(self, path: str, content: bytes, mode: int = 0o644, uid: int = 0) -> None:
        dest = self.host(path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(content)
        dest.chmod(mode)

    def remove(self, wait: bool = True) -> None:
        self._stop_agent_groups()
        shutil.rmtree(self.root, ignore_errors=True)


class LocalProcess:
    """Sandbox.start's process on the host: stdout lines are read as they come (and kept,
    for the command's stdout file), stderr goes to its file."""

    def __init__(self, box: LocalSandbox, rec: Any, proc: subprocess.Popen[bytes],
                 err: IO[bytes], out_path: Path, err_path: Path) -> None:
        self.command_id = rec.id
        self.stderr_path = err_path
        self._box, self._rec, self._proc, self._err = box, rec, proc, err
        self._out_path = out_path
        self._kept: list[bytes] = []
        self._done = False

    def write(self, data: bytes) -> None:
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.write(data)
            self._proc.stdin.flush()
        except OSError as e:
            raise SandboxError(f"command {self.command_id}: stdin closed: {e}") from None

    def read_line(self, timeout: float | None = None) -> bytes | None:
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()  # the client reads from its own thread
        if not line:
            return None
        self._kept.append(line)
        return line

    def close_stdin(self) -> None:
        if self._proc.stdin is not None:
            try:
                self._proc.stdin.close()
            except OSError:
                pass

    def kill(self, timed_out: bool = True) -> None:
        self._rec.timed_out = timed_out
        _kill_group(self._proc.pid)

    def wait(self, timeout: float | None = None) -> int | None:
        try:
            code = self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        if not self._done:
            self._done = True
            self._err.close()
            self._out_path.write_bytes(b"".join(self._kept))
            self._rec.exit_code = code
            self._rec.stdout_bytes, self._rec.stderr_bytes = (
                self._box._redact(self._out_path), self._box._redact(self.stderr_path))
            assert self._box.commands is not None
            self._box.commands.finish(self._rec)
        return code


def _kill_group(pgid: int) -> bool:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return False
    return True


class LocalBackend:
    """SandboxBackend over LocalSandbox; `created` lists every sandbox made, for tests."""

    name = "local"

    def __init__(self) -> None:
        self.adopt_by_name = False
        self.live: dict[str, LocalSandbox] = {}
        self.created: list[LocalSandbox] = []
        self._ahead: dict[str, LocalSandbox] = {}
        self._lock = threading.Lock()

    def ensure_image(self, agent: str, resolve: Callable[[str], str]) -> str:
        return IMAGE

    def create(self, *, image: str, labels: Mapping[str, str], name: str | None = None,
               network_mode: str = "bridge", extra_hosts: Mapping[str, str] | None = None,
               limits: ResourceLimits = DEFAULT_LIMITS,
               commands: CommandLog | None = None) -> LocalSandbox:
        if image != IMAGE:
            raise SandboxError(f"could not start a sandbox from image {image!r}: the local "
                               f"backend has only {IMAGE}")
        root = Path(tempfile.mkdtemp(prefix="axp-local-"))
        box = LocalSandbox(root, labels, creation_spec(
            image=image, network_mode=network_mode, extra_hosts=extra_hosts, limits=limits),
            commands, limits.output_bytes)
        with self._lock:
            self.live[box.id] = box
            self.created.append(box)
        return box

    def create_ahead(self, key: str, args: Mapping[str, Any]) -> None:
        if key not in self._ahead:
            self._ahead[key] = self.create(**args)

    def take(self, key: str, args: Mapping[str, Any]) -> LocalSandbox | None:
        box = self._ahead.pop(key, None)
        if box is not None and box.spec != spec_of(args):
            self._forget(box)
            return None
        return box

    def discard_ahead(self) -> None:
        for box in list(self._ahead.values()):
            self._forget(box)
        self._ahead.clear()

    def finish(self) -> None:
        self.discard_ahead()
        for box in list(self.live.values()):
            self._forget(box)

    def remove_labelled(self, labels: Mapping[str, str]) -> int:
        matching = [b for b in self.live.values()
                    if all(b.labels.get(k) == v for k, v in labels.items())]
        for box in matching:
            self._forget(box)
        return len(matching)

    def orphans(self) -> list[SandboxInfo]:
        return []  # every sandbox belongs to this process and goes with it

    def remove_sandbox(self, sandbox_id: str) -> None:
        box = self.live.get(sandbox_id)
        if box is not None:
            self._forget(box)

    def host_address(self, isolated: bool) -> str:
        return "127.0.0.1"

    def isolate(self, sandbox: Any) -> None:
        sandbox.isolated = True

    def _forget(self, box: LocalSandbox) -> None:
        box.remove()
        with self._lock:
            self.live.pop(box.id, None)


_backend = LocalBackend()


def pytest_axp_sandbox_backend(config: pytest.Config) -> LocalBackend:
    return _backend
