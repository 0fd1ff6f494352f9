"""A DuckDB connection whose views are the query tables of one run, several, or `all`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..runs import list_runs
from .tables import SCHEMAS, TABLES, derived_dir, ensure_derived

ALL = "all"


class RunNotFound(LookupError):
    pass


def resolve_run_ids(runs_dir: Path, selectors: Sequence[str]) -> list[str]:
    """Run ids for the selectors: `all` is every local run (newest first); otherwise each id
    must name a run folder. No selector means every run, as `all` does."""
    if not selectors or ALL in selectors:
        return [r.run_id for r in list_runs(runs_dir)]
    found, missing = [], []
    for sel in selectors:
        if (runs_dir / sel).is_dir() and not sel.startswith(".") and "/" not in sel:
            if sel not in found:
                found.append(sel)
        else:
            missing.append(sel)
    if missing:
        raise RunNotFound(f"no run {', '.join(missing)} under {runs_dir}")
    return found


def _quote(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _empty_view(table: str) -> str:
    cols = ", ".join(f"CAST(NULL AS {t}) AS \"{c}\"" for c, t in SCHEMAS[table].items())
    return f"SELECT {cols} WHERE false"


def connect(runs_dir: Path, run_ids: Sequence[str], *, database: str = ":memory:") -> Any:
    """An in-memory DuckDB connection with one view per table over the runs' cached Parquet
    (derived first where missing or stale). With no runs the views exist, empty."""
    import duckdb

    files: dict[str, list[Path]] = {t: [] for t in TABLES}
    for run_id in run_ids:
        for table, path in ensure_derived(runs_dir / run_id, derived_dir(runs_dir, run_id)).items():
            files[table].append(path)
    con = duckdb.connect(database)
    for table in TABLES:
        if files[table]:
            listing = ", ".join(_quote(p) for p in files[table])
            # union_by_name: caches from an older layout with a column more or fewer still read.
            source = f"SELECT * FROM read_parquet([{listing}], union_by_name=true)"
        else:
            source = _empty_view(table)
        con.execute(f'CREATE VIEW "{table}" AS {source}')
    return con


def plain_value(value: Any) -> Any:
    """A DuckDB value as JSON and CSV carry it: times in ISO 8601, decimals as floats,
    bytes in hex (the CLI's --json/--csv and the server's query answers)."""
    from datetime import date, datetime, time
    from decimal import Decimal

    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, (list, tuple)):
        return [plain_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain_value(v) for k, v in value.items()}
    return value
