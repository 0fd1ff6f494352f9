"""The read side: local run folders as rows, for `axp list` and friends."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .record.jsonio import read_json
from .record.layout import RunPaths

DEFAULT_RUNS_DIR = ".axp/runs"
RUNS_DIR_ENV = "AXP_RUNS_DIR"


def resolve_runs_dir(given: str | None, cwd: Path,
                     environ: Mapping[str, str] | None = None) -> Path:
    """The folder of run folders, for the plugin and the CLI alike: the option given
    (--axp-runs-dir, --runs-dir), else $AXP_RUNS_DIR, else ./.axp/runs; relative to `cwd`."""
    env = os.environ if environ is None else environ
    return (cwd / (given or env.get(RUNS_DIR_ENV) or DEFAULT_RUNS_DIR)).resolve()


# Worst first: a run's status is the worst of its variants'.
_SEVERITY = ("error", "timeout", "fail", "pass")


@dataclass
class RunRow:
    run_id: str
    experiment_id: str
    status: str
    created_epoch: float
    path: Path
    variants: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "experiment_id": self.experiment_id,
            "status": self.status,
            "type": "local",
            "created": datetime.fromtimestamp(self.created_epoch, UTC)
            .isoformat(timespec="seconds").replace("+00:00", "Z"),
            "variants": self.variants,
            "path": str(self.path),
        }


def split_run_id(run_id: str) -> tuple[str, str | None]:
    """(experiment id, ULID) of `<experiment-id>-<26-char ULID>`."""
    head, _, tail = run_id.rpartition("-")
    if head and len(tail) == 26:
        return head, tail
    return run_id, None


def _ulid_epoch(ulid: str | None) -> float | None:
    if not ulid:
        return None
    try:
        from ulid import ULID

        return ULID.from_str(ulid).timestamp
    except (ValueError, ImportError):
        return None


def run_status(statuses: list[str]) -> str:
    for s in _SEVERITY:
        if s in statuses:
            return s
    return "partial"


def read_run(path: Path) -> RunRow:
    run = RunPaths(path)
    experiment_id, ulid = split_run_id(path.name)
    index = read_json(run.index)
    created = _ulid_epoch(ulid) or path.stat().st_mtime
    if isinstance(index, dict) and isinstance(index.get("variants"), dict):
        variants = {vid: str((v or {}).get("status", "")) for vid, v in index["variants"].items()}
        status = run_status(list(variants.values()))
        experiment_id = index.get("experiment_id") or experiment_id
    else:
        variants = {}
        for vid in run.selected_variants():
            summary = read_json(run.results(vid).run_summary)
            variants[vid] = summary.get("status", "") if isinstance(summary, dict) else ""
        status = "partial"
    return RunRow(path.name, experiment_id, status, created, path, variants)


def list_runs(runs_dir: Path, status: str | None = None) -> list[RunRow]:
    """Local runs, newest first."""
    if not runs_dir.is_dir():
        return []
    rows = [read_run(p) for p in runs_dir.iterdir() if p.is_dir() and not p.name.startswith(".")]
    if status:
        rows = [r for r in rows if r.status == status]
    rows.sort(key=lambda r: (r.created_epoch, r.run_id), reverse=True)
    return rows
