"""`axp report`: one self-contained HTML file (inline CSS and SVG, no script, no network)."""

from __future__ import annotations

import html
import os
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..record.jsonio import write_atomic
from .results import (
    Results,
    VariantResult,
    _labels,
    aggregate,
    comparison_line,
    summary_rows,
    test_rows,
)

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;
 color:#1d2330;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #dde;
 padding-bottom:4px}h3{font-size:15px;margin:16px 0 6px}
.meta{color:#5a6273;margin:0 0 12px}
table{border-collapse:collapse;margin:6px 0 12px}
th,td{border:1px solid #d8dce6;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f2f4f8;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
.pass{color:#11703a;font-weight:600}.fail,.error,.timeout{color:#b3261e;font-weight:600}
.partial{color:#8a6100;font-weight:600}
.charts{display:flex;flex-wrap:wrap;gap:24px}
figure{margin:0}figcaption{font-weight:600;margin-bottom:4px}
svg text{font:12px system-ui,sans-serif;fill:#1d2330}
.note{color:#5a6273;max-width:900px}
ul.links{margin:2px 0 8px;padding-left:20px}a{color:#1f5fbf}
"""

_PALETTE = ("#3b6fd6", "#d9822b", "#2e9d5b", "#9b4dca", "#c23b5b", "#2a9fb0", "#7a7f2a")


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _link(target: Path, base: Path, text: str) -> str:
    """A relative file link from the report's folder, so the report and runs move together."""
    rel = os.path.relpath(target, base)
    return f'<a href="{_e(quote(Path(rel).as_posix()))}">{_e(text)}</a>'


def _table(head: list[str], rows: list[list[str]], cls: str = "",
           numeric: frozenset[int] = frozenset()) -> str:
    out = [f'<table class="{cls}"><thead><tr>']
    out += [f"<th>{_e(h)}</th>" for h in head]
    out.append("</tr></thead><tbody>")
    for r in rows:
        out.append("<tr>" + "".join(
            f'<td class="num">{_e(c)}</td>' if i in numeric else f"<td>{_e(c)}</td>"
            for i, c in enumerate(r)) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


# -- charts --------------------------------------------------------------------------------

_LABEL_W, _PLOT_W, _ROW_H, _TOP, _BOTTOM = 200, 380, 30, 10, 34


def _svg_open(height: int, title: str) -> str:
    width = _LABEL_W + _PLOT_W + 30
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="{_e(title)}">'
            f"<title>{_e(title)}</title>")


def _axis(height: int, ticks: list[tuple[float, str]]) -> str:
    y0, y1 = _TOP, height - _BOTTOM
    out = [f'<line x1="{_LABEL_W}" y1="{y1}" x2="{_LABEL_W + _PLOT_W}" y2="{y1}" '
           f'stroke="#8a90a0"/>']
    for frac, text in ticks:
        x = _LABEL_W + frac * _PLOT_W
        out.append(f'<line x1="{x:.1f}" y1="{y0}" x2="{x:.1f}" y2="{y1}" stroke="#e3e6ee"/>')
        out.append(f'<text x="{x:.1f}" y="{y1 + 16}" text-anchor="middle">{_e(text)}</text>')
    return "".join(out)


def pass_rate_chart(variants: list[VariantResult], labels: dict[str, str]) -> str:
    """Bars of the pass rate with the Wilson 95% interval as whiskers."""
    height = _TOP + _BOTTOM + _ROW_H * max(1, len(variants))
    out = [_svg_open(height, "Pass rate with 95% interval"),
           _axis(height, [(f, f"{f:.0%}") for f in (0, 0.25, 0.5, 0.75, 1)])]
    for i, v in enumerate(variants):
        y = _TOP + i * _ROW_H
        mid = y + _ROW_H / 2
        color = _PALETTE[i % len(_PALETTE)]
        out.append(f'<text x="{_LABEL_W - 8}" y="{mid + 4:.1f}" text-anchor="end">'
                   f"{_e(labels[v.key])} (N={v.n}"
                   f"{f', {v.errors} error(s) apart' if v.errors else ''})</text>")
        rate = v.pass_rate or 0.0
        out.append(f'<rect class="bar" x="{_LABEL_W}" y="{y + 7}" width="{rate * _PLOT_W:.1f}" '
                   f'height="{_ROW_H - 14}" fill="{color}" fill-opacity="0.35">'
                   f"<title>{_e(labels[v.key])}: {v.passed}/{v.n} passed</title></rect>")
        if v.n:
            x0, x1 = _LABEL_W + v.ci_low * _PLOT_W, _LABEL_W + v.ci_high * _PLOT_W
            out.append(f'<g class="interval" stroke="{color}" stroke-width="2">'
                       f'<line x1="{x0:.1f}" y1="{mid:.1f}" x2="{x1:.1f}" y2="{mid:.1f}"/>'
                       f'<line x1="{x0:.1f}" y1="{mid - 6:.1f}" x2="{x0:.1f}" y2="{mid + 6:.1f}"/>'
                       f'<line x1="{x1:.1f}" y1="{mid - 6:.1f}" x2="{x1:.1f}" y2="{mid + 6:.1f}"/>'
                       f"<title>95% CI {v.ci_low:.1%} to {v.ci_high:.1%}</title></g>")
            out.append(f'<circle cx="{_LABEL_W + rate * _PLOT_W:.1f}" cy="{mid:.1f}" r="4" '
                       f'fill="{color}"/>')
    out.append("</svg>")
    return "".join(out)


def metric_chart(variants: list[VariantResult], labels: dict[str, str], metric: str,
                 title: str, unit: str, digits: int) -> str:
    """Mean as a bar, median as a dark tick, each finished run as a dot. A unit of "$" is
    written before the number, any other after it."""
    def fmt(x: float) -> str:
        return f"${x:.{digits}f}" if unit == "$" else f"{x:.{digits}f}{unit}"

    height = _TOP + _BOTTOM + _ROW_H * max(1, len(variants))
    values = [x for v in variants for r in v.runs if (x := r.get(metric)) is not None]
    top = max(values) if values else 0.0
    top = top * 1.1 if top > 0 else 1.0
    ticks = [(f, fmt(f * top)) for f in (0, 0.5, 1)]
    out = [_svg_open(height, title), _axis(height, ticks)]
    for i, v in enumerate(variants):
        y = _TOP + i * _ROW_H
        mid = y + _ROW_H / 2
        color = _PALETTE[i % len(_PALETTE)]
        m = v.metrics.get(metric)
        out.append(f'<text x="{_LABEL_W - 8}" y="{mid + 4:.1f}" text-anchor="end">'
                   f"{_e(labels[v.key])}</text>")
        if m is None or m.mean is None or m.median is None:
            out.append(f'<text x="{_LABEL_W + 6}" y="{mid + 4:.1f}">no data</text>')
            continue
        out.append(f'<rect class="bar" x="{_LABEL_W}" y="{y + 7}" '
                   f'width="{m.mean / top * _PLOT_W:.1f}" height="{_ROW_H - 14}" fill="{color}" '
                   f'fill-opacity="0.35"><title>mean {fmt(m.mean)}, median '
                   f"{fmt(m.median)} (n={m.n})</title></rect>")
        xm = _LABEL_W + m.median / top * _PLOT_W
        out.append(f'<line x1="{xm:.1f}" y1="{y + 4}" x2="{xm:.1f}" y2="{y + _ROW_H - 4}" '
                   f'stroke="#1d2330" stroke-width="2"/>')
        for r in v.runs:
            if r.get(metric) is not None and r.get("status") in ("pass", "fail", "timeout",
                                                                 "error"):
                x = _LABEL_W + r[metric] / top * _PLOT_W
                out.append(f'<circle cx="{x:.1f}" cy="{mid:.1f}" r="3" fill="{color}">'
                           f"<title>{_e(r['run_id'])}: {fmt(r[metric])}</title>"
                           "</circle>")
    out.append("</svg>")
    return "".join(out)


# -- per-run links -------------------------------------------------------------------------

def _run_links(con: Any, runs_dir: Path, out_dir: Path, run_ids: list[str]) -> str:
    """Per run and variant: its tests' logs, fs-diff patches and trace files."""
    if not run_ids:
        return "<p>No runs.</p>"
    marks = ", ".join("?" for _ in run_ids)
    status = {(r, v): s for r, v, s in con.execute(
        f"SELECT run_id, variant_id, status FROM runs WHERE run_id IN ({marks})", run_ids
    ).fetchall()}
    tests = defaultdict(list)
    for r, v, kind, name, st, out, err in con.execute(
            f"SELECT run_id, variant_id, kind, name, status, stdout_path, stderr_path FROM tests "
            f"WHERE run_id IN ({marks}) ORDER BY kind, name", run_ids).fetchall():
        tests[(r, v)].append((kind, name, st, out, err))
    patches = defaultdict(list)
    for r, v, seq, point, path, change, patch in con.execute(
            f"SELECT run_id, variant_id, seq, point, path, change, patch_path FROM file_changes "
            f"WHERE run_id IN ({marks}) ORDER BY seq, path", run_ids).fetchall():
        patches[(r, v)].append((seq, point, path, change, patch))
    traces = defaultdict(list)
    for r, v, path in con.execute(
            f"SELECT run_id, variant_id, path FROM artifacts WHERE run_id IN ({marks}) AND ("
            f"regexp_matches(path, '^results/[^/]+/traces/[^/]+$') OR "
            f"regexp_matches(path, '^results/[^/]+/(agent-trace|commands)\\.jsonl$')) "
            f"ORDER BY path", run_ids).fetchall():
        traces[(r, v)].append(path)
    out = []
    for run_id in run_ids:
        root = runs_dir / run_id
        out.append(f'<h3 id="run-{_e(run_id)}">{_e(run_id)}</h3>')
        variants = sorted(v for (r, v) in status if r == run_id)
        if not variants:
            out.append('<p class="note">No variants recorded.</p>')
        for vid in variants:
            st = status[(run_id, vid)]
            summary = root / "results" / vid / "run-summary.json"
            head = _link(summary, out_dir, vid) if summary.exists() else _e(vid)
            out.append(f'<p>{head}: <span class="{_e(st)}">{_e(st)}</span></p><ul class="links">')
            items = []
            for kind, name, tst, so, se in tests[(run_id, vid)]:
                logs = " ".join(_link(root / p, out_dir, label)
                                for p, label in ((so, "stdout"), (se, "stderr")) if p)
                items.append(f'<li>test {_e(kind)}/{_e(name)}: <span class="{_e(tst)}">'
                             f"{_e(tst)}</span> {logs}</li>")
            for seq, point, path, change, patch in patches[(run_id, vid)]:
                target = _link(root / patch, out_dir, "patch") if patch else "(no patch)"
                items.append(f"<li>diff {_e(seq)} {_e(point)}: {_e(change)} {_e(path)} "
                             f"{target}</li>")
            for path in traces[(run_id, vid)]:
                items.append(f"<li>trace {_link(root / path, out_dir, Path(path).name)}</li>")
            out.append("".join(items) or "<li>nothing recorded</li>")
            out.append("</ul>")
    return "".join(out)


# -- the page ------------------------------------------------------------------------------

def render_html(results: Results, links_html: str, title: str = "AXP results") -> str:
    labels = _labels(results)
    head, rows = summary_rows(results)
    thead, trows = test_rows(results)
    generated = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    comparison = comparison_line(results)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        # No network: nothing may load, not even a favicon.
        '<link rel="icon" href="data:,">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="meta">{len(results.run_ids)} run(s), {len(results.variants)} variant(s); '
        f"generated {_e(generated)}</p>",
        "<h2>Results</h2>",
        _table(head, rows, "results", numeric=frozenset({1, 2, 3})),
    ]
    if comparison:
        parts.append(f'<p class="comparison">{_e(comparison)}</p>')
    parts += ["<h2>Charts</h2>", '<div class="charts">',
              "<figure><figcaption>Pass rate (bar) with Wilson 95% interval</figcaption>",
              pass_rate_chart(results.variants, labels), "</figure>",
              "<figure><figcaption>Cost per variant run: mean (bar), median (tick), runs (dots)"
              "</figcaption>",
              metric_chart(results.variants, labels, "cost_usd", "Cost per variant run", "$", 4),
              "</figure>",
              "<figure><figcaption>Duration per variant run: mean (bar), median (tick), runs "
              "(dots)</figcaption>",
              metric_chart(results.variants, labels, "duration_seconds",
                           "Duration per variant run", "s", 1),
              "</figure></div>"]
    if trows:
        parts += ["<h2>Per test</h2>", _table(thead, trows, "tests", numeric=frozenset({2, 3, 4}))]
    parts += ["<h2>Runs</h2>", links_html,
              "<h2>Definitions</h2>", f'<p class="note">{_e(results.definitions)}</p>',
              "</body></html>"]
    return "\n".join(parts) + "\n"


def build_report(runs_dir: Path, selectors: list[str], output: Path,
                 experiment: str | None = None) -> Results:
    """Write the report for the selected runs to `output`; returns what it shows."""
    from .engine import connect, resolve_run_ids

    run_ids = resolve_run_ids(runs_dir, selectors)
    if experiment:
        from ..runs import read_run

        run_ids = [r for r in run_ids if read_run(runs_dir / r).experiment_id == experiment]
    output = output.resolve()
    con = connect(runs_dir, run_ids)
    try:
        results = aggregate(con, run_ids, experiment)
        links = _run_links(con, runs_dir, output.parent, run_ids)
    finally:
        con.close()
    # A page to open and pass around: readable as a file written plainly would be.
    write_atomic(output, render_html(results, links), mode=0o644)
    return results
