"""`axp report`: one self-contained HTML file, rendered by the viewer's templates and charts
(pytest_axp.view) with their CSS and scripts inline, allowed by hash; no network."""

from __future__ import annotations

import os
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..query.results import Results, aggregate, comparison_line, test_rows
from ..record.jsonio import read_json, write_atomic


def _href(target: Path, base: Path) -> str:
    """A relative file link from the report's folder, so the report and runs move together."""
    return quote(Path(os.path.relpath(target, base)).as_posix())


def run_sections(con: Any, runs_dir: Path, out_dir: Path, run_ids: list[str]
                 ) -> list[dict[str, Any]]:
    """Per run and variant: status, why it did not pass, its tests' logs, fs-diff patches
    and trace files, as links relative to the report."""
    from .data import why

    if not run_ids:
        return []
    marks = ", ".join("?" for _ in run_ids)
    status = {(r, v): s for r, v, s in con.execute(
        f"SELECT run_id, variant_id, status FROM runs WHERE run_id IN ({marks})", run_ids
    ).fetchall()}
    items: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r, v, kind, name, st, out, err in con.execute(
            f"SELECT run_id, variant_id, kind, name, status, stdout_path, stderr_path FROM tests "
            f"WHERE run_id IN ({marks}) ORDER BY kind, name", run_ids).fetchall():
        root = runs_dir / r
        items[(r, v)].append({"text": f"test {kind}/{name}: {st}", "links": [
            (label, _href(root / p, out_dir)) for p, label in ((out, "stdout"), (err, "stderr"))
            if p]})
    for r, v, seq, point, path, change, patch in con.execute(
            f"SELECT run_id, variant_id, seq, point, path, change, patch_path FROM file_changes "
            f"WHERE run_id IN ({marks}) ORDER BY seq, path", run_ids).fetchall():
        links = [("patch", _href(runs_dir / r / patch, out_dir))] if patch else []
        items[(r, v)].append({"text": f"diff {seq} {point}: {change} {path}", "links": links})
    for r, v, path in con.execute(
            f"SELECT run_id, variant_id, path FROM artifacts WHERE run_id IN ({marks}) AND ("
            f"regexp_matches(path, '^results/[^/]+/traces/[^/]+$') OR "
            f"regexp_matches(path, '^results/[^/]+/(agent-trace|commands)\\.jsonl$')) "
            f"ORDER BY path", run_ids).fetchall():
        items[(r, v)].append({"text": "trace", "links": [
            (Path(path).name, _href(runs_dir / r / path, out_dir))]})
    out = []
    for run_id in run_ids:
        root = runs_dir / run_id
        variants = []
        for vid in sorted(v for (r, v) in status if r == run_id):
            summary_path = root / "results" / vid / "run-summary.json"
            summary = read_json(summary_path)
            variants.append({
                "vid": vid, "status": status[(run_id, vid)],
                "reason": why(summary) if isinstance(summary, dict) else "",
                "summary_href": _href(summary_path, out_dir) if summary_path.exists() else None,
                "entries": items[(run_id, vid)]})
        out.append({"run_id": run_id, "variants": variants})
    return out


def render_html(results: Results, runs: list[dict[str, Any]],
                title: str = "AXP results") -> str:
    from .app import result_figures, stats_rows
    from .render import inline_assets, render

    head, rows = test_rows(results)
    return render(
        "report.html", inline_assets=inline_assets(), title=title,
        run_count=len(results.run_ids), results=stats_rows(results),
        figures=result_figures(results, "report"), comparison=comparison_line(results),
        test_head=head, test_rows=rows, runs=runs, definitions=results.definitions,
        generated=datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"))


def build_report(runs_dir: Path, selectors: list[str], output: Path,
                 experiment: str | None = None) -> Results:
    """Write the report for the selected runs to `output`; returns what it shows."""
    from ..query.engine import connect, resolve_run_ids

    run_ids = resolve_run_ids(runs_dir, selectors)
    if experiment:
        from ..runs import read_run

        run_ids = [r for r in run_ids if read_run(runs_dir / r).experiment_id == experiment]
    output = output.resolve()
    con = connect(runs_dir, run_ids)
    try:
        results = aggregate(con, run_ids, experiment)
        runs = run_sections(con, runs_dir, output.parent, run_ids)
    finally:
        con.close()
    # A page to open and pass around: readable as a file written plainly would be.
    write_atomic(output, render_html(results, runs), mode=0o644)
    return results
