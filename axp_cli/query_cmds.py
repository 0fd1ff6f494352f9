"""`axp local query`, `axp results` and `axp report`: reading runs back, with DuckDB."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path
from typing import Any

from .common import RUNS_DIR_HELP, _runs_dir
from .errors import CliError


def _error(message: str, code: int = 2) -> Exception:
    return CliError(message, code)


NO_RUNS = 1  # the exit code of every read command that finds nothing to read


def no_runs(runs_dir: Path, what: str = "runs") -> Exception:
    """The one message and exit code for "nothing here", naming the folder looked in."""
    hint = "" if runs_dir.is_dir() else " (no such folder)"
    return _error(f"no {what} under {runs_dir}{hint}; runs made elsewhere: --runs-dir DIR "
                  "or AXP_RUNS_DIR", NO_RUNS)


def _run_ids(args: argparse.Namespace, selectors: list[str]) -> list[str]:
    from pytest_axp.query.engine import RunNotFound, resolve_run_ids

    try:
        return resolve_run_ids(_runs_dir(args), selectors)
    except RunNotFound as e:
        raise _error(str(e)) from None


# -- axp local query -----------------------------------------------------------------------

def cmd_query(args: argparse.Namespace) -> int:
    import duckdb

    from pytest_axp.query.engine import connect, plain_value

    runs_dir = _runs_dir(args)
    run_ids = _run_ids(args, [args.run_id])
    if not run_ids:
        raise no_runs(runs_dir)
    try:
        con = connect(runs_dir, run_ids)
    except duckdb.Error as e:
        raise _error(f"could not derive the tables of {args.run_id}: {_one_line(e)}", 1) from None
    try:
        cur = con.execute(args.sql)
        if cur.description is None:  # a statement with no result set
            return 0
        names = [d[0] for d in cur.description]
        rows = [[plain_value(v) for v in row] for row in cur.fetchall()]
    except duckdb.Error as e:
        raise _error(f"query failed: {_one_line(e)}") from None
    finally:
        con.close()
    print_rows(names, rows, args.format)
    return 0


def print_rows(names: list[str], rows: list[list[Any]], fmt: str) -> None:
    """Rows as a table (the default), JSON or CSV; `axp query` prints the same way."""
    if fmt == "json":
        print(json.dumps([dict(zip(names, r, strict=True)) for r in rows], indent=2,
                         ensure_ascii=False, default=str))
    elif fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(names)
        w.writerows([[json.dumps(c) if isinstance(c, (list, dict)) else c for c in r]
                     for r in rows])
        sys.stdout.write(buf.getvalue())
    else:
        from pytest_axp.render.table import render

        def cell(c: Any) -> str:
            text = json.dumps(c, ensure_ascii=False) if isinstance(c, (list, dict)) else (
                "" if c is None else str(c))
            # One line per row: long or multi-line values are shortened for the terminal.
            text = text.replace("\n", "\\n")
            return text if len(text) <= 80 else text[:77] + "..."

        print(render(names, [[cell(c) for c in r] for r in rows]))
        print(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")


def _one_line(e: Exception) -> str:
    return " ".join(str(e).split())


# -- axp results ---------------------------------------------------------------------------

def cmd_results(args: argparse.Namespace) -> int:
    from pytest_axp.query import results as R

    run_ids = _run_ids(args, args.run_ids)
    res = R.load(_runs_dir(args), run_ids, args.experiment) if run_ids else None
    if res is None or not res.variants:
        what = f" of experiment {args.experiment}" if args.experiment else ""
        raise no_runs(_runs_dir(args), f"finished variant runs{what}")
    if args.format == "table":
        from pytest_axp.render.table import fitted, terminal_width

        width = terminal_width()
        text = R.render_text(res, table=lambda head, rows: fitted(head, rows, width,
                                                                  _results_priority))
        if width:  # the tables fit already; a long line of prose wraps
            import textwrap

            text = "\n".join(textwrap.fill(line, width) if len(line) > width else line
                              for line in text.splitlines())
    else:
        render = {"json": R.render_json, "markdown": R.render_markdown,
                  "csv": R.render_csv}[args.format]
        text = render(res)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0


# Which columns of `axp results` stay on a narrow terminal: lower numbers stay longer;
# a column not named here (a new count) ranks just after the verdict.
_RESULTS_COLUMNS = ("variant", "test", "n", "passed", "pass rate", "verdict", "95% ci", "cost",
                    "duration", "pass^k", "turns", "tokens in", "tokens out", "tool calls")


def _results_priority(header: str) -> float:
    h = header.lower()
    for rank, name in enumerate(_RESULTS_COLUMNS):
        if h == name or h.startswith(name + " "):
            return rank
    return _RESULTS_COLUMNS.index("verdict") + 0.5


# -- axp report ----------------------------------------------------------------------------

def cmd_report(args: argparse.Namespace) -> int:
    from pytest_axp.view.report import build_report

    run_ids = _run_ids(args, args.run_ids)
    if not run_ids:
        raise no_runs(_runs_dir(args))
    out = Path(args.output or "report.html")
    if out.exists() and not args.force:
        raise _error(f"{out}: already exists; keep it and write elsewhere with -o FILE, "
                     "or replace it with --force")
    try:
        res = build_report(_runs_dir(args), run_ids, out, args.experiment)
    except OSError as e:
        raise _error(f"{out}: {e.strerror or e}") from None
    print(f"report: {out.resolve()} ({len(res.run_ids)} run(s), {len(res.variants)} variant(s))")
    return 0


# -- parser --------------------------------------------------------------------------------

def add_format_options(parser: argparse.ArgumentParser, **helps: str) -> None:
    """One flag per output format (`--NAME`, its help), at most one given; `format` is
    "table" without any."""
    fmt = parser.add_mutually_exclusive_group()
    for name, text in helps.items():
        fmt.add_argument(f"--{name}", dest="format", action="store_const", const=name,
                         help=text)
    parser.set_defaults(format="table")


def add_row_format_options(parser: argparse.ArgumentParser) -> None:
    """--table (the default), --json, --csv: how `print_rows` prints a query's rows."""
    add_format_options(parser, table="print an aligned table (the default)",
                       json="print a JSON list of rows", csv="print CSV")


def register(sub: argparse._SubParsersAction, local_sub: argparse._SubParsersAction) -> None:
    """Add `local query` to `local_sub`, and `results` and `report` to `sub`."""
    q = local_sub.add_parser(
        "query", help="SQL over a run's tables (DuckDB)",
        description="Tables: runs, tests, agent_events, tool_calls, messages, harness_spans, "
                    "commands, api_requests, file_changes, artifacts, experiment_runs. "
                    "RUN_ID `all` queries every local run.")
    q.add_argument("run_id", metavar="RUN_ID", help="a run id, or `all`")
    q.add_argument("sql", metavar="SQL", help="one DuckDB SQL statement")
    add_row_format_options(q)
    q.add_argument("--runs-dir", default=None, metavar="DIR", help=RUNS_DIR_HELP)
    q.set_defaults(func=cmd_query)

    r = sub.add_parser("results", help="per-variant pass rates and costs across runs")
    r.add_argument("run_ids", nargs="*", metavar="RUN_ID", help="default: every local run")
    r.add_argument("--experiment", default=None, metavar="ID",
                   help="only runs of this experiment id")
    add_format_options(r, json="print JSON", markdown="print Markdown tables",
                       csv="print CSV, one row per variant and per test")
    r.add_argument("--runs-dir", default=None, metavar="DIR", help=RUNS_DIR_HELP)
    r.set_defaults(func=cmd_results)

    p = sub.add_parser("report", help="write a self-contained HTML report")
    p.add_argument("run_ids", nargs="*", metavar="RUN_ID", help="default: every local run")
    p.add_argument("-o", "--output", default=None, metavar="FILE",
                   help="where to write it (default: report.html; an existing file is kept "
                        "unless --force)")
    p.add_argument("--force", action="store_true", help="overwrite an existing FILE")
    p.add_argument("--experiment", default=None, metavar="ID",
                   help="only runs of this experiment id")
    p.add_argument("--runs-dir", default=None, metavar="DIR", help=RUNS_DIR_HELP)
    p.set_defaults(func=cmd_report)
