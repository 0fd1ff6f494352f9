"""The Docker SDK's ssh:// transport (`use_ssh_client=True`: one `ssh ... docker system
dial-stdio` process per connection), made to reuse and end its connections.

The SDK builds a new connection pool for every request, so every API call starts an `ssh`
process (a handshake, an sshd session, a remote `docker`), ended only when that pool is
collected. Its close also writes
two newlines into the stream (an attached command's stdin) and never closes the pipes;
`shutdown` does nothing, so stdin could not be ended. Here one pool per client keeps at
most its size of idle connections and reuses them (measured: 20 execs took 20 `ssh`
processes, one per attached stream, against 60); a connection whose `ssh` has exited is
replaced, and close ends the process at once."""

from __future__ import annotations

import socket
import subprocess
import threading
from typing import Any

from docker.transport import sshconn

# Private internals of the SDK, subclassed as they are at run time (Any: their stubs say
# less than the code does, e.g. the pool's connections and the socket's process).
SSHSocket: Any = sshconn.SSHSocket
SSHConnection: Any = sshconn.SSHConnection
SSHConnectionPool: Any = sshconn.SSHConnectionPool
SSHHTTPAdapter: Any = sshconn.SSHHTTPAdapter


class _Reader:
    """The ssh process's stdout as http.client reads a response from it: one buffer shared
    with `recv` (a hijacked exec reads on where the headers ended), and a close that leaves
    the pipe open for the connection's next request."""

    def __init__(self, raw: Any, channel: _Socket) -> None:
        self._raw = raw
        self.channel = channel  # where the SDK finds the socket of a hijacked response

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)

    def close(self) -> None:
        pass


class _Socket(SSHSocket):  # type: ignore[misc]
    def makefile(self, mode: str = "rb") -> _Reader:
        if self.proc is None:
            self.connect()
        return _Reader(self.proc.stdout, self)

    def shutdown(self, how: int) -> None:
        # The write half is the ssh process's stdin: its end reaches the engine as EOF.
        proc = self.proc
        if proc is None:
            return
        if how in (socket.SHUT_WR, socket.SHUT_RDWR):
            try:
                proc.stdin.close()
            except OSError:
                pass
        if how in (socket.SHUT_RD, socket.SHUT_RDWR):
            proc.terminate()  # the reader sees EOF

    def close(self) -> None:
        proc = self.proc
        if proc is not None:
            try:
                proc.stdin.close()
            except OSError:
                pass
            if proc.poll() is None:
                proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            try:  # after the reader (if any) has seen EOF: it holds the file's lock
                proc.stdout.close()
            except (OSError, ValueError):
                pass
        socket.socket.close(self)

    def exited(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None


class _Connection(SSHConnection):  # type: ignore[misc]
    def connect(self) -> None:
        sock = _Socket(self.ssh_host)
        sock.connect()
        self.sock = sock


class _Pool(SSHConnectionPool):  # type: ignore[misc]
    def _new_conn(self) -> _Connection:
        return _Connection(None, self.timeout, self.ssh_host)

    def _get_conn(self, timeout: float | None = None) -> Any:
        conn = super()._get_conn(timeout)
        sock = getattr(conn, "sock", None)
        if isinstance(sock, _Socket) and sock.exited():
            conn.close()  # its ssh ended (engine host restarted, sshd dropped it)
            return self._new_conn()
        return conn


class _Adapter(SSHHTTPAdapter):  # type: ignore[misc]
    def __init__(self, base_url: str, timeout: int, max_pool_size: int) -> None:
        super().__init__(base_url, timeout, max_pool_size=max_pool_size, shell_out=True)
        self._one: _Pool | None = None
        self._one_lock = threading.Lock()

    def get_connection(self, url: Any, proxies: Any = None) -> _Pool:
        with self._one_lock:
            if self._one is None:
                self._one = _Pool(ssh_client=None, timeout=self.timeout,
                                  maxsize=self.max_pool_size, host=self.ssh_host)
            return self._one

    def close(self) -> None:
        with self._one_lock:
            pool, self._one = self._one, None
        if pool is not None:
            pool.close()
        super().close()


def fix_ssh_transport(api: Any) -> None:
    """Mount the reusing adapter on a docker.APIClient made for an ssh:// URL with
    use_ssh_client=True (its base_url is then the SDK's ssh marker)."""
    old = api._custom_adapter
    adapter = _Adapter(f"ssh://{old.ssh_host}", old.timeout, old.max_pool_size)
    api._custom_adapter = adapter
    api.mount("http+docker://ssh", adapter)
    old.close()
