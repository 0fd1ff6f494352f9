"""Experiment errors: every problem names file:line:column and the field path."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ExperimentError(Exception):
    """An experiment file is invalid. `problems` lists every problem found, in file order."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        first = str(problems[0]) if problems else "invalid experiment"
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(first + more)


def format_path(loc: tuple) -> str:
    """('agents', 0, 'model') -> 'agents[0].model'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out
