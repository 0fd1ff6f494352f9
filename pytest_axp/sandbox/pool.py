"""A pool of Docker engines behind one SandboxBackend: each sandbox goes to the engine with
the most free room, images are copied to every engine, an engine that stops answering is
left out for the rest of the run.

The ledger of what each engine holds is the engines' own containers: every pool sandbox
carries its declared limits as labels, so xdist workers, concurrent `axp` processes and
crashed ones (whose containers remain until reaped) are all counted. A host-wide file lock
is held from listing to the engine having made the container, so two placements never see
the same room.
"""

from __future__ import annotations

import atexit
import fcntl
import os
import re
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from .ahead import CreatedAhead
from .base import (
    DEFAULT_LIMITS,
    LABEL_OWNER_PID,
    ExecResult,
    ResourceLimits,
    SandboxError,
    SandboxInfo,
    SandboxProcess,
    spec_of,
)

if TYPE_CHECKING:
    import docker

    from ..record.commands import CommandLog
    from .docker import DockerBackend, DockerSandbox

HOSTS_ENV = "AXP_DOCKER_HOSTS"        # comma separated engine URLs: the pool
GATEWAY_HOST_ENV = "AXP_GATEWAY_HOST"  # the address tcp:// engines reach this host at
ADMIT_ENV = "AXP_ADMIT"                # "wait": a sandbox waits for room (--jobs auto)
LABEL_CPUS = "axp.limit.cpus"
LABEL_MEMORY = "axp.limit.memory"      # bytes
SCHEMES = ("unix", "tcp", "ssh", "http", "https")
_ACTIVE_STATES = ("created", "running", "restarting", "paused")
_WAIT_STEP = 0.25


class EngineLost(SandboxError):
    """The engine a sandbox ran on stopped answering: its variant cannot be judged."""


# -- pure parts -----------------------------------------------------------------------------

def parse_hosts(values: Sequence[str]) -> list[str]:
    """Engine URLs from repeated options and comma-separated lists, duplicates dropped, in
    order; ValueError names the bad one."""
    found: list[str] = []
    for value in values:
        for url in (part.strip() for part in value.split(",")):
            if not url:
                continue
            scheme = urlsplit(url).scheme
            if scheme not in SCHEMES:
                raise ValueError(f"docker host {url!r}: expected unix://PATH, tcp://HOST:PORT "
                                 "or ssh://USER@HOST")
            if url not in found:
                found.append(url)
    return found


def display_url(url: str) -> str:
    """The URL as recorded and shown: a password in it is left out (the user is kept)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}@{host}" if parts.username else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def memory_bytes(text: str) -> int:
    """Docker's memory syntax (512m, 4g, 1073741824) in bytes."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([bkmgt]?)b?\s*", text.lower())
    if not m:
        raise ValueError(f"memory limit {text!r}: use docker's syntax, e.g. 512m or 4g")
    return int(float(m.group(1)) * _UNITS[m.group(2)])


# --jobs auto admits no further sandbox to an engine (that runs some already) while its host
# has more runnable processes than this per CPU.
MAX_LOAD_PER_CPU = 2.0


@dataclass(frozen=True)
class Room:
    """An engine's capacity, and what the sandboxes already there declared."""

    cpus: float
    memory: int
    used_cpus: float = 0.0
    used_memory: int = 0
    sandboxes: int = 0
    # Runnable processes per CPU over the last minute, where the engine's host is this one
    # (None: not known, e.g. a remote engine).
    load: float | None = None

    def fits(self, cpus: float, memory: int) -> bool:
        return (self.used_cpus + cpus <= self.cpus + 1e-9
                and self.used_memory + memory <= self.memory)

    def busy(self) -> bool:
        """Too loaded to admit one more while it already runs sandboxes of ours (start-ups
        are CPU spikes: declared limits alone would let them pile up)."""
        return self.sandboxes > 0 and self.load is not None and self.load > MAX_LOAD_PER_CPU

    def free_share(self) -> float:
        """The scarcer of the two resources, as a share of the engine left free."""
        return min(1 - self.used_cpus / max(self.cpus, 1e-9),
                   1 - self.used_memory / max(self.memory, 1))

    def slots(self, cpus: float, memory: int) -> int:
        """How many such sandboxes the empty engine holds (at least one)."""
        by_cpu = int(self.cpus / cpus + 1e-9) if cpus > 0 else 1 << 16
        by_mem = self.memory // memory if memory > 0 else 1 << 16
        return max(1, min(by_cpu, by_mem))


def choose(rooms: Sequence[Room], cpus: float, memory: int, wait: bool) -> int | None:
    """Index of the engine for a sandbox of these limits: the one with the most free room
    among those it fits (with `wait`, also among those whose load allows one more). None
    means wait (only with `wait`): nothing fits now, and every engine already holds
    something that will go. Without `wait` an over-full pool still
    places (on the roomiest engine): a fixed --jobs decides concurrency then."""
    if not rooms:
        return None
    order = sorted(range(len(rooms)), key=lambda i: (-rooms[i].free_share(), i))
    for i in order:
        if rooms[i].fits(cpus, memory) and not (wait and rooms[i].busy()):
            return i
    if not wait:
        return order[0]
    # A sandbox larger than an empty engine would wait forever: it goes to an empty one.
    empty = [i for i in order if rooms[i].sandboxes == 0]
    return empty[0] if empty else None


def pool_slots(rooms: Sequence[Room], limits: ResourceLimits) -> int:
    """--jobs auto: how many sandboxes of these limits the empty pool holds at once."""
    mem = memory_bytes(limits.memory)
    return max(1, sum(r.slots(limits.cpus, mem) for r in rooms))


def used_by(containers: Sequence[Mapping[str, Any]]) -> tuple[float, int, int]:
    """Declared CPUs, memory and count of the active pool sandboxes in a container list (the
    engine's JSON, as `docker ps` gives it)."""
    cpus, memory, count = 0.0, 0, 0
    for c in containers:
        if str(c.get("State", "")) not in _ACTIVE_STATES:
            continue
        labels = c.get("Labels") or {}
        try:
            cpus += float(labels.get(LABEL_CPUS, 0))
            memory += int(labels.get(LABEL_MEMORY, 0))
        except ValueError:
            continue
        count += 1
    return cpus, memory, count


# -- engines -------------------------------------------------------------------------------

class Engine:
    """One Docker engine of the pool: its own client and DockerBackend."""

    def __init__(self, url: str, gateway_host: str | None = None) -> None:
        self.url = url
        self.display = display_url(url)
        # The address sandboxes here reach the gateway at, when the engine's bridge is not
        # on this host (tcp://); None: the engine's own bridge gateway (host-gateway).
        self.gateway_host = gateway_host if urlsplit(url).scheme != "unix" else None
        self.lost: str | None = None
        self._client: docker.DockerClient | None = None
        self._backend: DockerBackend | None = None
        self._capacity: tuple[float, int] | None = None
        self._lock = threading.Lock()

    @property
    def client(self) -> docker.DockerClient:
        with self._lock:
            if self._client is None:
                self._client = _connect(self.url)
            return self._client

    @property
    def backend(self) -> DockerBackend:
        from .docker import DockerBackend

        cli = self.client
        with self._lock:
            if self._backend is None:
                self._backend = DockerBackend(cli)
            return self._backend

    def alive(self) -> bool:
        """Whether the engine answers a ping within a few seconds."""
        import docker

        try:
            probe = docker.APIClient(timeout=5, **_client_args(self.url))
            _reuse_ssh(probe, self.url)
            try:
                return bool(probe.ping())
            finally:
                probe.close()
        except Exception:
            return False

    def mark_lost(self, why: str) -> None:
        if self.lost is None:
            self.lost = why

    def room(self) -> Room:
        return self.listing()[0]

    def listing(self) -> tuple[Room, set[str]]:
        """The engine's room, and the names of the pool sandboxes on it."""
        from docker.errors import DockerException

        try:
            if self._capacity is None:
                info = self.client.info()
                self._capacity = (float(info.get("NCPU") or 1), int(info.get("MemTotal") or 0))
            listed = self.client.api.containers(all=True, filters={"label": LABEL_OWNER_PID})
        except (DockerException, OSError) as e:
            raise SandboxError(f"engine {self.display}: {e}") from None
        cpus, memory, count = used_by(listed)
        names = {n.lstrip("/") for c in listed for n in c.get("Names") or []}
        return Room(self._capacity[0], self._capacity[1], cpus, memory, count,
                    self._load()), names

    def _load(self) -> float | None:
        # An engine on a unix socket runs on this host: the host's load is its load.
        if urlsplit(self.url).scheme != "unix":
            return None
        try:
            return os.getloadavg()[0] / (os.cpu_count() or 1)
        except OSError:
            return None

    @property
    def forwarded(self) -> bool:
        """Whether its sandboxes reach the gateway through a remote forward over SSH (an
        ssh:// engine with no --gateway-host): the bridge address is the remote host's."""
        return urlsplit(self.url).scheme == "ssh" and not self.gateway_host

    def host_address(self, isolated: bool) -> str:
        if self.gateway_host and not isolated:
            return self.gateway_host
        return self.backend.host_address(isolated)

    def has_image(self, tag: str) -> bool:
        from docker.errors import DockerException, ImageNotFound

        try:
            self.client.images.get(tag)
            return True
        except ImageNotFound:
            return False
        except (DockerException, OSError) as e:
            raise SandboxError(f"engine {self.display}: cannot inspect image {tag}: {e}") \
                from None


def _client_args(url: str) -> dict[str, Any]:
    """How the SDK reaches the engine at `url`: ssh:// through the `ssh` command, tcp://
    with TLS as the docker CLI takes it (DOCKER_CERT_PATH and DOCKER_TLS_VERIFY)."""
    args: dict[str, Any] = {"base_url": url, "use_ssh_client": url.startswith("ssh://")}
    if urlsplit(url).scheme == "tcp" and os.environ.get("DOCKER_CERT_PATH"):
        from docker.utils import kwargs_from_env

        tls = kwargs_from_env().get("tls")
        if tls:
            args["tls"] = tls
    return args


def _reuse_ssh(api: docker.APIClient, url: str) -> None:
    """An ssh:// client keeps and reuses its connections (see ssh_transport)."""
    if url.startswith("ssh://"):  # the SDK built the client, so paramiko is there
        from .ssh_transport import fix_ssh_transport

        fix_ssh_transport(api)


def _connect(url: str) -> docker.DockerClient:
    import docker
    from docker.errors import DockerException

    try:
        cli = docker.DockerClient(timeout=300, **_client_args(url))
        _reuse_ssh(cli.api, url)
        return cli
    except DockerException as e:
        raise SandboxError(f"cannot reach the Docker engine at {display_url(url)}: "
                           f"{' '.join(str(e).split())}") from None


class HostLock:
    """A host-wide lock (flock): placements on the pool, from any process, one at a time.
    Every acquire opens the file anew, so threads of one process exclude each other too."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: IO[str] | None = None

    def acquire(self) -> None:
        fd = open(self.path, "a")
        fcntl.flock(fd, fcntl.LOCK_EX)
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            fd.close()


def _lock_path(name: str) -> Path:
    return Path(tempfile.gettempdir()) / f"axp-{name}-{os.getuid()}.lock"


# -- sandboxes -------------------------------------------------------------------------------

class PoolSandbox:
    """A DockerSandbox on one engine of the pool; an engine error on an engine that no
    longer answers becomes EngineLost ("engine <url> lost")."""

    def __init__(self, inner: DockerSandbox, engine: Engine) -> None:
        self._inner = inner
        self.engine_ref = engine
        self.engine = engine.display   # recorded in run-summary.json and the harness span
        self.id = inner.id
        self.spec = inner.spec

    @property
    def commands(self) -> CommandLog | None:
        return self._inner.commands

    @commands.setter
    def commands(self, value: CommandLog | None) -> None:
        self._inner.commands = value

    def host_address(self, isolated: bool) -> str:
        return self.engine_ref.host_address(isolated)

    def _lost(self, e: SandboxError) -> SandboxError:
        if isinstance(e, EngineLost):
            return e
        if self.engine_ref.lost is None and self.engine_ref.alive():
            return e
        self.engine_ref.mark_lost(str(e))
        return EngineLost(f"engine {self.engine} lost: {e}")

    def exec(self, script: str | None = None, *, argv: Sequence[str] | None = None,
             phase: str, name: str, user: str = "root", workdir: str = "/workspace",
             env: Mapping[str, str] | None = None, timeout: float | None = None) -> ExecResult:
        try:
            return self._inner.exec(script, argv=argv, phase=phase, name=name, user=user,
                                    workdir=workdir, env=env, timeout=timeout)
        except SandboxError as e:
            raise self._lost(e) from None

    def start(self, argv: Sequence[str], *, phase: str, name: str, user: str = "root",
              workdir: str = "/workspace",
              env: Mapping[str, str] | None = None) -> SandboxProcess:
        try:
            return self._inner.start(argv, phase=phase, name=name, user=user, workdir=workdir,
                                     env=env)
        except SandboxError as e:
            raise self._lost(e) from None

    def put_archive(self, path: str, data: bytes | IO[bytes]) -> None:
        try:
            self._inner.put_archive(path, data)
        except SandboxError as e:
            raise self._lost(e) from None

    def get_archive(self, path: str) -> Iterator[bytes]:
        try:
            stream = self._inner.get_archive(path)
        except SandboxError as e:
            raise self._lost(e) from None
        return self._guarded(stream)

    def _guarded(self, stream: Iterator[bytes]) -> Iterator[bytes]:
        try:
            yield from stream
        except SandboxError as e:
            raise self._lost(e) from None

    def put_file(self, path: str, content: bytes, mode: int = 0o644, uid: int = 0) -> None:
        try:
            self._inner.put_file(path, content, mode, uid)
        except SandboxError as e:
            raise self._lost(e) from None

    def remove(self, wait: bool = True) -> None:
        self._inner.remove(wait)


# -- the backend -----------------------------------------------------------------------------

class PoolBackend:
    """SandboxBackend over several Docker engines (see the module docstring)."""

    name = "docker"

    def __init__(self, urls: Sequence[str], gateway_host: str | None = None,
                 admit_wait: bool = False) -> None:
        if not urls:
            raise ValueError("a pool needs at least one engine")
        self.engines = [Engine(url, gateway_host) for url in urls]
        self.admit_wait = admit_wait
        self.adopt_by_name = False
        self._ahead: CreatedAhead[PoolSandbox] = CreatedAhead()
        self._images: set[tuple[str, str]] = set()   # (engine url, tag) known present
        self._images_lock = threading.Lock()
        self._orphan_engine: dict[str, Engine] = {}
        self._forwards: dict[tuple[str, str, int], subprocess.Popen[bytes]] = {}
        atexit.register(self.close_forwards)

    # -- engines

    def live_engines(self) -> list[Engine]:
        live = [e for e in self.engines if e.lost is None]
        if not live:
            why = "; ".join(f"{e.display}: {e.lost}" for e in self.engines)
            raise SandboxError(f"no engine of the pool answers ({why})")
        return live

    def rooms(self) -> list[tuple[Engine, Room, set[str]]]:
        """Each answering engine's room now (and its sandboxes' names); one that does not
        answer is marked lost."""
        found = []
        for engine in self.live_engines():
            try:
                found.append((engine, *engine.listing()))
            except SandboxError as e:
                if engine.alive():
                    raise
                engine.mark_lost(str(e))
        if not found:
            self.live_engines()  # raises, naming every engine
        return found

    def slots(self, limits: ResourceLimits = DEFAULT_LIMITS) -> int:
        return pool_slots([room for _, room, _ in self.rooms()], limits)

    # -- images

    def ensure_image(self, agent: str, resolve: Callable[[str], str]) -> str:
        tag = resolve(agent)
        self.distribute([tag])
        return tag

    def distribute(self, tags: Sequence[str], log: Callable[[str], None] | None = None) -> None:
        """Every tag present on every engine: copied from the engine that built it
        (DOCKER_HOST's) with save/load, once per engine and tag (host-wide lock), the
        engines in parallel."""
        engines = self.live_engines()
        with ThreadPoolExecutor(max_workers=len(engines)) as pool:
            futures = [pool.submit(self._copy_images, e, tags, log) for e in engines]
            errors = []
            for engine, future in zip(engines, futures, strict=True):
                try:
                    future.result()
                except SandboxError as e:
                    if engine.alive():
                        errors.append(str(e))
                    else:
                        engine.mark_lost(str(e))  # the rest of the pool goes on
        if errors:
            raise SandboxError("; ".join(errors))
        self.live_engines()  # SandboxError if none is left

    def _copy_images(self, engine: Engine, tags: Sequence[str],
                     log: Callable[[str], None] | None) -> None:
        for tag in tags:
            with self._images_lock:
                if (engine.url, tag) in self._images:
                    continue
            if not engine.has_image(tag):
                lock = HostLock(_lock_path("image-copy"))
                lock.acquire()
                try:
                    if not engine.has_image(tag):
                        if log:
                            log(f"copying {tag} to {engine.display}")
                        _copy_image(tag, engine)
                finally:
                    lock.release()
            with self._images_lock:
                self._images.add((engine.url, tag))

    # -- sandboxes

    def _args_for(self, engine: Engine, args: Mapping[str, Any]) -> dict[str, Any]:
        """The creation arguments on this engine: the pool's labels, and the gateway's
        address where the engine is not on this host."""
        limits: ResourceLimits = args.get("limits") or DEFAULT_LIMITS
        out = dict(args)
        out["labels"] = {**args.get("labels", {}), LABEL_CPUS: repr(float(limits.cpus)),
                         LABEL_MEMORY: str(memory_bytes(limits.memory))}
        if engine.gateway_host and args.get("extra_hosts"):
            out["extra_hosts"] = {k: (engine.gateway_host if v == "host-gateway" else v)
                                  for k, v in args["extra_hosts"].items()}
        return out

    def create(self, *, image: str, labels: Mapping[str, str], name: str | None = None,
               network_mode: str = "bridge", extra_hosts: Mapping[str, str] | None = None,
               limits: ResourceLimits = DEFAULT_LIMITS,
               commands: CommandLog | None = None) -> PoolSandbox:
        from .docker import DockerSandbox

        args = {"image": image, "labels": labels, "name": name, "network_mode": network_mode,
                "extra_hosts": extra_hosts, "limits": limits}
        mem = memory_bytes(limits.memory)
        self.distribute([image])
        while True:
            # Held from listing until the engine has made the container (not started it):
            # the next placement, in any process, counts this one.
            placing = HostLock(_lock_path("placement"))
            placing.acquire()
            try:
                placed = self.rooms()
                # A sandbox of this name (created ahead by another process) is adopted
                # where it is, not made again on another engine.
                index = next((i for i, (_, _, names) in enumerate(placed)
                              if name and name in names), None)
                if index is None:
                    index = choose([room for _, room, _ in placed], limits.cpus, mem,
                                   self.admit_wait)
                if index is None:
                    placing.release()
                    time.sleep(_WAIT_STEP)
                    continue
                engine = placed[index][0]
                try:
                    inner = DockerSandbox.create(
                        **self._args_for(engine, args), commands=commands,
                        cli=engine.client, created=placing.release)
                except SandboxError as e:
                    if engine.alive():
                        raise
                    engine.mark_lost(str(e))
                    continue  # placed again, on the engines left
            finally:
                placing.release()
            return PoolSandbox(inner, engine)

    def create_ahead(self, key: str, args: Mapping[str, Any]) -> None:
        self._ahead.start(key, lambda: self.create(**args))

    def take(self, key: str, args: Mapping[str, Any]) -> PoolSandbox | None:
        from .docker import DockerSandbox, _adopt, _wait_running

        def fits(made: PoolSandbox) -> bool:
            engine = made.engine_ref
            return engine.lost is None and made.spec == spec_of(self._args_for(engine, args))

        started, sandbox = self._ahead.take(key, fits)
        if started:
            return sandbox
        name = args.get("name")
        if not (self.adopt_by_name and name):
            return None
        for engine in self.live_engines():
            try:
                container = _adopt(_wait_running(name, missing_ok=True, cli=engine.client),
                                   spec_of(self._args_for(engine, args)))
            except SandboxError:
                continue
            if container is not None:
                output = (args.get("limits") or DEFAULT_LIMITS).output_bytes
                return PoolSandbox(DockerSandbox(container, None, output), engine)
        return None

    def discard_ahead(self) -> None:
        self._ahead.discard()

    def finish(self) -> None:
        from .docker import any_left, drain_removals

        self.close_forwards()
        self.discard_ahead()
        drain_removals()
        if not any_left():
            return
        for engine in self.engines:
            if engine.lost is None and engine._client is not None:  # used by this process
                try:
                    engine.backend.remove_labelled({LABEL_OWNER_PID: str(os.getpid())})
                except SandboxError:
                    pass  # the next start reaps them

    def remove_labelled(self, labels: Mapping[str, str]) -> int:
        removed, errors = 0, []
        for engine in self.engines:
            if engine.lost is not None:
                continue
            try:
                removed += engine.backend.remove_labelled(labels)
            except SandboxError as e:
                errors.append(f"{engine.display}: {e}")
        if errors and len(errors) == len(self.engines):
            raise SandboxError("; ".join(errors))
        return removed

    def orphans(self) -> list[SandboxInfo]:
        found: list[SandboxInfo] = []
        errors = []
        for engine in self.engines:
            try:
                listed = engine.backend.orphans()
            except SandboxError as e:
                errors.append(f"{engine.display}: {e}")
                continue
            for info in listed:
                self._orphan_engine[info.id] = engine
                found.append(SandboxInfo(id=info.id, name=info.name, state=info.state,
                                         labels={**info.labels, "axp.engine": engine.display}))
        if errors and len(errors) == len(self.engines):
            raise SandboxError("; ".join(errors))
        return found

    def remove_sandbox(self, sandbox_id: str) -> None:
        engine = self._orphan_engine.get(sandbox_id)
        if engine is not None:
            engine.backend.remove_sandbox(sandbox_id)
            return
        for engine in self.engines:
            try:
                engine.backend.remove_sandbox(sandbox_id)
            except SandboxError:
                continue

    def host_address(self, isolated: bool) -> str:
        return self.host_addresses(isolated)[0]

    def host_addresses(self, isolated: bool) -> list[str]:
        """Every address the gateway must listen on: one per engine (the engines on this
        host each have their own bridge); ssh:// engines reach it through a forward to the
        first (loopback when there is no other)."""
        found: list[str] = []
        for engine in self.live_engines():
            if engine.forwarded:
                continue
            try:
                address = engine.host_address(isolated)
            except SandboxError:
                continue
            if address not in found:
                found.append(address)
        return found or ["127.0.0.1"]

    def expose_gateway(self, port: int, isolated: bool) -> None:
        """For each ssh:// engine, a remote forward through SSH: the engine's bridge
        address (on its host) at `port` leads to the gateway here. Nothing listens on this
        machine's network; the engine's sshd must allow the bind (GatewayPorts
        clientspecified). SandboxError names the engine when a forward cannot be made."""
        local = self.host_addresses(isolated)[0]
        for engine in self.live_engines():
            if not engine.forwarded:
                continue
            remote = engine.host_address(isolated)
            key = (engine.url, remote, port)
            if key in self._forwards and self._forwards[key].poll() is None:
                continue
            self._forwards[key] = _remote_forward(engine, remote, port, local)

    def close_forwards(self) -> None:
        forwards, self._forwards = self._forwards, {}
        for proc in forwards.values():
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def isolate(self, sandbox: Any) -> None:
        engine: Engine = sandbox.engine_ref
        engine.backend.isolate(sandbox)


def _remote_forward(engine: Engine, remote: str, port: int,
                    local: str) -> subprocess.Popen[bytes]:
    """`ssh -N -R remote:port:local:port` to the engine's host, running in the background;
    SandboxError if it ends within a few seconds (refused bind, no login)."""
    parts = urlsplit(engine.url)
    target = f"{parts.username}@{parts.hostname}" if parts.username else str(parts.hostname)
    argv = ["ssh", "-N", "-o", "ExitOnForwardFailure=yes", "-o", "BatchMode=yes",
            "-o", "ServerAliveInterval=15",
            *(["-p", str(parts.port)] if parts.port else []),
            "-R", f"{remote}:{port}:{local}:{port}", target]
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
    except OSError as e:
        raise SandboxError(f"engine {engine.display}: cannot start ssh for the gateway's "
                           f"forward: {e}") from None
    try:
        proc.wait(3)
    except subprocess.TimeoutExpired:
        return proc  # still up: the forward holds
    why = (proc.stderr.read() if proc.stderr else b"").decode(errors="replace").strip()
    raise SandboxError(f"engine {engine.display}: the model gateway's remote forward to "
                       f"{remote}:{port} failed ({why or f'ssh exit {proc.returncode}'}); its "
                       "sshd must allow it (GatewayPorts clientspecified), or give "
                       "--gateway-host")


def _copy_image(tag: str, engine: Engine) -> None:
    """Stream `tag` from the building engine (DOCKER_HOST's) into `engine`: docker save |
    docker load, without a file in between."""
    from docker.errors import DockerException

    from .docker import client

    try:
        stream = client().api.get_image(tag, chunk_size=1 << 20)
        api: Any = engine.client.api
        api.load_image(stream)
    except (DockerException, OSError) as e:
        raise SandboxError(f"copying image {tag} to {engine.display} failed: {e}") from None
    if not engine.has_image(tag):
        raise SandboxError(f"copying image {tag} to {engine.display} failed: not there after "
                           "the load")


_pool: PoolBackend | None = None
_pool_lock = threading.Lock()


def pool_backend() -> PoolBackend | None:
    """This process's pool, when AXP_DOCKER_HOSTS names one (made on first use); None for
    the one engine DOCKER_HOST names. SandboxError for a bad URL."""
    global _pool
    with _pool_lock:
        if _pool is None:
            try:
                hosts = hosts_from_env()
            except ValueError as e:
                raise SandboxError(str(e)) from None
            if hosts:
                _pool = PoolBackend(hosts, os.environ.get(GATEWAY_HOST_ENV) or None,
                                    admit_wait=os.environ.get(ADMIT_ENV) == "wait")
        return _pool


def hosts_from_env() -> list[str]:
    return parse_hosts([os.environ.get(HOSTS_ENV, "")])


def configure(hosts: Sequence[str], gateway_host: str | None = None) -> None:
    """Make `hosts` this process's pool (and its children's: xdist workers, pytest run
    by axp): the environment is how they all learn it. ValueError for a bad URL."""
    if hosts:
        os.environ[HOSTS_ENV] = ",".join(parse_hosts(hosts))
    if gateway_host:
        os.environ[GATEWAY_HOST_ENV] = gateway_host
