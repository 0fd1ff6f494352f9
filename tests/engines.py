"""Extra Docker engines on this machine, each standing in for another host (see
/work/shared/notes/docker-engines.md): own data-root, exec-root, pidfile, socket and bridge
with a subnet nobody else uses. Names carry a random tag, so runs beside other users of the
machine never meet. Used by the pool tests and benchmarks/bench_pool.py.
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
import random
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import docker

_START_LOCK = Path(tempfile.gettempdir()) / "axp-test-engines.lock"
_started: dict[int, subprocess.Popen[bytes]] = {}  # ours to wait for, so none stays a zombie


@dataclass
class ExtraEngine:
    name: str          # bridge name too (<= 15 characters)
    root: Path
    subnet: str
    gateway: str
    tcp_port: int | None = None  # also listening on tcp://127.0.0.1:PORT (no TLS: tests only)

    @property
    def tcp_url(self) -> str:
        return f"tcp://127.0.0.1:{self.tcp_port}"

    @property
    def url(self) -> str:
        return f"unix://{self.root}/sock"

    @property
    def pidfile(self) -> Path:
        return self.root / "pid"

    def pid(self) -> int | None:
        try:
            return int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None

    def client(self) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.url, timeout=60)


def _ip(*args: str, check: bool = True) -> None:
    subprocess.run(["ip", *args], check=check, capture_output=True)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _free_subnet() -> ipaddress.IPv4Network:
    """A /24 in 10.200.0.0/13 that no route of this machine covers."""
    routes = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True).stdout
    taken = []
    for line in routes.splitlines():
        first = line.split()[0]
        if "/" in first or first[0].isdigit():
            try:
                taken.append(ipaddress.ip_network(first, strict=False))
            except ValueError:
                pass
    for _ in range(200):
        net = ipaddress.ip_network(f"10.{random.randint(200, 207)}.{random.randint(0, 255)}.0/24")
        if not any(net.overlaps(t) for t in taken):
            return net
    raise RuntimeError("no free subnet for a test engine")


def start_engine(prefix: str = "axp", tcp: bool = False) -> ExtraEngine:
    """A new engine, running and answering. Engines start one after another (host-wide
    lock): dockerds starting together race on the shared iptables chains."""
    tag = uuid.uuid4().hex[:8]
    name = f"{prefix[:5]}{tag}"[:15]
    root = Path(tempfile.mkdtemp(prefix=f"axpe-{tag}-", dir="/tmp"))
    with open(_START_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        net = _free_subnet()
        gateway = str(next(net.hosts()))
        _ip("link", "add", name, "type", "bridge")
        _ip("addr", "add", f"{gateway}/{net.prefixlen}", "dev", name)
        _ip("link", "set", name, "up")
        engine = ExtraEngine(name, root, str(net), gateway, _free_port() if tcp else None)
        _run_dockerd(engine)
    return engine


def restart_engine(engine: ExtraEngine) -> None:
    """dockerd again on the same state (after kill_engine): it ends what the dead one left
    running, and its containers can be listed and removed."""
    with open(_START_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        engine.pidfile.unlink(missing_ok=True)
        _run_dockerd(engine)


def _run_dockerd(engine: ExtraEngine) -> None:
    root, name = engine.root, engine.name
    log = open(root / "dockerd.log", "ab")
    proc = subprocess.Popen(
        ["dockerd", "--data-root", str(root / "data"), "--exec-root", str(root / "exec"),
         "--pidfile", str(engine.pidfile), "-H", engine.url, "--bridge", name,
         *(["-H", engine.tcp_url] if engine.tcp_port else [])],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True)
    _started[proc.pid] = proc
    log.close()
    deadline = time.monotonic() + 60
    while True:
        try:
            cli = engine.client()
            cli.ping()
            cli.close()
            break
        except Exception:
            if time.monotonic() > deadline:
                tail = (root / "dockerd.log").read_text(errors="replace")[-2000:]
                stop_engine(engine)
                raise RuntimeError(f"test engine {name} did not start:\n{tail}") from None
            time.sleep(0.3)


def _end(pid: int) -> None:
    """SIGTERM, then SIGKILL after 15 s; a dockerd started here is waited for."""
    proc = _started.pop(pid, None)
    try:
        os.kill(pid, signal.SIGTERM)
        if proc is not None:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            return
        for _ in range(150):
            os.kill(pid, 0)
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def kill_engine(engine: ExtraEngine) -> None:
    """The engine dies at once (SIGKILL), as a host that is lost."""
    pid = engine.pid()
    if pid:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc = _started.pop(pid, None)
        if proc is not None:
            proc.wait()


def _kill_under(root: Path) -> None:
    """Every process whose command line names this engine's folder (its containerd and
    shims, found by path, never by name)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if str(root) in cmdline:
            try:
                os.kill(int(proc.name), signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def stop_engine(engine: ExtraEngine) -> None:
    """Containers removed, the engine stopped by its pidfile, its bridge and folder gone."""
    pid = engine.pid()
    if pid:
        try:
            cli = engine.client()
            for c in cli.containers.list(all=True):
                c.remove(force=True)
            cli.close()
        except Exception:
            pass
        _end(pid)
    _kill_under(engine.root)
    _ip("link", "set", engine.name, "down", check=False)
    _ip("link", "del", engine.name, check=False)
    _unmount_under(engine.root)
    shutil.rmtree(engine.root, ignore_errors=True)


def _unmount_under(root: Path) -> None:
    """Whatever the engine left mounted in its folder (network namespaces, overlays),
    deepest first, so the folder can go."""
    mounts = Path("/proc/mounts").read_text().splitlines()
    points = [line.split()[1] for line in mounts if len(line.split()) > 1]
    for point in sorted((p for p in points if p.startswith(f"{root}/")), key=len,
                        reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)


@dataclass
class LocalSsh:
    """An sshd on 127.0.0.1 for this test session only: its own host key, client key and
    authorized_keys, and an `ssh` wrapper (first on PATH) that uses that key."""

    root: Path
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def bin_dir(self) -> Path:
        return self.root / "bin"

    def url(self, user: str = "root") -> str:
        return f"ssh://{user}@127.0.0.1:{self.port}"

    def connections(self) -> int:
        """How many `ssh` processes were started for the Docker API so far."""
        try:
            return (self.root / "calls").read_text().count("dial-stdio")
        except FileNotFoundError:
            return 0


def start_sshd(docker_host: str | None = None) -> LocalSsh:
    """With `docker_host`, the engine behind it is that one (DOCKER_HOST of its sessions,
    which `docker system dial-stdio` follows), not the machine's."""
    import socket

    root = Path(tempfile.mkdtemp(prefix="axpssh-", dir="/tmp"))
    for key in ("host", "client"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(root / key)],
                       check=True)
    (root / "authorized_keys").write_text((root / "client.pub").read_text())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation folder
    proc = subprocess.Popen(
        ["/usr/sbin/sshd", "-D", "-f", "/dev/null", "-h", str(root / "host"), "-p", str(port),
         "-o", "ListenAddress=127.0.0.1", "-o", f"PidFile={root / 'pid'}",
         "-o", f"AuthorizedKeysFile={root / 'authorized_keys'}", "-o", "StrictModes=no",
         "-o", "PasswordAuthentication=no", "-o", "PermitRootLogin=prohibit-password",
         "-o", "UsePAM=no", "-o", "GatewayPorts=clientspecified",
         *(["-o", f"SetEnv=DOCKER_HOST={docker_host}"] if docker_host else [])],
        stdout=subprocess.DEVNULL, stderr=open(root / "sshd.log", "wb"), start_new_session=True)
    bin_dir = root / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "ssh"
    wrapper.write_text(
        "#!/bin/sh\n"
        f"echo \"$*\" >> {root / 'calls'}\n"
        f"exec /usr/bin/ssh -i {root / 'client'} -o IdentitiesOnly=yes "
        "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR "
        '"$@"\n')
    wrapper.chmod(0o755)
    for _ in range(100):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    return LocalSsh(root, port, proc)


def stop_sshd(ssh: LocalSsh) -> None:
    ssh.proc.terminate()
    try:
        ssh.proc.wait(10)
    except subprocess.TimeoutExpired:
        ssh.proc.kill()
        ssh.proc.wait()
    shutil.rmtree(ssh.root, ignore_errors=True)
