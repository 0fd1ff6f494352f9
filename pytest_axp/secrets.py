"""Secrets and environment: where values come from, and how they are kept out of files.

Precedence, lowest first (AXP 0.3.0): ./.env, each --env-file in order, the host
environment, --env NAME=VALUE / --env NAME. Only declared names are taken.
"""

from __future__ import annotations

import base64
import builtins
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

MARKER = b"[REDACTED]"
# A shorter value cannot be replaced everywhere without mangling ordinary text (and what
# is left around the markers still gives it away); such a secret is refused before a run.
MIN_SECRET_LENGTH = 8
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


def too_short(values: Mapping[str, str]) -> list[str]:
    """Names whose value is set but shorter than MIN_SECRET_LENGTH characters (blanks
    around it not counted: they are not what gives it away)."""
    return [name for name, value in values.items()
            if value and len(value.strip()) < MIN_SECRET_LENGTH]


def too_short_message(name: str, value: str) -> str:
    return (f"secret {name} is {len(value.strip())} character(s) long: values shorter than "
            f"{MIN_SECRET_LENGTH} cannot be redacted from the records safely; use a longer value")


def _json_forms(text: str) -> set[str]:
    """How a string reads inside a JSON document (UTF-8 and \\u-escaped writers)."""
    return {json.dumps(text, ensure_ascii=False)[1:-1], json.dumps(text)[1:-1]}


def _base64_cores(data: bytes) -> set[str]:
    """The characters base64 spells from `data` alone, at each of the three byte alignments
    it can have inside a longer encoded text (what the neighbouring bytes change is left out)."""
    cores = set()
    for k in range(3):
        bit_start, bit_end = 8 * k, 8 * (k + len(data))
        first, last = -(-bit_start // 6), bit_end // 6  # whole 6-bit groups inside
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            core = encode(b"\0" * k + data).decode()[first:last]
            if len(core) >= MIN_SECRET_LENGTH:
                cores.add(core)
    return cores


def secret_forms(value: str) -> list[str]:
    """Every form of `value` to replace, longest first.

    The value itself, JSON-escaped, percent-encoded and base64-encoded; and for a value of
    several lines (or with blanks around it) each trimmed line of at least
    MIN_SECRET_LENGTH characters, raw and JSON-escaped, since diffs and line-oriented logs
    write a multi-line value one line at a time.
    """
    if not value:
        return []
    forms = {value, quote(value, safe=""), quote_plus(value, safe=""), quote(value)}
    forms |= _json_forms(value)
    forms |= _base64_cores(value.encode("utf-8", "surrogateescape"))
    for line in value.splitlines():
        line = line.strip()
        if len(line) >= MIN_SECRET_LENGTH:
            forms |= {line} | _json_forms(line)
    return sorted(forms, key=lambda f: (-len(f), f))


class Redactor:
    """Replaces secret values, in every form of secret_forms(), with a marker; also in a
    stream cut into arbitrary chunks.

    The stream form keeps back the last (longest form - 1) bytes of what it has seen, so a
    value split across two chunks is still found; flush() releases the rest, and
    flush(cut=True) also masks a beginning of a value left at the end by a cut stream.
    """

    def __init__(self, values: Iterable[str]) -> None:
        self.secrets = sorted({v for v in values if v}, key=len, reverse=True)
        # Longest first, so a form containing a shorter one is replaced whole.
        forms = {f.encode("utf-8", "surrogateescape") for v in self.secrets
                 for f in secret_forms(v)}
        self.values = sorted(forms, key=lambda f: (-len(f), f))
        self._keep = max((len(v) for v in self.values), default=1) - 1
        self._pending = b""

    def __bool__(self) -> bool:
        return bool(self.values)

    @property
    def values_text(self) -> list[str]:
        """The secret values themselves (a new Redactor(values_text) is an equal one)."""
        return list(self.secrets)

    def bytes(self, data: builtins.bytes) -> builtins.bytes:
        for value in self.values:
            if value in data:
                data = data.replace(value, MARKER)
        return data

    def text(self, text: str) -> str:
        return self.bytes(text.encode("utf-8", "surrogateescape")).decode(
            "utf-8", "surrogateescape") if self.values else text

    def obj(self, value: Any) -> Any:
        """A JSON-like structure with every string (keys too) redacted, for JSON writers:
        the escaping comes after, so the record stays valid JSON."""
        if not self.values:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {self.text(k) if isinstance(k, str) else k: self.obj(v)
                    for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.obj(v) for v in value]
        return value

    def feed(self, chunk: builtins.bytes) -> builtins.bytes:
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

    def flush(self, cut: bool = False) -> builtins.bytes:
        """What is held back. With `cut` (the stream was cut short there), an end that is
        the beginning of a form is masked too: its rest was never seen."""
        rest, self._pending = self.bytes(self._pending), b""
        return self.mask_cut_end(rest) if cut else rest

    def mask_cut_end(self, data: builtins.bytes) -> builtins.bytes:
        """`data` with a trailing beginning of any form replaced by the marker."""
        start = len(data)
        for value in self.values:
            for n in range(min(len(value) - 1, len(data)), 0, -1):
                if data.endswith(value[:n]):
                    start = min(start, len(data) - n)
                    break
        return data[:start] + MARKER if start < len(data) else data
