"""Progress of `axp local run`, read from the run folders as they are written.

Reading the folders (rather than hooking the workers) works the same with and without
xdist and costs the run nothing. On a terminal: a live table (rich); otherwise one plain
line per change, which is what CI logs want.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

from pytest_axp.record.commands import phase_under_way
from pytest_axp.record.jsonio import read_json
from pytest_axp.record.layout import RunPaths

if TYPE_CHECKING:
    from rich.live import Live

@dataclass
class Row:
    run_id: str
    variant: str
    phase: str = "queued"
    status: str = ""
    cost: float | None = None
    started: float | None = None
    duration: float | None = None

    def elapsed(self, now: float) -> str:
        if self.duration is not None:
            return f"{self.duration:.1f}s"
        return f"{now - self.started:.1f}s" if self.started else ""


class ProgressWatcher(threading.Thread):
    def __init__(self, runs: list[RunPaths], variant_ids: list[str], *,
                 out: TextIO | None = None, live: bool | None = None,
                 interval: float = 0.25) -> None:
        super().__init__(daemon=True, name="axp-progress")
        self.out = out or sys.stdout
        self.live = self.out.isatty() if live is None else live
        self.rows = {(r.run_id, v): Row(r.run_id, v) for r in runs for v in variant_ids}
        self.runs = {r.run_id: r for r in runs}
        self.interval = interval
        self._halt = threading.Event()
        self._display: Live | None = None

    def poll(self) -> list[Row]:
        """Refresh every row from disk; the rows that changed."""
        changed = []
        now = time.time()
        for (run_id, vid), row in self.rows.items():
            if row.status:
                continue
            paths = self.runs[run_id].results(vid)
            before = (row.phase, row.status)
            summary = read_json(paths.run_summary)
            if isinstance(summary, dict) and summary.get("status"):
                row.status = summary["status"]
                row.phase = "done"
                row.duration = summary.get("duration_ms", 0) / 1000
                row.cost = (summary.get("agent") or {}).get("cost_usd")
            elif paths.root.is_dir():
                row.started = row.started or now
                row.phase = phase_under_way(paths.commands_index) or "starting"
            if (row.phase, row.status) != before:
                changed.append(row)
        return changed

    def _label(self, row: Row) -> str:
        # The run id is said once, at the start; repeats are told apart by their number.
        if len(self.runs) == 1:
            return row.variant
        return f"{row.variant} (repeat {list(self.runs).index(row.run_id) + 1})"

    def _line(self, row: Row) -> str:
        if row.status:
            cost = f", ${row.cost:.4f}" if row.cost else ""
            return f"progress: {self._label(row)}: {row.status} in {row.duration:.1f}s{cost}"
        return f"progress: {self._label(row)}: {row.phase}"

    def _table(self):
        from rich.table import Table

        now = time.time()
        title = "axp local run " + (next(iter(self.runs)) if len(self.runs) == 1
                                    else f"({len(self.runs)} repeats)")
        table = Table(title=title, expand=False)
        for col in ("variant", "phase", "elapsed", "status", "cost"):
            table.add_column(col)
        for row in self.rows.values():
            table.add_row(self._label(row), row.phase, row.elapsed(now), row.status,
                          f"${row.cost:.4f}" if row.cost else "")
        return table

    def run(self) -> None:
        if self.live:
            from rich.console import Console
            from rich.live import Live

            # Live must not swap sys.stdout: axp points it at pytest's report meanwhile, and
            # Live would restore the swapped one when it stops, hiding axp's final table.
            with Live(self._table(), console=Console(file=self.out), refresh_per_second=4,
                      transient=True, redirect_stdout=False, redirect_stderr=False) as live:
                self._display = live
                while not self._halt.wait(self.interval):
                    self.poll()
                    live.update(self._table())
            return
        while not self._halt.wait(self.interval):
            self._print(self.poll())

    def _print(self, rows: list[Row]) -> None:
        for row in rows:
            print(self._line(row), file=self.out, flush=True)

    def stop(self) -> None:
        self._halt.set()
        if self.ident is not None:  # never started when the run failed before it began
            self.join(timeout=5)
        if not self.live:
            self._print(self.poll())  # what finished since the last look
