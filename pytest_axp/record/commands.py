"""The command logger: every exec the harness makes leaves a record and its full output."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..secrets import Redactor
from .layout import VariantPaths


@dataclass
class CommandRecord:
    id: str
    seq: int
    phase: str
    name: str
    argv: list[str]
    user: str
    workdir: str
    started_at_epoch: float
    duration_seconds: float = 0.0
    exit_code: int | None = None
    timed_out: bool = False
    stdout_bytes: int = 0
    stderr_bytes: int = 0
    stdout_path: str = ""
    stderr_path: str = ""
    span_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class CommandLog:
    """Hands out command ids and appends one JSON line per finished command."""

    def __init__(self, paths: VariantPaths, span_id: Callable[[], str | None] | None = None,
                 redactor: Redactor | None = None) -> None:
        self.paths = paths
        self._span_id = span_id  # () -> the current harness span's id, for cross-reference
        self.redactor = redactor or Redactor(())
        self._seq = 0
        self._lock = threading.Lock()
        paths.commands.mkdir(parents=True, exist_ok=True)

    def start(self, *, phase: str, name: str, argv: list[str], user: str, workdir: str,
              started_at_epoch: float) -> tuple[CommandRecord, Path, Path]:
        with self._lock:
            self._seq += 1
            seq = self._seq
        cid = f"{seq:04d}"
        rec = CommandRecord(
            id=cid, seq=seq, phase=phase, name=name,
            argv=[self.redactor.text(a) for a in argv], user=user, workdir=workdir,
            started_at_epoch=round(started_at_epoch, 3),
            stdout_path=f"commands/{cid}.stdout", stderr_path=f"commands/{cid}.stderr",
            span_id=self._span_id() if self._span_id else None,
        )
        return rec, self.paths.root / rec.stdout_path, self.paths.root / rec.stderr_path

    def finish(self, rec: CommandRecord) -> None:
        # Names and extras come from the experiment and the sandbox: any may carry a value.
        line = json.dumps(self.redactor.obj(asdict(rec)), ensure_ascii=False)
        with self._lock, open(self.paths.commands_index, "a", encoding="utf-8") as f:
            f.write(line + "\n")


# Command phases as a person reads them while a variant runs.
_PHASES = {"setup": "setup", "handover": "setup", "setup_check": "setup checks",
           "agent": "agent", "test": "tests"}
# A command is recorded when it ends: after a snapshot, the phase under way is the next one.
_AFTER_SNAPSHOT = {"before_agent": "agent", "after_agent": "tests",
                   "after_tests": "finishing"}


def phase_under_way(commands_index: Path, tail_bytes: int = 8192) -> str | None:
    """What a running variant is doing, from the end of its commands.jsonl (None before the
    first command that tells)."""
    try:
        with open(commands_index, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - tail_bytes))
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if not isinstance(record, dict):
            continue
        if record.get("phase") == "snapshot":
            phase = _AFTER_SNAPSHOT.get(str(record.get("name")))
        else:
            phase = _PHASES.get(str(record.get("phase")))
        if phase:
            return phase
    return None
