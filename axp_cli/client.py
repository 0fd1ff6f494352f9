"""The CLI's side of `axp server`: where the sign-in is kept, and an HTTP client that turns
the server's answers into one-line errors and the CLI's exit codes."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from .errors import EXIT_ENGINE, EXIT_INVALID, EXIT_NOT_PASSED, CliError

CREDENTIALS = "credentials.json"


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "axp"


def credentials_path() -> Path:
    return config_dir() / CREDENTIALS


@dataclass(frozen=True)
class SignIn:
    server: str
    token: str


def load_sign_in() -> SignIn | None:
    try:
        data = json.loads(credentials_path().read_text("utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not data.get("server") or not data.get("token"):
        return None
    return SignIn(str(data["server"]), str(data["token"]))


def save_sign_in(sign_in: SignIn) -> Path:
    path = credentials_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{CREDENTIALS}.{os.getpid()}")
    # Created 0600: the token is never readable by others, not even for a moment.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump({"server": sign_in.server, "token": sign_in.token}, f)
    os.replace(tmp, path)
    os.chmod(path, 0o600)
    return path


def forget_sign_in() -> bool:
    try:
        credentials_path().unlink()
    except FileNotFoundError:
        return False
    return True


def require_sign_in() -> SignIn:
    found = load_sign_in()
    if found is None:
        raise CliError("not signed in to an axp server: axp auth login --server URL",
                       EXIT_INVALID)
    return found


class Client:
    def __init__(self, sign_in: SignIn, timeout: float = 60.0) -> None:
        import httpx

        self.sign_in = sign_in
        self._http = httpx.Client(base_url=sign_in.server.rstrip("/"), timeout=timeout,
                                  headers={"authorization": f"Bearer {sign_in.token}"})

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """The answer (JSON, or the response itself with raw=True); a CliError otherwise."""
        import httpx

        raw = kwargs.pop("raw", False)
        try:
            resp = self._http.request(method, "/api/v1" + path, **kwargs)
        except httpx.HTTPError as e:
            raise CliError(f"cannot reach the axp server at {self.sign_in.server}: "
                           f"{type(e).__name__}: {e}", EXIT_ENGINE) from None
        if resp.status_code >= 400:
            raise _refused(resp, self.sign_in.server)
        if raw:
            return resp
        try:
            return resp.json()
        except ValueError:
            raise CliError(f"{self.sign_in.server} answered {method} {path} with something "
                           "that is not JSON: is it an axp server?", EXIT_ENGINE) from None

    def stream(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._http.stream(method, "/api/v1" + path, **kwargs)


def _refused(resp: Any, server: str) -> CliError:
    try:
        body = resp.json()
        message = str(body["error"])
    except (ValueError, KeyError, TypeError):
        # Not the server's own error shape: some other web server, or a proxy in between.
        return CliError(f"{server} answered HTTP {resp.status_code}, not as an axp server "
                        "does: check the URL", EXIT_ENGINE)
    if resp.status_code == 401:
        return CliError(f"the server at {server} refused the token: {message}", EXIT_INVALID)
    if resp.status_code == 404:
        return CliError(message, EXIT_NOT_PASSED)
    if resp.status_code >= 500:
        return CliError(f"the server at {server} failed: {message}", EXIT_ENGINE)
    return CliError(message, EXIT_INVALID)
