"""The Docker backend: one container per variant run, every exec logged."""

from __future__ import annotations

import io
import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol, cast

import docker
from docker.errors import APIError, DockerException, NotFound

from ..record.commands import CommandLog
from ..runlock import process_alive
from ..secrets import Redactor
from .ahead import CreatedAhead
from .base import (
    AGENT_UID,
    AGENT_USER,
    DEFAULT_LIMITS,
    LABEL_OWNER_HOST,
    LABEL_OWNER_PID,
    LABEL_SPEC,
    WORKSPACE,
    ExecResult,
    ExitCodeLost,
    ResourceLimits,
    SandboxError,
    SandboxInfo,
    creation_spec,
    spec_of,
)

if TYPE_CHECKING:
    from docker.models.containers import Container

_TERM_GRACE_SECONDS = 5.0   # time to flush telemetry and session files before SIGKILL
_KILL_GRACE_SECONDS = 10.0
_EXIT_CODE_WAIT = 30.0       # how long the engine may take to record an exit code
_TIMED_OUT_EXIT_WAIT = 5.0
_client: docker.DockerClient | None = None
_client_lock = threading.Lock()
# Removing a container takes ~0.1 s that no later step needs to wait for.
_remover = ThreadPoolExecutor(max_workers=2, thread_name_prefix="axp-remove")
_pending_removals: set[Future[None]] = set()
_live: set[str] = set()  # containers this process created and has not yet removed


def client() -> docker.DockerClient:
    """One client per process; it is thread-safe enough for our sequential use per item."""
    global _client
    with _client_lock:
        if _client is None:
            try:
                _client = docker.from_env(timeout=300)
                _client.ping()
            except DockerException as e:
                host = os.environ.get("DOCKER_HOST")
                tried = (f"DOCKER_HOST={host}" if host else
                         "unix:///var/run/docker.sock (DOCKER_HOST is not set)")
                raise SandboxError(
                    f"cannot reach the Docker engine at {tried}: {' '.join(str(e).split())}; "
                    "start dockerd or set DOCKER_HOST"
                ) from None
        return _client


def owner_labels() -> dict[str, str]:
    return {LABEL_OWNER_PID: str(os.getpid()), LABEL_OWNER_HOST: socket.gethostname()}


def _id(container: Container) -> str:
    # The engine gives every container it made or listed an id; the SDK's model allows None.
    assert container.id is not None
    return container.id


class _Closable(Protocol):
    def close(self) -> None: ...


class DockerSandbox:
    def __init__(self, container: Container, commands: CommandLog | None,
                 output_limit: int = ResourceLimits.output_bytes) -> None:
        # Got from the engine through a client, so the model has one.
        assert container.client is not None
        self.output_limit = output_limit
        self.spec: str = ((container.attrs.get("Config") or {}).get("Labels") or {}).get(
            LABEL_SPEC, "")
        self._container = container
        self._api = container.client.api
        self.commands = commands  # a prefetched sandbox gets its log when it is used
        self.id: str = _id(container)

    @classmethod
    def create(cls, *, image: str, labels: Mapping[str, str], commands: CommandLog | None = None,
               network_mode: str = "bridge", extra_hosts: Mapping[str, str] | None = None,
               name: str | None = None,
               limits: ResourceLimits = DEFAULT_LIMITS,
               cli: docker.DockerClient | None = None,
               created: Callable[[], None] | None = None) -> DockerSandbox:
        """A running sandbox on `cli`'s engine (default: this process's client()).
        `created`, when given, is called once the engine has made (not yet started) the
        container, or failed to: a pool holds its placement lock until then."""
        cli = cli or client()
        pending = [created] if created is not None else []

        def release() -> None:
            while pending:
                pending.pop()()

        spec = creation_spec(image=image, network_mode=network_mode,
                             extra_hosts=extra_hosts, limits=limits)
        try:
            try:
                container = _make(
                    cli, release if created is not None else None, image,
                    command=["sleep", "infinity"],
                    name=name,
                    detach=True,
                    init=True,  # PID 1 forwards signals, so removal is instant
                    labels={**owner_labels(), **labels, LABEL_SPEC: spec},
                    network_mode=network_mode,
                    extra_hosts=dict(extra_hosts or {}),
                    working_dir=WORKSPACE,
                    # Nothing in the sandbox may gain privileges (setuid sudo included), and
                    # one runaway variant cannot starve the others.
                    security_opt=["no-new-privileges"],
                    mem_limit=limits.memory,
                    nano_cpus=int(limits.cpus * 1e9),
                    pids_limit=limits.pids,
                )
            finally:
                release()
        except APIError as e:
            if e.status_code == 409 and name:
                # Created ahead under this name by another process, maybe still starting:
                # adopted only if made with these very arguments.
                adopted = _adopt(_wait_running(name, cli=cli), spec)
                if adopted is not None:
                    return cls(adopted, commands, limits.output_bytes)
                return cls.create(image=image, labels=labels, commands=commands,
                                  network_mode=network_mode, extra_hosts=extra_hosts,
                                  name=name, limits=limits, cli=cli)
            raise SandboxError(f"could not start a sandbox from image {image!r}: {e}") from None
        except DockerException as e:
            raise SandboxError(f"could not start a sandbox from image {image!r}: {e}") from None
        _live.add(_id(container))
        sandbox = cls(container, commands, limits.output_bytes)
        try:
            # /workspace itself is the agent's, whatever image the sandbox came from
            # (an image's WORKDIR that did not exist is made root's).
            sandbox.put_archive("/", _agent_workspace_tar())
        except SandboxError:
            sandbox.remove()
            raise
        return sandbox

    def exec(self, script: str | None = None, *, argv: Sequence[str] | None = None,
             phase: str, name: str, user: str = "root",
             workdir: str = WORKSPACE, env: Mapping[str, str] | None = None,
             timeout: float | None = None) -> ExecResult:
        """Run a bash `script` (one argv element; values go in `env`) or an `argv` as is.

        Every call leaves a record in commands.jsonl, also when it cannot start, is
        interrupted or its exit code is lost (then SandboxError/ExitCodeLost or the interrupt
        is raised after the record is written)."""
        if argv is None:
            assert script is not None  # one of the two is given
            argv = ["bash", "-c", script]
        else:
            argv = list(argv)
        started = time.time()
        assert self.commands is not None  # given at creation, or when a prefetched one is used
        rec, out_path, err_path = self.commands.start(
            phase=phase, name=name, argv=argv, user=user, workdir=workdir,
            started_at_epoch=started)
        counts = [0, 0]
        sock: _Closable | None = None
        try:
            try:
                # The reader thread writes these; a path that cannot be written fails the
                # exec here, before anything runs, not in a thread nobody joins.
                for path in (out_path, err_path):
                    open(path, "wb").close()
            except OSError as e:
                rec.extra["error"] = f"cannot record its output: {e.strerror or e}"
                raise SandboxError(f"cannot record the output of {phase} {name!r}: "
                                   f"{e.strerror or e}") from None
            try:
                exec_id = self._api.exec_create(
                    self.id, argv, user=user, workdir=workdir, environment=dict(env or {}),
                    stdout=True, stderr=True)["Id"]
                # A SocketIO, or a socket itself (SSH, npipe): all close, which the stub's
                # union (a bare read stream among them) does not say.
                sock = cast(_Closable, self._api.exec_start(exec_id, socket=True))
            except (DockerException, OSError) as e:  # requests' errors are OSErrors
                rec.extra["error"] = f"could not start: {e}"
                raise SandboxError(f"command {rec.id} ({phase} {name}) could not start: "
                                   f"{e}") from None
            raw = _attached(sock)
            raw.settimeout(None)  # a silent agent is not an error; our deadline is below
            reader = threading.Thread(
                target=_pump, args=(raw, out_path, err_path, counts, self.commands.redactor,
                                    self.output_limit), daemon=True)
            try:
                reader.start()
            except RuntimeError as e:  # no thread could be started: nothing reads the output
                rec.extra["error"] = f"cannot read its output: {e}"
                raise SandboxError(f"cannot read the output of {phase} {name!r}: {e}") from None
            reader.join(timeout)
            timed_out = reader.is_alive()
            if timed_out:
                self._signal_user_processes(user, "TERM")
                reader.join(_TERM_GRACE_SECONDS)
                if reader.is_alive():
                    self._signal_user_processes(user, "KILL")
                    reader.join(_KILL_GRACE_SECONDS)
            _close(sock)
            # The stream can end before the engine has recorded the exit code (loaded
            # engines): ask until it has. A killed command's code matters less.
            exit_code = _await_exit_code(
                lambda: self._api.exec_inspect(exec_id),
                timeout=_TIMED_OUT_EXIT_WAIT if timed_out else _EXIT_CODE_WAIT)
            rec.exit_code = exit_code
            rec.timed_out = timed_out
            if exit_code is None and not timed_out:
                rec.extra["error"] = "exit code lost"
                raise ExitCodeLost(rec.id, f"({phase} {name}) the engine did not report its "
                                           f"exit code within {_EXIT_CODE_WAIT:.0f} s")
        except BaseException as e:
            if "error" not in rec.extra:
                if isinstance(e, KeyboardInterrupt):
                    rec.extra["interrupted"] = True  # Ctrl-C or SIGTERM cut it short
                else:
                    rec.extra["error"] = f"{type(e).__name__}: {e}"
            _close(sock)
            if isinstance(e, (DockerException, OSError)) and not isinstance(e, SandboxError):
                raise SandboxError(f"command {rec.id} ({phase} {name}): {e}") from None
            raise
        finally:
            rec.duration_seconds = round(time.time() - started, 3)
            rec.stdout_bytes, rec.stderr_bytes = counts
            for stream, count in (("stdout", counts[0]), ("stderr", counts[1])):
                if count > self.output_limit:
                    rec.extra[f"{stream}_cut_bytes"] = count - self.output_limit
            self.commands.finish(rec)
        return ExecResult(rec.id, exit_code, timed_out, rec.duration_seconds, out_path, err_path)

    def start(self, argv: Sequence[str], *, phase: str, name: str, user: str = "root",
              workdir: str = WORKSPACE,
              env: Mapping[str, str] | None = None) -> DockerProcess:
        """Start `argv` with stdin attached; see SandboxProcess. Recorded like exec."""
        argv = list(argv)
        started = time.time()
        assert self.commands is not None
        rec, out_path, err_path = self.commands.start(
            phase=phase, name=name, argv=argv, user=user, workdir=workdir,
            started_at_epoch=started)
        try:
            exec_id = self._api.exec_create(
                self.id, argv, user=user, workdir=workdir, environment=dict(env or {}),
                stdin=True, stdout=True, stderr=True)["Id"]
            sock = cast(_Closable, self._api.exec_start(exec_id, socket=True))
        except (DockerException, OSError) as e:
            rec.extra["error"] = f"could not start: {e}"
            rec.duration_seconds = round(time.time() - started, 3)
            self.commands.finish(rec)
            raise SandboxError(f"command {rec.id} ({phase} {name}) could not start: "
                               f"{e}") from None
        return DockerProcess(self, rec, out_path, err_path, exec_id, sock, user, started)

    def _signal_user_processes(self, user: str, signal: str) -> None:
        # Docker cannot signal an exec; signalling every process of that user ends it.
        try:
            kid = self._api.exec_create(self.id, ["kill", f"-{signal}", "-1"], user=user)["Id"]
            self._api.exec_start(kid)
        except DockerException:
            pass

    def put_archive(self, path: str, data: bytes | IO[bytes]) -> None:
        try:
            ok = self._container.put_archive(path, data)
        except DockerException as e:
            raise SandboxError(f"copy into {path} failed: {e}") from None
        if not ok:
            raise SandboxError(f"copy into {path} failed")

    def get_archive(self, path: str) -> Iterator[bytes]:
        try:
            stream, _ = self._container.get_archive(path, chunk_size=1 << 20)
        except DockerException as e:
            raise SandboxError(f"copy out of {path} failed: {e}") from None
        return _engine_errors_as_sandbox_errors(stream, f"copy out of {path}")

    def put_file(self, path: str, content: bytes, mode: int = 0o644, uid: int = 0) -> None:
        import tarfile

        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo(os.path.basename(path))
            info.size, info.mode, info.uid, info.gid = len(content), mode, uid, uid
            info.mtime = int(time.time())
            tar.addfile(info, io.BytesIO(content))
        self.put_archive(os.path.dirname(path) or "/", buf.getvalue())

    def remove(self, wait: bool = True) -> None:
        """Remove the container; with wait=False in the background (see drain_removals)."""
        if wait:
            _remove_quietly(self._container)
            return
        future = _remover.submit(_remove_quietly, self._container)
        _pending_removals.add(future)
        future.add_done_callback(_pending_removals.discard)


def _agent_workspace_tar() -> bytes:
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(WORKSPACE.lstrip("/"))
        info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, int(time.time())
        info.uid = info.gid = AGENT_UID
        info.uname = info.gname = AGENT_USER
        tar.addfile(info)
    return buf.getvalue()


class DockerProcess:
    """A process in a container with its stdio attached (Sandbox.start): a reader thread
    demultiplexes the engine's framed stream, stdout into lines for `read_line` and into
    the command's stdout file, stderr into its stderr file (both files redacted)."""

    def __init__(self, sandbox: DockerSandbox, rec: Any, out_path: Path, err_path: Path,
                 exec_id: str, sock: _Closable, user: str, started: float) -> None:
        import queue

        self.command_id: str = rec.id
        self.stdout_path = out_path
        self.stderr_path = err_path
        self._sandbox = sandbox
        self._rec = rec
        self._exec_id = exec_id
        self._sock = sock
        self._raw = _attached(sock)
        self._raw.settimeout(None)
        self._user = user
        self._started = started
        self._lines: queue.Queue[bytes | None] = queue.Queue()
        self._counts = [0, 0]
        self._done = False
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._pump, daemon=True,
                                        name=f"axp-proc-{rec.id}")
        self._reader.start()

    def _pump(self) -> None:
        assert self._sandbox.commands is not None
        redactor = self._sandbox.commands.redactor
        limit = self._sandbox.output_limit
        pending = b""
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            sinks = {1: (out, Redactor(redactor.values_text), 0),
                     2: (err, Redactor(redactor.values_text), 1)}
            try:
                while True:
                    header = _recv_exact(self._raw, 8)
                    if header is None:
                        break
                    payload = _recv_exact(self._raw, struct.unpack(">I", header[4:])[0])
                    if payload is None:
                        break
                    sink, red, index = sinks.get(header[0], sinks[1])
                    if index == 0:
                        pending += payload
                        *lines, pending = pending.split(b"\n")
                        for line in lines:
                            self._lines.put(line + b"\n")
                    room = limit - self._counts[index]
                    self._counts[index] += len(payload)
                    if room > 0:
                        sink.write(red.feed(payload[:room]))
                        sink.flush()
            finally:
                if pending:
                    self._lines.put(pending)
                self._lines.put(None)
                for sink, red, index in sinks.values():
                    sink.write(red.flush(cut=self._counts[index] > limit))

    def write(self, data: bytes) -> None:
        try:
            self._raw.sendall(data)
        except OSError as e:
            raise SandboxError(f"command {self.command_id}: stdin closed: {e}") from None

    def read_line(self, timeout: float | None = None) -> bytes | None:
        import queue

        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError from None
        if line is None:
            self._lines.put(None)  # every later read sees the end too
        return line

    def close_stdin(self) -> None:
        try:
            self._raw.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def kill(self, timed_out: bool = True) -> None:
        if not self._reader.is_alive():
            return
        self._rec.timed_out = timed_out
        # With stdin still open the engine keeps the stream open after the process ends.
        self.close_stdin()
        self._sandbox._signal_user_processes(self._user, "TERM")
        self._reader.join(_TERM_GRACE_SECONDS)
        if self._reader.is_alive():
            self._sandbox._signal_user_processes(self._user, "KILL")
            self._reader.join(_KILL_GRACE_SECONDS)
        if self._reader.is_alive():
            try:  # wakes the reader's recv, which a plain close would not
                self._raw.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._reader.join(_KILL_GRACE_SECONDS)
        _close(self._sock)

    def wait(self, timeout: float | None = None) -> int | None:
        self._reader.join(timeout)
        if self._reader.is_alive():
            return None
        with self._lock:
            if self._done:
                return cast(int | None, self._rec.exit_code)
            self._done = True
            _close(self._sock)
            api = self._sandbox._api
            code = _await_exit_code(lambda: api.exec_inspect(self._exec_id),
                                    timeout=_TIMED_OUT_EXIT_WAIT)
            rec = self._rec
            rec.exit_code = code
            rec.duration_seconds = round(time.time() - self._started, 3)
            rec.stdout_bytes, rec.stderr_bytes = self._counts
            assert self._sandbox.commands is not None
            self._sandbox.commands.finish(rec)
            return code


def _make(cli: docker.DockerClient, created: Callable[[], None] | None, image: str,
          **kwargs: Any) -> Container:
    """containers.run, or (for a pool's placement) create, report `created`, then start."""
    if created is None:
        return cast("Container", cli.containers.run(image, **kwargs))
    kwargs.pop("detach", None)
    container = cli.containers.create(image, **kwargs)
    created()
    try:
        container.start()
        container.reload()
    except BaseException:
        _remove_quietly(container)
        raise
    return container


def _engine_errors_as_sandbox_errors(chunks: Iterator[bytes], what: str) -> Iterator[bytes]:
    try:
        yield from chunks
    except (DockerException, OSError) as e:  # the stream broke: requests' errors too
        raise SandboxError(f"{what} failed: {e}") from None


def _close(sock: _Closable | None) -> None:
    if sock is None:
        return
    try:
        sock.close()
    except OSError:
        pass


def _await_exit_code(inspect: Callable[[], Mapping[str, Any]], *, timeout: float,
                     interval: float = 0.05, sleep: Callable[[float], None] = time.sleep,
                     clock: Callable[[], float] = time.monotonic) -> int | None:
    """The exit code from `inspect` (an exec inspect), asked again until the engine says the
    command is no longer running and has a code, for at most `timeout` seconds; None if
    it never does. An engine error counts as not yet."""
    deadline = clock() + timeout
    delay = interval
    while True:
        try:
            state = inspect()
        except (DockerException, OSError):
            state = {}
        code = state.get("ExitCode")
        if state and not state.get("Running") and code is not None:
            return int(code)
        if clock() >= deadline:
            return None
        sleep(delay)
        delay = min(delay * 2, 1.0)


def _remove_quietly(container: Container) -> None:
    try:
        container.remove(force=True)
    except NotFound:
        pass
    except DockerException:
        return  # the engine is in trouble: the label sweep at session end tries again
    _live.discard(_id(container))


def any_left() -> bool:
    """Whether a container this process created may still exist."""
    return bool(_live)


def _adopt(container: Container, spec: str) -> Container | None:
    """`container` if it was made to `spec`; otherwise it is removed (so its name is free)
    and None returned."""
    if ((container.attrs.get("Config") or {}).get("Labels") or {}).get(LABEL_SPEC) == spec:
        return container
    _remove_quietly(container)
    return None


def _wait_running(name: str, timeout: float = 30.0, missing_ok: bool = False,
                  cli: docker.DockerClient | None = None) -> Container:
    """The container called `name` once it runs (its creator may still be starting it).

    With missing_ok, a name no container has yet is an answer (SandboxError) at once: only
    a container that exists and is starting is worth waiting for."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            container: Container | None = (cli or client()).containers.get(name)
        except NotFound:
            if missing_ok:
                raise SandboxError(f"no sandbox named {name}") from None
            container = None  # a 409 said the name is taken: it is being created
        except DockerException as e:
            raise SandboxError(f"cannot inspect sandbox {name}: {e}") from None
        if container is not None and container.status == "running":
            _live.add(_id(container))
            return container
        if container is not None and container.status not in ("created", "restarting"):
            raise SandboxError(f"sandbox {name} is {container.status}")
        if time.monotonic() > deadline:
            raise SandboxError(f"sandbox {name} did not start within {timeout:.0f} s")
        time.sleep(0.05)


def drain_removals(timeout: float = 60.0) -> None:
    """Wait for background removals: every container is gone when the session ends."""
    for future in list(_pending_removals):
        try:
            future.result(timeout=timeout)
        except Exception:
            pass


def _pump(raw: socket.socket, out_path: Path, err_path: Path, counts: list[int],
          redactor: Redactor, limit: int) -> None:
    """Demultiplex Docker's framed stream (8-byte headers) straight into the two files,
    secret values replaced on the way (each stream redacted on its own, across chunks).
    Past `limit` bytes a stream is still read (the command must not block) but dropped; a
    value the cut runs through loses its beginning too (Redactor.flush(cut=True))."""
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        streams = {1: (out, Redactor(redactor.values_text), 0),
                   2: (err, Redactor(redactor.values_text), 1)}
        try:
            while True:
                header = _recv_exact(raw, 8)
                if header is None:
                    return
                stream, size = header[0], struct.unpack(">I", header[4:])[0]
                payload = _recv_exact(raw, size)
                if payload is None:
                    return
                sink, red, index = streams.get(stream, streams[1])
                room = limit - counts[index]
                counts[index] += len(payload)
                if room > 0:
                    sink.write(red.feed(payload[:room]))
                    sink.flush()
        finally:
            for sink, red, index in streams.values():
                sink.write(red.flush(cut=counts[index] > limit))
                if counts[index] > limit:
                    sink.write(f"\n[axp: output cut at {limit} bytes; "
                               f"{counts[index] - limit} more were dropped]\n".encode())


class _Prefixed:
    """A socket whose first bytes were already read by someone else: `recv` returns those
    first, everything else goes to the socket."""

    def __init__(self, raw: socket.socket, early: bytes) -> None:
        self._raw = raw
        self._early = early

    def recv(self, n: int) -> bytes:
        if self._early:
            chunk, self._early = self._early[:n], self._early[n:]
            return chunk
        return self._raw.recv(n)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


def _attached(sock: _Closable) -> socket.socket:
    """The socket of an exec started with socket=True, for reading its framed output.

    The SDK hands over the socket under the HTTP response's buffered reader, which read the
    upgrade's headers in chunks: output that arrived with them (a quick command on a loaded
    engine, about one exec in a hundred measured here) sits in that reader's buffer, and
    reading the socket alone loses it. Those bytes are taken first."""
    raw = cast(socket.socket, getattr(sock, "_sock", sock))  # SocketIO wraps one
    response = getattr(sock, "_response", None)
    reader = getattr(getattr(getattr(response, "raw", None), "_fp", None), "fp", None)
    read1 = getattr(reader, "read1", None)
    # Only a plain socket can be asked without blocking (an ssh transport's is a pipe).
    if type(raw) is not socket.socket or read1 is None:
        return raw
    timeout = raw.gettimeout()
    raw.setblocking(False)
    try:
        early = read1(1 << 16) or b""
    except (BlockingIOError, OSError, ValueError):
        early = b""
    finally:
        raw.settimeout(timeout)
    return cast(socket.socket, _Prefixed(raw, early)) if early else raw


def _recv_exact(raw: socket.socket, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        try:
            chunk = raw.recv(n - len(buf))
        except OSError:
            return None
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def remove_containers(label_filters: Mapping[str, str],
                      cli: docker.DockerClient | None = None) -> int:
    """Remove every container carrying all these labels; the count removed."""
    flt = [f"{k}={v}" for k, v in label_filters.items()]
    removed = 0
    for c in (cli or client()).containers.list(all=True, filters={"label": flt}, sparse=True):
        try:
            c.remove(force=True)
            removed += 1
        except DockerException:
            pass
    return removed


def orphaned_containers(cli: docker.DockerClient | None = None) -> list[Container]:
    """Containers of this tool whose owner process, on this host, is gone (as listed:
    labels, names and state are in `.attrs`, no inspect per container)."""
    host = socket.gethostname()
    found: list[Container] = []
    for c in (cli or client()).containers.list(all=True, filters={"label": LABEL_OWNER_PID},
                                      sparse=True):
        labels = c.attrs.get("Labels") or {}
        if labels.get(LABEL_OWNER_HOST, host) != host:
            continue  # another machine's, on a shared engine: not ours to judge
        try:
            pid = int(labels.get(LABEL_OWNER_PID, ""))
        except ValueError:
            continue
        if not process_alive(pid):
            found.append(c)
    return found


class DockerBackend:
    """The built-in sandbox backend: containers on the local Docker engine.

    One per process (see `backend()`), so `axp local run` and the pytest session it runs in
    the same process share what was created ahead."""

    name = "docker"

    def __init__(self, cli: docker.DockerClient | None = None) -> None:
        # None: this process's client() (DOCKER_HOST); a pool gives each engine its own.
        self._own_client = cli
        self.adopt_by_name = False
        self._ahead: CreatedAhead[DockerSandbox] = CreatedAhead()

    def ensure_image(self, agent: str, resolve: Callable[[str], str]) -> str:
        return resolve(agent)

    def create(self, *, image: str, labels: Mapping[str, str], name: str | None = None,
               network_mode: str = "bridge", extra_hosts: Mapping[str, str] | None = None,
               limits: ResourceLimits = DEFAULT_LIMITS,
               commands: CommandLog | None = None) -> DockerSandbox:
        return DockerSandbox.create(image=image, labels=labels, name=name,
                                    network_mode=network_mode, extra_hosts=extra_hosts,
                                    limits=limits, commands=commands, cli=self._own_client)

    @property
    def client(self) -> docker.DockerClient:
        return self._own_client or client()

    def create_ahead(self, key: str, args: Mapping[str, Any]) -> None:
        self._ahead.start(key, lambda: self.create(**args))

    def take(self, key: str, args: Mapping[str, Any]) -> DockerSandbox | None:
        spec = spec_of(args)
        started, sandbox = self._ahead.take(key, lambda made: made.spec == spec)
        if started:
            return sandbox
        name = args.get("name")
        if not (self.adopt_by_name and name):
            return None
        try:
            container = _adopt(_wait_running(name, missing_ok=True, cli=self._own_client), spec)
        except SandboxError:
            return None
        if container is None:
            return None
        return DockerSandbox(container, None, (args.get("limits") or DEFAULT_LIMITS).output_bytes)

    def discard_ahead(self) -> None:
        self._ahead.discard()

    def finish(self) -> None:
        self.discard_ahead()
        drain_removals()
        if any_left():
            try:
                self.remove_labelled({LABEL_OWNER_PID: str(os.getpid())})
            except SandboxError:
                pass  # engine unreachable: `axp sandbox clean` and the next start reap them

    def remove_labelled(self, labels: Mapping[str, str]) -> int:
        try:
            return remove_containers(labels, self._own_client)
        except DockerException as e:
            raise SandboxError(f"cannot list sandboxes: {e}") from None

    def orphans(self) -> list[SandboxInfo]:
        try:
            found = orphaned_containers(self._own_client)
        except DockerException as e:
            raise SandboxError(f"cannot list sandboxes: {e}") from None
        return [SandboxInfo(id=_id(c), name=(c.attrs.get("Names") or ["?"])[0].lstrip("/"),
                            labels=dict(c.attrs.get("Labels") or {}),
                            state=str(c.attrs.get("State", ""))) for c in found]

    def remove_sandbox(self, sandbox_id: str) -> None:
        try:
            self.client.api.remove_container(sandbox_id, force=True)
        except NotFound:
            pass
        except DockerException as e:
            raise SandboxError(f"could not remove {sandbox_id[:12]}: {e}") from None

    def host_address(self, isolated: bool) -> str:
        if isolated:
            from .docker_network import ensure_agent_network

            return ensure_agent_network(self.client)
        try:
            config = self.client.networks.get("bridge").attrs["IPAM"]["Config"]
            return str(config[0]["Gateway"])
        except Exception:
            return "0.0.0.0"

    def isolate(self, sandbox: Any) -> None:
        from .docker_network import ensure_agent_network, isolate

        ensure_agent_network(self.client)
        isolate(self.client, sandbox.id)


_backend: DockerBackend | None = None
_backend_lock = threading.Lock()


def backend() -> DockerBackend:
    """This process's Docker backend (connecting to the engine only when first used)."""
    global _backend
    with _backend_lock:
        if _backend is None:
            _backend = DockerBackend()
        return _backend
