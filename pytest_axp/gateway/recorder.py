"""Writes a run's API bodies to disk, in order, with credentials redacted."""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ..record.jsonio import write_atomic
from ..secrets import MARKER, Redactor

REDACTED = MARKER.decode()
_SENSITIVE_HEADER_WORDS = ("key", "token", "authorization", "cookie", "secret")


class ApiRedactor(Redactor):
    """The package's Redactor (every written form of each secret: the run token, real API
    keys, run secrets), with what API records add: secrets split across stream deltas, and
    JSON text."""

    def __init__(self, secrets: Iterable[str | None]) -> None:
        super().__init__(s for s in secrets if isinstance(s, str) and s)
        self._forms_text = [v.decode("utf-8", "surrogateescape") for v in self.values]

    def events(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Stream events for the record. A secret can be split across two deltas of one streamed
        part (a Messages content block, a Responses output item's text or arguments), where no
        single fragment matches; such a part's fragments are coalesced into its first delta
        (redacted, the rest emptied, marked `_coalesced`), so the deltas still concatenate
        correctly."""
        if not self._forms_text or not any(flag for _, flag in self._split_parts(events).values()):
            return events
        copied: list[dict[str, Any]] = json.loads(json.dumps(events, default=str))
        for parts, has_secret in self._split_parts(copied).values():
            if not has_secret:
                continue
            first, name = parts[0]
            first[name] = self.text("".join(d[f] for d, f in parts))
            first["_coalesced"] = True
            for delta, f in parts[1:]:
                delta[f] = ""
        return copied

    def _split_parts(self, events: list[dict[str, Any]]) -> dict[Hashable, Any]:
        pieces: dict[Hashable, list[tuple[dict[str, Any], str]]] = {}
        for ev in events:
            data = ev.get("data")
            if not isinstance(data, dict):
                continue
            for finder in DELTA_FINDERS:
                for key, holder, name in finder(data):
                    pieces.setdefault(key, []).append((holder, name))
        result: dict[Hashable, Any] = {}
        for key, parts in pieces.items():
            joined = "".join(d[f] for d, f in parts)
            result[key] = (parts, any(secret in joined for secret in self._forms_text))
        return result

    def dumps(self, value: Any) -> str:
        text = json.dumps(self.obj(value), indent=2, ensure_ascii=False, default=str)
        # Second pass over the serialised text catches secrets that only appear JSON-escaped.
        for secret in self._forms_text:
            escaped = json.dumps(secret, ensure_ascii=False)[1:-1]
            if escaped != secret and escaped in text:
                text = text.replace(escaped, REDACTED)
        return text


# Where each API's stream carries a part in pieces: (part key, dict holding a piece, field).
DeltaFinder = Callable[[dict[str, Any]], Iterator[tuple[Hashable, dict[str, Any], str]]]


def messages_deltas(data: dict[str, Any]) -> Iterator[tuple[Hashable, dict[str, Any], str]]:
    """Anthropic Messages: content_block_delta's text, partial_json or thinking, by block."""
    if data.get("type") != "content_block_delta" or not isinstance(data.get("delta"), dict):
        return
    delta = data["delta"]
    for name in ("text", "partial_json", "thinking"):
        if isinstance(delta.get(name), str):
            yield ("messages", data.get("index", 0), name), delta, name


def responses_deltas(data: dict[str, Any]) -> Iterator[tuple[Hashable, dict[str, Any], str]]:
    """OpenAI Responses: every `response.*.delta` event's `delta` string (output text, function
    call arguments, reasoning, refusals), by event type, item and content/summary part."""
    kind = data.get("type")
    if (isinstance(kind, str) and kind.startswith("response.") and kind.endswith(".delta")
            and isinstance(data.get("delta"), str)):
        where = (data.get("item_id"), data.get("output_index"), data.get("content_index"),
                 data.get("summary_index"))
        yield ("responses", kind, *map(str, where)), data, "delta"


def gemini_deltas(data: dict[str, Any]) -> Iterator[tuple[Hashable, dict[str, Any], str]]:
    """Gemini: a candidate's text comes as text parts of successive chunks (its thoughts are
    a stream of their own); (part key, the part, its field) for each piece."""
    candidates = data.get("candidates")
    for cand in candidates if isinstance(candidates, list) else ():
        content = cand.get("content") if isinstance(cand, dict) else None
        parts = content.get("parts") if isinstance(content, dict) else None
        for part in parts if isinstance(parts, list) else ():
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                yield ("gemini", cand.get("index", 0), bool(part.get("thought"))), part, "text"


DELTA_FINDERS: tuple[DeltaFinder, ...] = (messages_deltas, responses_deltas, gemini_deltas)


def redact_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Header dict for the record; anything that looks like a credential is replaced."""
    out: dict[str, str] = {}
    for name, value in headers:
        lname = name.lower()
        if any(word in lname for word in _SENSITIVE_HEADER_WORDS):
            value = REDACTED
        out[lname] = f"{out[lname]}, {value}" if lname in out else value
    return out


def write_json_record(path: Path, text: str) -> None:
    """A record readable by the user (it is meant to be copied around), written whole."""
    write_atomic(path, text + "\n", mode=0o644)


class BodyRecorder:
    """`NNNN.request.json` / `NNNN.response.json` pairs under one run's bodies dir."""

    def __init__(self, bodies_dir: Path, redactor: ApiRedactor) -> None:
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
        write_json_record(path, self.redactor.dumps(record))
        return path
