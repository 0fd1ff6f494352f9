"""index.json: the completion marker of a run, built from the summaries on disk."""

from __future__ import annotations

from typing import Any

from .jsonio import read_json, write_json
from .layout import RunPaths


def build_index(run: RunPaths) -> dict[str, Any] | None:
    """The index of a finished run, or None while any selected variant lacks a summary."""
    variants: dict[str, Any] = {}
    experiment_id = None
    for vid in run.selected_variants():
        summary = read_json(run.results(vid).run_summary)
        if not isinstance(summary, dict) or "status" not in summary:
            return None
        experiment_id = experiment_id or summary.get("experiment_id")
        variants[vid] = {
            "variant_tag": summary.get("variant_tag", vid),
            "status": summary["status"],
            "cost_usd": (summary.get("agent") or {}).get("cost_usd", 0.0),
            "duration_seconds": summary.get("duration_seconds", 0),
            "paths": {
                "results_dir": f"results/{vid}",
                "run_summary": f"results/{vid}/run-summary.json",
            },
        }
    if not variants:
        return None
    return {
        "schema_version": 1,
        "run_id": run.run_id,
        "experiment_id": experiment_id,
        "variants": variants,
    }


def finalize_run(run: RunPaths) -> bool:
    """Write index.json once, when every selected variant has finished. True if written."""
    if run.index.exists():
        return False
    index = build_index(run)
    if index is None:
        return False
    write_json(run.index, index)
    return True


def index_matches(run: RunPaths) -> bool:
    """True when index.json parses and says what the summaries on disk say: the same
    variants, each with its summary's status."""
    index = read_json(run.index)
    if not isinstance(index, dict) or not isinstance(index.get("variants"), dict):
        return False
    if index.get("run_id") not in (None, run.run_id):
        return False
    selected = run.selected_variants()
    if sorted(index["variants"]) != selected:
        return False
    for vid in selected:
        summary = read_json(run.results(vid).run_summary)
        entry = index["variants"][vid]
        if not isinstance(summary, dict) or not isinstance(entry, dict) \
                or entry.get("status") != summary.get("status"):
            return False
    return True


def rebuild_index(run: RunPaths) -> bool:
    """Write index.json again from the summaries (it is derived from them, nothing else).
    False, and no index, while a selected variant has no summary."""
    index = build_index(run)
    if index is None:
        run.index.unlink(missing_ok=True)
        return False
    write_json(run.index, index)
    return True
