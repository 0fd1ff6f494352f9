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
