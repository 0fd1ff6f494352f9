"""Plotly figures as plain data (traces and layout); the page draws them with the Plotly.js
bundled in the `plotly` wheel, served by the viewer or inlined into a report."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

PALETTE = ("#3b6fd6", "#d9822b", "#2e9d5b", "#9b4dca", "#c23b5b", "#2a9fb0", "#7a7f2a")
STATUS_COLORS = {"pass": "#2e9d5b", "fail": "#c23b5b", "error": "#8a4fb0",
                 "timeout": "#d9822b", "partial": "#9aa1ad", "running": "#3b6fd6"}

Figure = dict[str, Any]


def plotly_js_path() -> Path:
    """plotly.min.js from the installed `plotly` package's data (no import of plotly)."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or spec.origin is None:
        raise RuntimeError("the `plotly` package is missing: pip install pytest-axp again")
    path = Path(spec.origin).parent / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise RuntimeError(f"{path}: missing from the `plotly` package")
    return path


def plain(text: str) -> str:
    """A label as Plotly shows it literally: Plotly reads tags such as <a href> and <br> in
    text, so angle brackets become look-alikes (names come from experiment files)."""
    return str(text).replace("<", "\u2039").replace(">", "\u203a")


def _layout(height: int, xtitle: str, **extra: Any) -> dict[str, Any]:
    return {
        "height": height, "margin": {"l": 200, "r": 20, "t": 10, "b": 40},
        "xaxis": {"title": {"text": xtitle}, "zeroline": True, "automargin": True},
        "yaxis": {"automargin": True, "autorange": "reversed"},
        "showlegend": False, "font": {"size": 12},
        "paper_bgcolor": "rgba(0,0,0,0)", "plot_bgcolor": "#fafbfd", **extra,
    }


def pass_rate(labels: list[str], rates: list[float | None], lows: list[float],
              highs: list[float], ns: list[int]) -> Figure:
    """Pass rate per row as a bar, with its Wilson 95% interval as the error bar."""
    x = [r if r is not None else 0 for r in rates]
    labels = [plain(label) for label in labels]
    return {
        "data": [{
            "type": "bar", "orientation": "h", "y": labels, "x": x,
            "marker": {"color": [PALETTE[i % len(PALETTE)] for i in range(len(labels))]},
            "error_x": {"type": "data", "symmetric": False,
                        "array": [max(0.0, h - v) for h, v in zip(highs, x, strict=True)],
                        "arrayminus": [max(0.0, v - lo) for lo, v in zip(lows, x, strict=True)],
                        "color": "#1d2330", "thickness": 1.5, "width": 6},
            "text": [f"{v:.0%} (N={n})" if r is not None else f"no measured runs (N={n})"
                     for v, r, n in zip(x, rates, ns, strict=True)],
            "hovertemplate": "%{y}: %{text}<extra></extra>",
        }],
        "layout": _layout(60 + 36 * max(1, len(labels)), "pass rate (bar) and 95% interval",
                          xaxis={"range": [0, 1], "tickformat": ".0%",
                                 "title": {"text": "pass rate (bar) and 95% interval"}}),
    }


def metric(labels: list[str], means: list[float | None],
           runs: list[list[tuple[str, float]]], title: str) -> Figure:
    """Mean per row as a bar, each variant run as a dot."""
    labels = [plain(label) for label in labels]
    runs = [[(plain(name), v) for name, v in row] for row in runs]
    data: list[dict[str, Any]] = [{
        "type": "bar", "orientation": "h", "y": labels,
        "x": [m if m is not None else 0 for m in means], "opacity": 0.45,
        "marker": {"color": [PALETTE[i % len(PALETTE)] for i in range(len(labels))]},
        "hovertemplate": "%{y}: mean %{x}<extra></extra>",
    }]
    xs = [v for row in runs for _, v in row]
    ys = [label for label, row in zip(labels, runs, strict=True) for _ in row]
    names = [name for row in runs for name, _ in row]
    data.append({"type": "scatter", "mode": "markers", "x": xs, "y": ys, "text": names,
                 "marker": {"color": "#1d2330", "size": 7},
                 "hovertemplate": "%{text}: %{x}<extra></extra>"})
    return {"data": data, "layout": _layout(60 + 36 * max(1, len(labels)), title)}


def timeline(names: list[str], starts_ms: list[float], durations_ms: list[float | None],
             errors: list[bool]) -> Figure:
    """The harness spans as bars on a time axis (Gantt-like), one row per span."""
    dur = [d if d is not None else 0 for d in durations_ms]
    return {
        "data": [{
            "type": "bar", "orientation": "h",
            "y": [f"{i + 1}. {plain(n)}" for i, n in enumerate(names)],
            "x": [d / 1000 for d in dur], "base": [s / 1000 for s in starts_ms],
            "marker": {"color": ["#c23b5b" if e else PALETTE[0] for e in errors]},
            "hovertemplate": "%{y}: %{x:.3f} s<extra></extra>",
        }],
        "layout": _layout(60 + 22 * max(1, len(names)), "seconds since the variant run began",
                          bargap=0.25),
    }
