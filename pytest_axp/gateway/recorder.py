"""Writes a run's API bodies to disk, in order, with credentials redacted."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..secrets import secret_forms

REDACTED = "[REDACTED]"
_SENSITIVE_HEADER_WORDS = ("key", "token", "authorization", "cookie", "secret")


class Redactor:
    """Replaces every known secret value (run token, real API key, run secrets) by [REDACTED]."""

    def __init__(self, secrets: Iterable[str | None]) -> None:
        self._values = {s for s in secrets if isinstance(s, str) and s}
        self._secrets = self._forms()

    def _forms(self) -> list[str]:
        # Every written form of each value (secrets.secret_forms: per line, encoded...),
        # longest first so a form that contains another is replaced whole.
        forms = {f for v in self._values for f in secret_forms(v)}
        return sorted(forms, key=lambda f: (-len(f), f))

    def add(self, secret: str | None) -> None:
        if secret and secret not in self._values:
            self._values.add(secret)
            self._secrets = self._forms()

    def text(self, value: str) -> str:
        for secret in self._secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value

    def obj(self, value: Any) -> Any:
        """Redacts inside a JSON-like structure (strings and keys), so the output stays valid
        JSON."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {self.text(str(k)): self.obj(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.obj(v) for v in value]
        return value

    def events(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Stream events for the record. A secret can be split across two deltas of one block, where
        no single fragment matches; such a block's fragments are coalesced into its first delta
        (redacted, the rest emptied, marked `_coalesced`), so the deltas still concatenate
        correctly."""
        if not self._secrets or not any(flag for _, flag in self._split_blocks(events).values()):
            return events
        copied: list[dict[str, Any]] = json.loads(json.dumps(events, default=str))
        for parts, has_secret in self._split_blocks(copied).values():
            if not has_secret:
                continue
            first, name = parts[0]
            first[name] = self.text("".join(d[f] for d, f in parts))
            first["_coalesced"] = True
            for delta, f in parts[1:]:
                delta[f] = ""
        return copied

    def _split_blocks(self, events: list[dict[str, Any]]) -> dict[int, Any]:
        pieces: dict[int, list[tuple[dict[str, Any], str]]] = {}
        for ev in events:
            data = ev.get("data")
            if not isinstance(data, dict) or data.get("type") != "content_block_delta":
                continue
            delta = data.get("delta") or {}
            for name in ("text", "partial_json", "thinking"):
                if isinstance(delta.get(name), str):
                    pieces.setdefault(int(data.get("index", 0)), []).append((delta, name))
        result: dict[int, Any] = {}
        for index, parts in pieces.items():
            joined = "".join(d[f] for d, f in parts)
            result[index] = (parts, any(secret in joined for secret in self._secrets))
        return result

    def dumps(self, value: Any) -> str:
        text = json.dumps(self.obj(value), indent=2, ensure_ascii=False, default=str)
        # Second pass over the serialised text catches secrets that only appear JSON-escaped.
        for secret in self._secrets:
            escaped = json.dumps(secret, ensure_ascii=False)[1:-1]
            if escaped != secret and escaped in text:
                text = text.replace(escaped, REDACTED)
        return text


def redact_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Header dict for the record; anything that looks like a credential is replaced."""
    out: dict[str, str] = {}
    for name, value in headers:
        lname = name.lower()
        if any(word in lname for word in _SENSITIVE_HEADER_WORDS):
            value = REDACTED
        out[lname] = f"{out[lname]}, {value}" if lname in out else value
    return out


def atomic_write_text(path: Path, text: str) -> None:
    """tmp file in the same directory + os.replace: readers never see a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.write("\n")
        # mkstemp creates 0600; the record is meant to be read by the user and copied around.
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


class BodyRecorder:
    """`NNNN.request.json` / `NNNN.response.json` pairs under one run's bodies dir."""

    def __init__(self, bodies_dir: Path, redactor: Redactor) -> None:
        self.bodies_dir = Path(bodies_dir)
        self.redactor = redactor
        self._seq = 0

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    @property
    def count(self) -> int:
        return self._seq

    def write(self, seq: int, kind: str, record: Mapping[str, Any]) -> Path:
        path = self.bodies_dir / f"{seq:04d}.{kind}.json"
        atomic_write_text(path, self.redactor.dumps(record))
        return path
