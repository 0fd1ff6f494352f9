"""The table `axp local run` ends with: what happened to each variant, from its
run-summary.json, and why when it did not pass. Pure logic; main.py reads and prints."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pytest_axp.render.table import render

ORDER = ("pass", "fail", "timeout", "error", "no result")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def reason(summary: dict[str, Any] | None) -> str:
    """Why a variant did not pass, whole and on one line ('' when it passed)."""
    if not summary or not summary.get("status"):
        return "no run-summary.json: the variant did not finish"
    status = summary["status"]
    if status == "pass":
        return ""
    agent = summary.get("agent") or {}
    parts = []
    error = summary.get("error")
    if isinstance(error, dict):
        code = error.get("exit_code")
        what = f"{error.get('phase', '?')} '{error.get('name', '?')}' failed"
        what += f" (exit {code})" if code is not None else ""
        message = _one_line(error.get("message") or "")
        parts.append(f"{what}: {message}" if message else what)
        if error.get("infrastructure"):
            parts[-1] = "infrastructure: " + parts[-1]
    if status == "timeout" and not agent.get("stopped_reason"):
        parts.append("the agent ran out of time")
    stopped = _one_line(agent.get("stopped_reason") or "")
    if stopped and not any(stopped in p for p in parts):  # said once, not twice
        parts.append(f"agent stopped: {stopped}")
    failed = [t for t in summary.get("tests") or [] if t.get("status") != "pass"]
    if failed:
        names = ", ".join(
            f"{t.get('kind')}/{t.get('name')}"
            + (f" ({t['reason']})" if t.get("reason") else
               f" (exit {t['exit_code']})" if t.get("exit_code") is not None else "")
            for t in failed)
        parts.append(f"failed test{'s' if len(failed) > 1 else ''}: {names}")
    if not parts and agent.get("exit_code") not in (0, None):
        parts.append(f"the agent exited with code {agent['exit_code']}")
    return "; ".join(parts) or status


@dataclass
class Row:
    variant: str
    repeat: int
    summary: dict[str, Any] | None

    @property
    def status(self) -> str:
        return (self.summary or {}).get("status") or "no result"


def _duration(summary: dict[str, Any]) -> str:
    ms = summary.get("duration_ms")
    return "" if ms is None else f"{ms / 1000:.1f}s"


def _tokens(agent: dict[str, Any]) -> str:
    read = sum(agent.get(k) or 0 for k in ("input_tokens", "cache_creation_input_tokens",
                                           "cache_read_input_tokens"))
    return f"{read}/{agent.get('output_tokens') or 0}"


def _cost(value: float | None) -> str:
    return "" if value is None else f"${value:.4f}"


def table(rows: Sequence[Row], *, repeats: int, width: int | None) -> str:
    # Where each variant ran, once a pool of engines spread them over more than one.
    engines = {(r.summary or {}).get("engine") for r in rows} - {None}
    by_engine = len(engines) > 1
    head = ["variant", *(["repeat"] if repeats > 1 else []), "status",
            *(["engine"] if by_engine else []), "duration", "turns", "tokens in/out", "cost",
            "reason"]
    body = []
    for r in rows:
        s = r.summary or {}
        agent = s.get("agent") or {}
        body.append([r.variant, *([r.repeat] if repeats > 1 else []), r.status,
                     *([s.get("engine") or ""] if by_engine else []), _duration(s),
                     agent.get("turns", "") if s else "", _tokens(agent) if s else "",
                     _cost(agent.get("cost_usd")) if s else "", reason(r.summary)])
    return render(head, body, width=width)


def total_line(rows: Sequence[Row], wall_seconds: float) -> str:
    counts = Counter(r.status for r in rows)
    by_status = ", ".join(f"{counts[s]} {s}" for s in ORDER if counts[s])
    cost = sum(((r.summary or {}).get("agent") or {}).get("cost_usd") or 0 for r in rows)
    noun = "variant run" if len({r.repeat for r in rows}) > 1 else "variant"
    return (f"total: {len(rows)} {noun}{'s' if len(rows) != 1 else ''}: {by_status}; "
            f"cost ${cost:.4f}; wall time {wall_seconds:.1f}s")
