"""Serving the viewer with uvicorn, and the state file that tells `axp local run` where."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

from ..record.jsonio import read_json, write_atomic
from ..runlock import process_alive

STATE_FILE = ".viewer.json"   # beside the run folders; a dot name is no run
DEFAULT_PORT = 8765


def bind(host: str, port: int | None) -> socket.socket:
    """A listening socket: `port`, or DEFAULT_PORT if free, else any free port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    tries = [port] if port is not None else [DEFAULT_PORT, 0]
    last: OSError | None = None
    for p in tries:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, p))
        except OSError as e:
            sock.close()
            last = e
            continue
        sock.listen(128)
        sock.set_inheritable(True)
        return sock
    assert last is not None
    raise last


def url_of(sock: socket.socket, host: str) -> str:
    port = sock.getsockname()[1]
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    shown = f"[{shown}]" if ":" in shown else shown
    return f"http://{shown}:{port}"


def write_state(runs_dir: Path, url: str) -> Path:
    path = runs_dir / STATE_FILE
    runs_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps({"url": url, "pid": os.getpid()}) + "\n", mode=0o644)
    return path


def remove_state(runs_dir: Path) -> None:
    """Remove the state file if it is still ours (a later viewer may have replaced it)."""
    path = runs_dir / STATE_FILE
    state = read_json(path)
    if isinstance(state, dict) and state.get("pid") == os.getpid():
        path.unlink(missing_ok=True)


def viewer_url(runs_dir: Path) -> str | None:
    """The URL of the viewer serving `runs_dir`, if one runs (a stale file is ignored)."""
    state = read_json(runs_dir / STATE_FILE)
    if not isinstance(state, dict) or not process_alive(state.get("pid")):
        return None
    url = state.get("url")
    return url if isinstance(url, str) and url.startswith("http") else None


def serve(runs_dir: Path, run_ids: list[str], host: str, port: int | None,
          on_ready: Any = None) -> None:
    """Serve until interrupted; the state file lives exactly as long as the server."""
    import uvicorn

    from .app import create_app

    sock = bind(host, port)
    url = url_of(sock, host)
    loopback = host in ("127.0.0.1", "localhost", "::1")
    allowed = ["127.0.0.1", "localhost", "[::1]", "::1"] if loopback else None
    app = create_app(runs_dir, run_ids, allowed_hosts=allowed)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    write_state(runs_dir, url)
    try:
        if on_ready:
            on_ready(url)
        server.run(sockets=[sock])
    finally:
        remove_state(runs_dir)
        sock.close()
