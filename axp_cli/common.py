"""Input checks shared by several command groups."""

from __future__ import annotations

import argparse
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


def _check_sources(variants, bindings=(), slots_bound_later: bool = False) -> None:
    """Host-path sources must exist and slots be bound: an input error, said up front."""
    from pytest_axp.staging import plan_entries

    bound = {name: path for kind, name, path in bindings if kind == "slot"}
    for v in variants:
        for p in plan_entries(v.files, Path(v.source_file).parent, bindings):
            where = p.entry.where or v.source_file
            if p.state == "SYMLINK":
                raise CliError(f"{where}: files: source {p.entry.source or p.source}: "
                               f"{p.problem}")
            if p.state == "MISSING" and p.entry.name in bound:
                raise CliError(f"--file {p.entry.name}=...: {p.source} does not exist")
            if p.state == "MISSING" and not p.entry.where:  # an ad-hoc --file SRC::DEST
                raise CliError(f"--file {p.source}::{p.entry.dest}: {p.source} does not exist")
            if p.state == "MISSING":
                raise CliError(f"{where}: files: source {p.entry.source} does not exist "
                               f"(looked for {p.source})")
            if p.state == "UNBOUND" and not slots_bound_later:
                raise CliError(f"{where}: files: slot {p.entry.name!r} has no source: bind it "
                               f"with --file {p.entry.name}=PATH")


def _check_agents(variants) -> None:
    """An agent name this installation has no adapter for: invalid input, said up front."""
    from pytest_axp.agents import AgentNotAvailable, get_agent

    for v in variants:
        try:
            get_agent(v.agent.name)
        except AgentNotAvailable as e:
            raise CliError(f"{v.source_file}: variant {v.id}: {e}") from None


def _secret_names(variants) -> list[str]:
    return list(dict.fromkeys(n for v in variants for n in v.secrets))
