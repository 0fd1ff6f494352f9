"""Input checks shared by several command groups."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import CliError

RUNS_DIR_HELP = "folder of run folders (default: $AXP_RUNS_DIR or ./.axp/runs)"


def _runs_dir(args: argparse.Namespace) -> Path:
    from pytest_axp.runs import resolve_runs_dir

    return resolve_runs_dir(args.runs_dir, Path.cwd())


def _load(path: str):
    from pytest_axp.experiment import ExperimentError, load_and_resolve

    if not Path(path).is_file():
        raise CliError(f"{path}: no such file")
    try:
        return load_and_resolve(path)
    except ExperimentError as e:
        raise CliError(str(e)) from None


def refuse(problems: list[str]) -> None:
    """Invalid input found before a run: every problem said, exit 2."""
    if problems:
        for problem in problems[:-1]:
            print(f"axp: {problem}", file=sys.stderr)
        raise CliError(problems[-1])


def _check_agents(variants) -> None:
    """An agent this installation has no adapter for, or one refusing its fields: invalid
    input, said up front (the agents are found as pytest finds them: agents.registry)."""
    from pytest_axp.agents import AgentNotAvailable
    from pytest_axp.agents.registry import installed_registry

    try:
        problems = installed_registry().problems(variants)
    except AgentNotAvailable as e:
        raise CliError(str(e)) from None
    if problems:
        raise CliError(problems[0])
