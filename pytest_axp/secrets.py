"""Secrets and environment: where values come from, and how they are kept out of files.

Precedence, lowest first (AXP 0.3.0): ./.env, each --env-file in order, the host
environment, --env NAME=VALUE / --env NAME. Only declared names are taken.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

MARKER = b"[REDACTED]"
_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")


class EnvError(ValueError):
    """A bad --env or --env-file: the message says which and what to do."""


def parse_env_file(path: Path) -> dict[str, str]:
    """A dotenv file: NAME=VALUE lines, optional `export`, quotes, # comments."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise EnvError(f"--env-file {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise EnvError(f"--env-file {path}: not UTF-8 text") from None
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = _LINE.match(line)
        if not m:
            raise EnvError(f"{path}:{number}: expected NAME=VALUE")
        name, value = m.groups()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
            if line.split("=", 1)[1].strip().startswith('"'):
                value = value.replace("\\n", "\n").replace('\\"', '"')
        else:
            value = re.sub(r"\s+#.*$", "", value)
        values[name] = value
    return values


def parse_env_args(items: Sequence[str], host_env: Mapping[str, str]) -> dict[str, str]:
    """--env NAME=VALUE, or --env NAME (the host's value, which must exist)."""
    values: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise EnvError(f"--env {item!r}: expected NAME=VALUE or NAME")
        if not sep:
            if name not in host_env:
                raise EnvError(f"--env {name}: {name} is not set in this environment")
            value = host_env[name]
        values[name] = value
    return values


def layered_environment(*, cwd: Path, env_files: Sequence[Path] = (),
                        host_env: Mapping[str, str] | None = None,
                        env_args: Sequence[str] = ()) -> dict[str, str]:
    """Every name the layers know, each with its highest-precedence value. Callers look up
    declared names only."""
    host = dict(os.environ if host_env is None else host_env)
    merged: dict[str, str] = {}
    dotenv = cwd / ".env"
    if dotenv.is_file():
        merged.update(parse_env_file(dotenv))
    for p in env_files:
        merged.update(parse_env_file(Path(p)))
    merged.update(host)
    merged.update(parse_env_args(env_args, host))
    return merged


def resolve_values(declared: Iterable[str], *, cwd: Path, env_files: Sequence[Path] = (),
                   host_env: Mapping[str, str] | None = None,
                   env_args: Sequence[str] = ()) -> dict[str, str]:
    """The value of every declared name that has one, by precedence."""
    merged = layered_environment(cwd=cwd, env_files=env_files, host_env=host_env,
                                 env_args=env_args)
    return {name: merged[name] for name in dict.fromkeys(declared) if name in merged}


class Redactor:
    """Replaces secret values with a marker, also in a stream cut into arbitrary chunks.

    The stream form keeps back the last (longest value - 1) bytes of what it has seen, so a
    value split across two chunks is still found; flush() releases the rest.
    """

    def __init__(self, values: Iterable[str]) -> None:
        # Longest first, so a value containing a shorter one is replaced whole.
        self.values = sorted({v.encode() for v in values if v}, key=len, reverse=True)
        self._keep = max((len(v) for v in self.values), default=1) - 1
        self._pending = b""

    def __bool__(self) -> bool:
        return bool(self.values)

    @property
    def values_text(self) -> list[str]:
        return [v.decode() for v in self.values]

    def bytes(self, data: bytes) -> bytes:
        for value in self.values:
            data = data.replace(value, MARKER)
        return data

    def text(self, text: str) -> str:
        return self.bytes(text.encode("utf-8", "surrogateescape")).decode(
            "utf-8", "surrogateescape") if self.values else text

    def feed(self, chunk: bytes) -> bytes:
        if not self.values:
            return chunk
        data = self.bytes(self._pending + chunk)
        if self._keep == 0:
            self._pending = b""
            return data
        # Never hold back part of a marker we just wrote.
        cut = max(0, len(data) - self._keep)
        tail_start = data.rfind(MARKER, cut - len(MARKER) + 1 if cut else 0)
        if tail_start != -1 and tail_start + len(MARKER) > cut:
            cut = tail_start + len(MARKER)
        self._pending = data[cut:]
        return data[:cut]

    def flush(self) -> bytes:
        rest, self._pending = self.bytes(self._pending), b""
        return rest
