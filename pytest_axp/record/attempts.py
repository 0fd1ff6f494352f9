"""Earlier attempts of a variant: kept under results/<id>/attempts/<n>/, never deleted.

Both `axp local run --resume` and `--retries` move an attempt there before the next one
starts; the results folder itself always holds the latest attempt, which is what results
and queries count.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from .jsonio import read_json
from .layout import RunPaths

ATTEMPTS = "attempts"


def attempt_numbers(results_root: Path) -> list[int]:
    folder = results_root / ATTEMPTS
    if not folder.is_dir():
        return []
    return sorted(int(p.name) for p in folder.iterdir() if p.is_dir() and p.name.isdigit())


def next_attempt(results_root: Path) -> int:
    numbers = attempt_numbers(results_root)
    return numbers[-1] + 1 if numbers else 1


def archive_attempt(run: RunPaths, variant_id: str) -> Path:
    """Move what the last attempt wrote (results and staging record) to attempts/<n>/."""
    results = run.results(variant_id).root
    numbers = attempt_numbers(results)
    target = results / ATTEMPTS / str(numbers[-1] + 1 if numbers else 1)
    target.mkdir(parents=True)
    if results.is_dir():
        for item in results.iterdir():
            if item.name != ATTEMPTS:
                shutil.move(str(item), target / item.name)
    staging = run.staging(variant_id)
    if staging.exists():
        shutil.move(str(staging), target / "staging.json")
    return target


def attempt_entry(number: int, summary: dict[str, Any] | None,
                  archived: bool = True) -> dict[str, Any]:
    """One line of a summary's `attempts` list: how that attempt ended and why, and where
    its files are (the last attempt's are the results folder itself)."""
    summary = summary if isinstance(summary, dict) else {}
    error, agent = summary.get("error"), summary.get("agent")
    error = error if isinstance(error, dict) else None
    agent = agent if isinstance(agent, dict) else {}
    status = summary.get("status") or "partial"
    if error:
        reason = f"{error.get('phase')} '{error.get('name')}': {error.get('message')}"
    elif status == "fail":
        reason = "failed: " + ", ".join(
            f"{t.get('kind')}/{t.get('name')}" for t in summary.get("tests") or []
            if isinstance(t, dict) and t.get("status") != "pass")
    elif status == "pass":
        reason = None
    else:
        reason = agent.get("stopped_reason") or (
            "no summary: the attempt was interrupted" if status == "partial" else status)
    return {"n": number, "status": status, "reason": reason,
            "infrastructure": bool(error and error.get("infrastructure")),
            "path": f"{ATTEMPTS}/{number}/" if archived else "."}


def archived_entries(results_root: Path) -> list[dict[str, Any]]:
    """The `attempts` entries of every archived attempt, oldest first."""
    return [attempt_entry(n, read_json(results_root / ATTEMPTS / str(n) / "run-summary.json"))
            for n in attempt_numbers(results_root)]
