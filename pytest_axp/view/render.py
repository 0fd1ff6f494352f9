"""The one rendering path: Jinja2 templates (autoescaped) for the viewer's pages and the
report file alike."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
STATIC = HERE / "static"

# No inline script or style may run: the trace text shown is the agent's, and hostile.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def _number(x: Any) -> float | None:
    """A value of a record as a number, or None (missing, undefined or not a number: the
    records are read as found)."""
    from jinja2 import Undefined

    if isinstance(x, (bool, Undefined)):
        return None
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def _duration(seconds: Any) -> str:
    s = _number(seconds)
    if s is None:
        return "-"
    if s < 60:
        return f"{s:.1f}s"
    m, sec = divmod(round(s), 60)
    return f"{m}m{sec:02d}s" if m < 60 else f"{m // 60}h{m % 60:02d}m"


def _ms(ms: Any) -> str:
    x = _number(ms)
    return "-" if x is None else (f"{x:.0f} ms" if x < 1000 else _duration(x / 1000))


def _money(x: Any) -> str:
    v = _number(x)
    return "-" if v is None else f"${v:.4f}"


def _pct(x: Any) -> str:
    v = _number(x)
    return "-" if v is None else f"{v:.0%}"


def _num(x: Any, digits: int = 1) -> str:
    v = _number(x)
    if v is None:
        return "-"
    return f"{v:,.{digits}f}" if digits else f"{round(v):,}"


def _when(epoch: Any) -> str:
    v = _number(epoch)
    if v is None:
        return "-"
    try:
        return datetime.fromtimestamp(v, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, OSError, ValueError):
        return "-"


def _pvalue(p: Any) -> str:
    v = _number(p)
    return "-" if v is None else f"{v:.3g}"


@cache
def environment() -> Any:
    from jinja2 import ChainableUndefined, Environment, FileSystemLoader

    # Records are read as found (an old or cut-short summary lacks fields): a missing one
    # renders empty rather than failing the page.
    env = Environment(loader=FileSystemLoader(str(HERE / "templates")), autoescape=True,
                      undefined=ChainableUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(duration=_duration, ms=_ms, money=_money, pct=_pct, num=_num,
                       when=_when, pvalue=_pvalue)
    return env


def render(template: str, **context: Any) -> str:
    context.setdefault("inline_assets", None)
    context.setdefault("style_placeholders", style_placeholders())
    return str(environment().get_template(template).render(**context))


def figure_json(figure: dict[str, Any]) -> Any:
    """A figure as JSON for a <script type="application/json"> block, where HTML entities
    are not decoded: `<`, `>` and `&` become JSON escapes instead, so no text inside can
    close the block, and the result is marked as already safe for the template."""
    from markupsafe import Markup

    return Markup(json.dumps(figure, ensure_ascii=False).replace("<", "\\u003c")
                  .replace(">", "\\u003e").replace("&", "\\u0026"))


def static_text(name: str) -> str:
    if name == "plotly.min.js":
        from .charts import plotly_js_path

        return plotly_js_path().read_text(encoding="utf-8")
    return (STATIC / name).read_text(encoding="utf-8")


@cache
def style_placeholders() -> tuple[str, ...]:
    """Ids of the <style> elements Plotly.js adds at load unless one with the id exists
    (a map library's CSS, unused here): an empty element with each id keeps them out, so
    the page's CSP has nothing to block."""
    import re

    from .charts import plotly_js_path

    text = plotly_js_path().read_text(encoding="utf-8")
    return tuple(dict.fromkeys(re.findall(
        r'getElementById\("([0-9a-f]{16,64})"\)\)\{var [\w$]+=document\.createElement'
        r'\("style"\)', text)))


def _hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def inline_assets() -> dict[str, Any]:
    """For a report file: the same CSS and scripts inline, allowed by their hashes only."""
    from markupsafe import Markup

    scripts = [static_text("plotly.min.js"), static_text("app.js")]
    styles = [static_text("plotly.css"), static_text("app.css")]
    for text in scripts + styles:
        low = text.lower()
        if "</script" in low or "</style" in low or "<!--" in low:  # would end it early
            raise RuntimeError("a bundled asset cannot be inlined: it would close its element")
    csp = ("default-src 'none'; img-src data:; base-uri 'none'; form-action 'none'; "
           f"script-src {' '.join(_hash(s) for s in scripts)}; "
           f"style-src {' '.join(_hash(s) for s in styles)}")
    # Our own files, not data: inlined as they are, so their hashes match.
    return {"scripts": [Markup(s) for s in scripts], "styles": [Markup(s) for s in styles],
            "csp": csp}
