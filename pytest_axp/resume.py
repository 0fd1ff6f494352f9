"""Resuming a run: which variants run again, their earlier attempts kept aside, and an
index.json that disagrees with the summaries rebuilt from them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .record.layout import RunPaths

# A variant with no summary, or one that ended in an error, runs again; a pass, a fail or
# a timeout is a result and is kept.
RERUN_STATUSES = (None, "error")


class ResumeError(ValueError):
    """The run cannot be resumed as asked."""


@dataclass(frozen=True)
class ResumeTarget:
    run: RunPaths
    ulid: str
    selected: list[str]       # the variants the run was started with


def find_run(runs_dir: Path, run_id: str) -> ResumeTarget:
    from .runs import split_run_id

    run = RunPaths(runs_dir / run_id)
    _, ulid = split_run_id(run_id)
    selected = run.selected_variants()
    if not selected or ulid is None:
        raise ResumeError(f"--resume {run_id}: no such run under {runs_dir}")
    return ResumeTarget(run, ulid, selected)


def recorded_source(run: RunPaths, variant_id: str) -> str | None:
    """The experiment file the run was made from, as its resolved-variant.yaml says."""
    import yaml

    try:
        data = yaml.safe_load(run.resolved_variant(variant_id).read_text())
        source = data["source_file"]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return None
    return source if isinstance(source, str) else None


def variants_to_rerun(run: RunPaths, selected: list[str]) -> list[str]:
    from .record.jsonio import read_json

    return [vid for vid in selected
            if (read_json(run.results(vid).run_summary) or {}).get("status")
            in RERUN_STATUSES]


def index_is_stale(run: RunPaths) -> bool:
    """An index.json exists but does not parse or disagrees with the summaries."""
    from .record.index import index_matches

    return run.index.exists() and not index_matches(run)


def repair_index(run: RunPaths) -> bool:
    """Rebuild index.json from the summaries when it does not match them; True if it was
    rebuilt."""
    from .record.index import index_matches, rebuild_index

    if index_matches(run):
        return False
    return rebuild_index(run)


def set_aside(run: RunPaths, variant_ids: list[str]) -> None:
    """Before the variants run again: each one's last attempt moves to attempts/<n>/, and
    the index goes (it is rebuilt from the summaries when the run completes)."""
    from .record.attempts import archive_attempt

    for vid in variant_ids:
        archive_attempt(run, vid)
    run.index.unlink(missing_ok=True)
