"""The viewer's ASGI app (Starlette): pages over the run folders, fragments for the live
parts, files in pages. Read-only: nothing under the runs folder is written but the derived
query cache beside it."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from itertools import combinations
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from ..record.jsonio import read_json
from ..record.layout import RunPaths
from ..runs import read_run
from . import charts, data
from .render import CSP, figure_json, render, static_text

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
STATUSES = ("pass", "fail", "timeout", "error", "partial", "running")
PAGE_ROWS = 200  # runs on the front page before "more"
_STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
_STATIC_FILES = ("app.css", "app.js", "plotly.css", "plotly.min.js")


class NotFound(Exception):
    pass


def _headers(extra: dict[str, str] | None = None) -> dict[str, str]:
    h = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
         "Referrer-Policy": "no-referrer", "Cache-Control": "no-store",
         "X-Frame-Options": "DENY"}
    h.update(extra or {})
    return h


class Viewer:
    """The pages, as plain methods from request values to HTML (the routes wrap them)."""

    def __init__(self, runs_dir: Path, run_ids: list[str] | None = None) -> None:
        self.runs_dir = runs_dir
        self.only = list(run_ids or [])
        self.rows = data.RowCache()

    # -- lookups ----------------------------------------------------------------------------

    def run(self, run_id: str) -> RunPaths:
        if not _ID.match(run_id) or not (self.runs_dir / run_id).is_dir():
            raise NotFound(f"no run {run_id} under {self.runs_dir}")
        return RunPaths(self.runs_dir / run_id)

    def variant(self, run_id: str, vid: str) -> RunPaths:
        run = self.run(run_id)
        if not _ID.match(vid) or vid not in data.variants_of(run):
            raise NotFound(f"run {run_id} has no variant {vid}")
        return run

    # -- /  -------------------------------------------------------------------------------

    def index_rows(self, experiment: str, status: str) -> tuple[list[data.RunListRow], int,
                                                                 list[str]]:
        rows = data.list_rows(self.runs_dir, self.only or None, self.rows)
        experiments = sorted({r.experiment_id for r in rows})
        total = len(rows)
        if experiment:
            rows = [r for r in rows if r.experiment_id == experiment]
        if status:
            rows = [r for r in rows if r.status == status]
        return rows, total, experiments

    def index_context(self, experiment: str, status: str, shown: int = PAGE_ROWS
                      ) -> dict[str, Any]:
        rows, total, experiments = self.index_rows(experiment, status)
        shown = max(PAGE_ROWS, shown)
        params = {k: v for k, v in (("experiment", experiment), ("status", status)) if v}
        more = (("/?" + urlencode({**params, "shown": str(shown + PAGE_ROWS)}))
                if len(rows) > shown else "")
        matching = len(rows)
        rows = rows[:shown]
        if shown != PAGE_ROWS:
            params["shown"] = str(shown)
        q = urlencode(params)
        return {"rows": rows, "total": total, "matching": matching, "more": more,
                "experiments": experiments,
                "experiment": experiment, "status": status, "statuses": STATUSES,
                "runs_dir": str(self.runs_dir), "sig": _sig(rows),
                "live_src": "/fragments/runs" + (f"?{q}" if q else "")}

    # -- /runs/<run-id> ---------------------------------------------------------------------

    def run_context(self, run_id: str) -> dict[str, Any]:
        run = self.run(run_id)
        info = read_run(run.root)
        set_ids = data.run_set(self.runs_dir, run_id)
        m = data.matrix(self.runs_dir, set_ids)
        ctx: dict[str, Any] = {
            "run_id": run_id, "experiment_id": info.experiment_id, "set_ids": set_ids,
            "matrix": m, "partial": not run.index.is_file(), "sig": m.signature(),
            "live_src": f"/fragments/run/{quote(run_id)}", "results": [], "figures": [],
            "pairs": []}
        if any(c.status in data.FINAL for cells in m.cells.values() for c in cells):
            ctx["results"], ctx["figures"] = self._stats(set_ids)
        ctx["pairs"] = [(a, b, _compare_href([f"{r}/{a}" for r in set_ids],
                                             [f"{r}/{b}" for r in set_ids]))
                        for a, b in combinations(m.variants, 2)][:12]
        return ctx

    def _stats(self, run_ids: list[str]) -> tuple[list[dict[str, Any]], list[Any]]:
        """Per-variant statistics through the DuckDB tables (query.results)."""
        from ..query import results as R

        res = R.load(self.runs_dir, run_ids)
        return stats_rows(res), result_figures(res, "run")

    # -- /runs/<run-id>/<variant-id> -----------------------------------------------------

    def variant_context(self, run_id: str, vid: str) -> dict[str, Any]:
        run = self.variant(run_id, vid)
        live = not run.index.is_file() and data.is_live(self.runs_dir, run_id)
        summary = read_json(run.results(vid).run_summary)
        summary = summary if isinstance(summary, dict) else {}
        cell = data.cell_of(run, vid, None, live)
        spans = data.spans(run, vid)
        trace = data.trace_path(run, vid)
        page = data.trace_page(trace)
        error = summary.get("error") if isinstance(summary.get("error"), dict) else None
        return {
            "run_id": run_id, "vid": vid, "cell": cell, "summary": summary,
            "agent": summary.get("agent") if isinstance(summary.get("agent"), dict) else {},
            "error": error, "spans": spans,
            "timeline": figure_json(charts.timeline(
                [s.label for s in spans], [s.start_ms for s in spans],
                [s.duration_ms for s in spans], [s.error for s in spans])),
            "page": page, "trace_size": page.size, "trace_file": trace.name,
            "diffs": data.diff_points(run, vid), "tests": data.tests(run, vid, summary),
            "api": data.api_requests(run, vid), "commands": data.commands(run, vid),
            "base": f"/runs/{quote(run_id)}/{quote(vid)}",
        }

    def steps_context(self, run_id: str, vid: str, offset: int,
                      t0: int | None) -> dict[str, Any]:
        run = self.variant(run_id, vid)
        page = data.trace_page(data.trace_path(run, vid), offset, t0=t0)
        return {"page": page, "base": f"/runs/{quote(run_id)}/{quote(vid)}"}

    def log_context(self, run_id: str, vid: str, rel: str, offset: int) -> dict[str, Any]:
        run = self.variant(run_id, vid)
        try:
            path = data.variant_file(run, vid, rel)
        except data.BadPath:
            raise NotFound(f"no file {rel} in {run_id}/{vid}") from None
        chunk, size = data.file_page(path, offset)
        offset = min(max(0, offset), size)
        return {"run_id": run_id, "vid": vid, "path": rel, "offset": offset,
                "end": offset + len(chunk), "size": size,
                "prev": max(0, offset - data.FILE_PAGE_BYTES),
                "text": chunk.decode("utf-8", errors="replace"),
                "base": f"/runs/{quote(run_id)}/{quote(vid)}"}

    # -- /compare ---------------------------------------------------------------------------

    def compare_context(self, a_text: str, b_text: str) -> dict[str, Any]:
        ctx: dict[str, Any] = {"a_text": a_text, "b_text": b_text, "sides": [],
                               "problem": "", "figures": [], "trajectories": [],
                               "per_variant": [], "p_value": None, "verdict": ""}
        if not a_text or not b_text:
            ctx["problem"] = "" if not (a_text or b_text) else "give both A and B"
            return ctx
        sides = []
        for name, text in (("A", a_text), ("B", b_text)):
            sel = self._selection(text)
            sides.append(side_stats(name, text, sel))
        a, b = sides
        from ..query.stats import fisher_exact

        p = fisher_exact([[a["passed"], a["n"] - a["passed"]], [b["passed"], b["n"] - b["passed"]]])
        ctx.update(sides=sides, p_value=p, verdict=compare_verdict(a, b, p))
        ctx["figures"] = compare_figures(sides)
        whole = all("/" not in s for t in (a_text, b_text) for s in _split(t))
        if whole:
            ctx["per_variant"] = per_variant(a["cells"], b["cells"])
        if len(a["cells"]) == 1 and len(b["cells"]) == 1:
            for s in sides:
                c = s["cells"][0]
                run = RunPaths(self.runs_dir / c.run_id)
                page = data.trace_page(data.trace_path(run, c.variant_id))
                ctx["trajectories"].append(
                    (s, page, f"/runs/{quote(c.run_id)}/{quote(c.variant_id)}"))
        return ctx

    def _selection(self, text: str) -> list[data.Cell]:
        cells = []
        for sel in _split(text):
            rid, _, vid = sel.partition("/")
            run = self.run(rid)
            live = not run.index.is_file() and data.is_live(self.runs_dir, rid)
            vids = [vid] if vid else data.variants_of(run)
            for v in vids:
                self.variant(rid, v)
                cells.append(data.cell_of(run, v, None, live))
        return cells


# -- pure helpers ---------------------------------------------------------------------------

def _split(text: str) -> list[str]:
    return [s.strip().strip("/") for s in text.split(",") if s.strip().strip("/")]


def _sig(rows: list[data.RunListRow]) -> str:
    return data.digest([[r.run_id, r.status, r.counts] for r in rows])


def _compare_href(a: list[str], b: list[str]) -> str:
    return "/compare?" + urlencode({"a": ",".join(a), "b": ",".join(b)})


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def side_stats(name: str, label: str, cells: list[data.Cell]) -> dict[str, Any]:
    from ..query.results import rate_counts
    from ..query.stats import wilson_interval

    passed, n, errors = rate_counts([c.status for c in cells])
    low, high = wilson_interval(passed, n)
    final = [c for c in cells if c.status in data.FINAL]
    costs = [c.cost_usd for c in final if c.cost_usd is not None]
    return {
        "name": name, "label": label, "cells": cells, "passed": passed, "n": n,
        "errors": errors, "rate": passed / n if n else None, "low": low, "high": high,
        "cost_total": sum(costs) if costs else None, "cost_mean": _mean(costs),
        "in_mean": _mean([float(c.input_tokens) for c in final if c.input_tokens is not None]),
        "out_mean": _mean([float(c.output_tokens) for c in final
                           if c.output_tokens is not None]),
        "turns_mean": _mean([float(c.turns) for c in final if c.turns is not None]),
        "duration_mean": _mean([c.duration_seconds for c in final
                                if c.duration_seconds is not None]),
    }


def compare_verdict(a: dict[str, Any], b: dict[str, Any], p: float) -> str:
    from ..query.results import ALPHA, MIN_N

    if a["n"] < MIN_N or b["n"] < MIN_N:
        return (f"Too few measured variant runs to tell (fewer than {MIN_N} on a side); "
                "run more repeats.")
    if p < ALPHA:
        better = a if (a["rate"] or 0) > (b["rate"] or 0) else b
        return f"{better['name']} passes more often; significant at {ALPHA}."
    return f"No significant difference in pass rate at {ALPHA}."


def per_variant(a: list[data.Cell], b: list[data.Cell]) -> list[dict[str, Any]]:
    from ..query.results import rate_counts
    from ..query.stats import fisher_exact

    out = []
    for vid in sorted({c.variant_id for c in a} & {c.variant_id for c in b}):
        ap, an, _ = rate_counts([c.status for c in a if c.variant_id == vid])
        bp, bn, _ = rate_counts([c.status for c in b if c.variant_id == vid])
        out.append({"vid": vid, "a_passed": ap, "a_n": an, "b_passed": bp, "b_n": bn,
                    "p": fisher_exact([[ap, an - ap], [bp, bn - bp]])})
    return out


def compare_figures(sides: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    labels = [f"{s['name']}: {s['label']}"[:60] for s in sides]
    rate = charts.pass_rate(labels, [s["rate"] for s in sides], [s["low"] for s in sides],
                            [s["high"] for s in sides], [s["n"] for s in sides])
    cost = charts.metric(labels, [s["cost_mean"] for s in sides],
                         [[(f"{c.run_id}/{c.variant_id}", c.cost_usd) for c in s["cells"]
                           if c.cost_usd is not None and c.status in data.FINAL]
                          for s in sides], "cost per variant run ($)")
    return [("fig-cmp-rate", figure_json(rate), "Pass rate with Wilson 95% interval"),
            ("fig-cmp-cost", figure_json(cost), "Cost per variant run: mean (bar), runs (dots)")]


def stats_rows(res: Any) -> list[dict[str, Any]]:
    from ..query.results import _labels

    labels = _labels(res)
    return [{"label": labels[v.key], "n": v.n, "passed": v.passed, "pass_rate": v.pass_rate,
             "ci_low": v.ci_low, "ci_high": v.ci_high, "errors": v.errors,
             # results' `unfinished` counts errors too; they have their own column here
             "unfinished": max(0, v.unfinished - v.errors), "metrics": v.metrics,
             "verdict": v.verdict}
            for v in res.variants]


def result_figures(res: Any, prefix: str) -> list[tuple[str, str, str]]:
    """The charts of a set of results: pass rate, cost and duration per variant."""
    from ..query.results import _labels

    labels = _labels(res)
    vs = res.variants
    names = [labels[v.key] for v in vs]
    final = ("pass", "fail", "timeout", "error")

    def runs(metric: str) -> list[list[tuple[str, float]]]:
        return [[(str(r["run_id"]), float(r[metric])) for r in v.runs
                 if r.get(metric) is not None and r.get("status") in final] for v in vs]

    return [
        (f"fig-{prefix}-rate", figure_json(charts.pass_rate(
            names, [v.pass_rate for v in vs], [v.ci_low for v in vs],
            [v.ci_high for v in vs], [v.n for v in vs])),
         "Pass rate (bar) with Wilson 95% interval"),
        (f"fig-{prefix}-cost", figure_json(charts.metric(
            names, [v.metrics["cost_usd"].mean for v in vs], runs("cost_usd"),
            "cost per variant run ($)")), "Cost per variant run: mean (bar), runs (dots)"),
        (f"fig-{prefix}-duration", figure_json(charts.metric(
            names, [v.metrics["duration_seconds"].mean for v in vs], runs("duration_seconds"),
            "duration per variant run (s)")),
         "Duration per variant run: mean (bar), runs (dots)"),
    ]


# -- the ASGI app ---------------------------------------------------------------------------

def create_app(runs_dir: Path, run_ids: list[str] | None = None,
               allowed_hosts: list[str] | None = None) -> Any:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.trustedhost import TrustedHostMiddleware
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, Response
    from starlette.routing import Route

    viewer = Viewer(runs_dir, run_ids)

    def page(template: str, http_status: int = 200, headers: dict[str, str] | None = None,
             **ctx: Any) -> Response:
        return HTMLResponse(render(template, **ctx), status_code=http_status,
                            headers=_headers(headers))

    def guarded(fn: Callable[[Request], Awaitable[Response]]) -> Any:
        async def endpoint(request: Request) -> Response:
            try:
                return await fn(request)
            except NotFound as e:
                return page("error.html", 404, code=404, message=str(e))
            except ValueError as e:
                return page("error.html", 400, code=400, message=f"bad request: {e}")
        return endpoint

    def _int(request: Request, name: str) -> int | None:
        raw = request.query_params.get(name)
        return None if raw in (None, "") else int(str(raw))

    async def index(request: Request) -> Response:
        q = request.query_params
        return page("index.html", **viewer.index_context(
            q.get("experiment", ""), q.get("status", ""), _int(request, "shown") or 0))

    async def runs_fragment(request: Request) -> Response:
        q = request.query_params
        ctx = viewer.index_context(q.get("experiment", ""), q.get("status", ""),
                                   _int(request, "shown") or 0)
        if q.get("sig") == ctx["sig"]:
            return Response(status_code=204, headers=_headers({"X-Live": "1"}))
        return page("_runs_table.html", headers={"X-Signature": ctx["sig"], "X-Live": "1"},
                    **ctx)

    async def run_page(request: Request) -> Response:
        return page("run.html", **viewer.run_context(request.path_params["run_id"]))

    async def run_fragment(request: Request) -> Response:
        rid = request.path_params["run_id"]
        viewer.run(rid)
        m = data.matrix(viewer.runs_dir, data.run_set(viewer.runs_dir, rid))
        live = "1" if m.live else "0"
        if request.query_params.get("sig") == m.signature():
            return Response(status_code=204, headers=_headers({"X-Live": live}))
        ctx = viewer.run_context(rid)
        return page("_run_body.html", headers={"X-Signature": ctx["sig"], "X-Live": live},
                    **ctx)

    async def variant_page(request: Request) -> Response:
        p = request.path_params
        return page("variant.html", **viewer.variant_context(p["run_id"], p["variant_id"]))

    async def steps(request: Request) -> Response:
        p = request.path_params
        ctx = viewer.steps_context(p["run_id"], p["variant_id"], _int(request, "offset") or 0,
                                   _int(request, "t0"))
        return page("_steps.html", **ctx)

    async def log(request: Request) -> Response:
        p = request.path_params
        ctx = viewer.log_context(p["run_id"], p["variant_id"],
                                 request.query_params.get("path", ""),
                                 _int(request, "offset") or 0)
        return page("log.html", **ctx)

    async def raw(request: Request) -> Response:
        p = request.path_params
        run = viewer.variant(p["run_id"], p["variant_id"])
        rel = request.query_params.get("path", "")
        try:
            path = data.variant_file(run, p["variant_id"], rel)
        except data.BadPath:
            raise NotFound(f"no file {rel}") from None
        from starlette.responses import FileResponse

        # Served as text whatever it holds: never rendered by the browser as a page.
        return FileResponse(path, media_type="text/plain; charset=utf-8",
                            headers=_headers({"Content-Disposition": "inline"}))

    async def compare(request: Request) -> Response:
        q = request.query_params
        return page("compare.html", **viewer.compare_context(q.get("a", ""), q.get("b", "")))

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in _STATIC_FILES:
            raise NotFound(f"no static file {name}")
        return Response(static_text(name), media_type=_STATIC_TYPES[Path(name).suffix],
                        headers=_headers({"Cache-Control": "max-age=3600"}))

    async def health(request: Request) -> Response:
        return Response(json.dumps({"runs_dir": str(runs_dir)}), media_type="application/json",
                        headers=_headers())

    routes = [
        Route("/", guarded(index)),
        Route("/fragments/runs", guarded(runs_fragment)),
        Route("/compare", guarded(compare)),
        Route("/static/{name}", guarded(static)),
        Route("/api/health", guarded(health)),
        Route("/runs/{run_id}", guarded(run_page)),
        Route("/fragments/run/{run_id}", guarded(run_fragment)),
        Route("/runs/{run_id}/{variant_id}", guarded(variant_page)),
        Route("/runs/{run_id}/{variant_id}/steps", guarded(steps)),
        Route("/runs/{run_id}/{variant_id}/log", guarded(log)),
        Route("/runs/{run_id}/{variant_id}/raw", guarded(raw)),
    ]
    middleware = []
    if allowed_hosts:
        # A page on another site cannot reach this one by a DNS name pointed at 127.0.0.1.
        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts))

    async def not_found(request: Request, exc: Exception) -> Response:
        return page("error.html", 404, code=404, message=f"no page {request.url.path}")

    return Starlette(routes=routes, middleware=middleware, exception_handlers={404: not_found})
