"""The Docker backend: one container per variant run, every exec logged."""

from __future__ import annotations

import io
import os
import socket
import struct
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import docker
from docker.errors import DockerException, NotFound

from ..record.commands import CommandLog
from .base import (
    LABEL_OWNER_HOST, LABEL_OWNER_PID, WORKSPACE, ExecResult, SandboxError,
)

_TERM_GRACE_SECONDS = 5.0   # time to flush telemetry and session files before SIGKILL
_KILL_GRACE_SECONDS = 10.0
_client: docker.DockerClient | None = None
_client_lock = threading.Lock()


def client() -> docker.DockerClient:
    """One client per process; it is thread-safe enough for our sequential use per item."""
    global _client
    with _client_lock:
        if _client is None:
            try:
                _client = docker.from_env(timeout=300)
                _client.ping()
            except DockerException as e:
                raise SandboxError(
                    f"cannot reach the Docker engine ({e.__class__.__name__}): start dockerd "
                    "or set DOCKER_HOST"
                ) from None
        return _client


def owner_labels() -> dict[str, str]:
    return {LABEL_OWNER_PID: str(os.getpid()), LABEL_OWNER_HOST: socket.gethostname()}


class DockerSandbox:
    def __init__(self, container, commands: CommandLog) -> None:
        self._container = container
        self._api = container.client.api
        self.commands = commands
        self.id: str = container.id

    @classmethod
    def create(cls, *, image: str, labels: Mapping[str, str], commands: CommandLog,
               network_mode: str = "bridge", extra_hosts: Mapping[str, str] | None = None,
               ) -> "DockerSandbox":
        try:
            container = client().containers.run(
                image,
                command=["sleep", "infinity"],
                detach=True,
                init=True,  # PID 1 forwards signals, so removal is instant
                labels={**owner_labels(), **labels},
                network_mode=network_mode,
                extra_hosts=dict(extra_hosts or {}),
                working_dir=WORKSPACE,
            )
        except DockerException as e:
            raise SandboxError(f"could not start a sandbox from image {image!r}: {e}") from None
        return cls(container, commands)

    def exec(self, script: str, *, phase: str, name: str, user: str = "root",
             workdir: str = WORKSPACE, env: Mapping[str, str] | None = None,
             timeout: float | None = None) -> ExecResult:
        argv = ["bash", "-c", script]
        started = time.time()
        rec, out_path, err_path = self.commands.start(
            phase=phase, name=name, argv=argv, user=user, workdir=workdir,
            started_at_epoch=started)
        exec_id = self._api.exec_create(
            self.id, argv, user=user, workdir=workdir, environment=dict(env or {}),
            stdout=True, stderr=True)["Id"]
        sock = self._api.exec_start(exec_id, socket=True)
        raw = getattr(sock, "_sock", sock)
        raw.settimeout(None)  # a silent agent is not an error; our deadline is below
        counts = [0, 0]
        reader = threading.Thread(
            target=_pump, args=(raw, out_path, err_path, counts), daemon=True)
        reader.start()
        reader.join(timeout)
        timed_out = reader.is_alive()
        if timed_out:
            self._signal_user_processes(user, "TERM")
            reader.join(_TERM_GRACE_SECONDS)
            if reader.is_alive():
                self._signal_user_processes(user, "KILL")
                reader.join(_KILL_GRACE_SECONDS)
        try:
            sock.close()
        except OSError:
            pass
        exit_code = self._api.exec_inspect(exec_id).get("ExitCode")
        rec.duration_seconds = round(time.time() - started, 3)
        rec.exit_code = exit_code
        rec.timed_out = timed_out
        rec.stdout_bytes, rec.stderr_bytes = counts
        self.commands.finish(rec)
        return ExecResult(rec.id, exit_code, timed_out, rec.duration_seconds, out_path, err_path)

    def _signal_user_processes(self, user: str, signal: str) -> None:
        # Docker cannot signal an exec; signalling every process of that user ends it.
        try:
            kid = self._api.exec_create(self.id, ["kill", f"-{signal}", "-1"], user=user)["Id"]
            self._api.exec_start(kid)
        except DockerException:
            pass

    def put_archive(self, path: str, data: bytes) -> None:
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
        return stream

    def put_file(self, path: str, content: bytes, mode: int = 0o644, uid: int = 0) -> None:
        import tarfile

        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo(os.path.basename(path))
            info.size, info.mode, info.uid, info.gid = len(content), mode, uid, uid
            info.mtime = int(time.time())
            tar.addfile(info, io.BytesIO(content))
        self.put_archive(os.path.dirname(path) or "/", buf.getvalue())

    def remove(self) -> None:
        try:
            self._container.remove(force=True)
        except NotFound:
            pass
        except DockerException:
            pass


def _pump(raw: socket.socket, out_path: Path, err_path: Path, counts: list[int]) -> None:
    """Demultiplex Docker's framed stream (8-byte headers) straight into the two files."""
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        sinks = {1: out, 2: err}
        while True:
            header = _recv_exact(raw, 8)
            if header is None:
                return
            stream, size = header[0], struct.unpack(">I", header[4:])[0]
            payload = _recv_exact(raw, size)
            if payload is None:
                return
            sink = sinks.get(stream, out)
            sink.write(payload)
            sink.flush()
            counts[0 if sink is out else 1] += len(payload)


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


def remove_containers(label_filters: Mapping[str, str]) -> int:
    """Remove every container carrying all these labels; the count removed."""
    flt = [f"{k}={v}" for k, v in label_filters.items()]
    removed = 0
    for c in client().containers.list(all=True, filters={"label": flt}):
        try:
            c.remove(force=True)
            removed += 1
        except DockerException:
            pass
    return removed
