"""What a run will need, checked before anything starts: file bindings, host-path sources,
secret values, and the dry-run plan built from them. Pure of output: the CLI renders it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .agents.registry import AgentRegistry
    from .experiment import ResolvedVariant

Bindings = tuple[tuple[str, str, str], ...]


class PlanError(ValueError):
    """Invalid input found before a run (a bad --file, an unreadable --env-file)."""


def secret_names(variants: Sequence[ResolvedVariant]) -> list[str]:
    """Every declared secret of these variants, once, in declaration order."""
    return list(dict.fromkeys(n for v in variants for n in v.secrets))


def bind_files(items: Sequence[str], cwd: Path,
               variants: Sequence[ResolvedVariant]) -> Bindings:
    """--file arguments as bindings; PlanError when one is malformed or names no entry."""
    from .session import parse_file_bindings
    from .staging import unknown_bindings

    try:
        bindings = parse_file_bindings(list(items), cwd)
    except ValueError as e:
        raise PlanError(str(e)) from None
    files = [f for v in variants for f in v.files]
    unknown = unknown_bindings(files, bindings)
    if unknown:
        named = sorted({f.name for f in files if f.name})
        raise PlanError(f"--file {unknown[0]}=...: no file entry is named {unknown[0]!r} "
                        f"(named entries: {', '.join(named) or 'none'})")
    return bindings


def source_problems(variants: Sequence[ResolvedVariant], bindings: Bindings = (),
                    slots_bound_later: bool = False) -> list[str]:
    """One line per host-path source that is missing or goes through a symlink, and per
    slot left unbound (unless slots are bound later, at run time); each said once."""
    from .gitsource import commit_problem
    from .staging import plan_entries

    bound = {name for kind, name, _ in bindings if kind == "slot"}
    problems: list[str] = []
    for v in variants:
        for p in plan_entries(v.files, Path(v.source_file).parent, bindings):
            where = p.entry.where or v.source_file
            if p.state == "SYMLINK":
                problems.append(f"{where}: files: source {p.entry.source or p.source}: "
                                f"{p.problem}")
            elif p.state == "MISSING" and p.entry.name in bound:
                problems.append(f"--file {p.entry.name}=...: {p.source} does not exist")
            elif p.state == "MISSING" and not p.entry.where:  # an ad-hoc --file SRC::DEST
                problems.append(f"--file {p.source}::{p.entry.dest}: {p.source} does not "
                                "exist")
            elif p.state == "MISSING":
                problems.append(f"{where}: files: source {p.entry.source} does not exist "
                                f"(looked for {p.source})")
            elif p.state == "UNBOUND" and not slots_bound_later:
                problems.append(f"{where}: files: slot {p.entry.name!r} has no source: bind "
                                f"it with --file {p.entry.name}=PATH")
            elif p.state == "OK" and p.source and getattr(p.entry, "pin", None) is not None:
                problem = commit_problem(p.source, p.entry.pin)
                if problem is not None:
                    problems.append(problem)
    return list(dict.fromkeys(problems))


def _secret_values(names: Sequence[str], cwd: Path, env_files: Sequence[str | Path],
                   env_args: Sequence[str],
                   host_env: Mapping[str, str] | None) -> dict[str, str]:
    from .secrets import EnvError, resolve_values

    if not names:
        return {}
    try:
        return resolve_values(names, cwd=cwd, env_files=[Path(f) for f in env_files],
                              host_env=host_env, env_args=list(env_args))
    except EnvError as e:
        raise PlanError(str(e)) from None


def secret_problems(variants: Sequence[ResolvedVariant], cwd: Path,
                    env_files: Sequence[str | Path] = (),
                    env_args: Sequence[str] = (),
                    host_env: Mapping[str, str] | None = None) -> list[str]:
    """A value too short to redact safely, said before any container (a missing value is
    the variant's own error, reported in its summary). PlanError for a bad --env-file."""
    from .secrets import too_short, too_short_message

    values = _secret_values(secret_names(variants), cwd, env_files, env_args, host_env)
    return [too_short_message(n, values[n]) for n in too_short(values)]


@dataclass(frozen=True)
class StagingRow:
    name: str                 # the entry's name ("" when it has none)
    source: str               # the host path or URL ("" when unbound)
    dest: str
    files: int | None         # counted for sources that exist, else None
    size_bytes: int | None
    state: str                # OK, MISSING, UNBOUND, URL, SYMLINK


@dataclass(frozen=True)
class SecretRow:
    name: str
    state: str                # "set", "missing" or "too short"


@dataclass(frozen=True)
class ModelRow:
    agent: str
    api: str
    state: str                # "scripted", "live" or "none" (no key and no script)
    reason: str = ""


@dataclass
class RunPlan:
    """A run as it would happen, written nowhere. `problems` are invalid input (exit 2);
    `missing` is what a run would lack (exit 1)."""
    experiment_id: str
    variants: list[ResolvedVariant]
    repeat: int
    image: str | None
    staging: list[StagingRow] = field(default_factory=list)
    secrets: list[SecretRow] = field(default_factory=list)
    models: list[ModelRow] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def sandbox_runs(self) -> int:
        return len(self.variants) * self.repeat


def dry_run_plan(variants: Sequence[ResolvedVariant], *, bindings: Bindings = (),
                 repeat: int = 1, image: str | None = None, cwd: Path,
                 env_files: Sequence[str | Path] = (),
                 env_args: Sequence[str] = (),
                 host_env: Mapping[str, str] | None = None,
                 scripted: bool = False, agents: AgentRegistry | None = None) -> RunPlan:
    """Variants, staging (with file counts and sizes of the sources that exist), secrets,
    where each agent's model answers come from (`scripted`: a --model-script is given) and
    what is missing. Sources are read to count them; nothing is written or held."""
    from .gitsource import checked_out
    from .secrets import too_short
    from .staging import StagingError, build_entry, plan_entries

    plan = RunPlan(experiment_id=variants[0].experiment_id if variants else "",
                   variants=list(variants), repeat=repeat, image=image)
    seen: set[tuple[str | None, str | None, str, str | None]] = set()
    for v in variants:
        for p in plan_entries(v.files, Path(v.source_file).parent, bindings):
            pin = getattr(p.entry, "pin", None)
            key = (p.entry.name, p.source, p.entry.dest, pin.commit if pin else None)
            if key in seen:
                continue
            seen.add(key)
            files = size = None
            if p.state == "SYMLINK":
                plan.problems.append(f"{p.entry.where or v.source_file}: files: source "
                                     f"{p.entry.source or p.source}: {p.problem}")
            elif p.state == "OK" and pin is not None:
                try:  # a temporary checkout, gone once counted
                    with checked_out(p.source or "", pin) as (path, _):
                        staged = build_entry(path, p.entry.dest)
                    files, size = staged.file_count, staged.size_bytes
                except StagingError as e:
                    plan.problems.append(str(e))
                except OSError:
                    pass
            elif p.state == "OK":
                try:  # counted and hashed as it streams: nothing is held or written
                    staged = build_entry(Path(p.source or ""), p.entry.dest)
                    files, size = staged.file_count, staged.size_bytes
                except (StagingError, OSError):
                    pass
            elif p.state in ("MISSING", "UNBOUND"):
                plan.missing.append(f"file {p.entry.name or p.source}")
            shown = f"{p.source}@{pin.commit}" if pin is not None and p.source else p.source
            plan.staging.append(StagingRow(p.entry.name or "", shown or "", p.entry.dest,
                                           files, size, p.state))
    names = secret_names(variants)
    try:
        values = _secret_values(names, cwd, env_files, env_args, host_env)
    except PlanError as e:
        plan.problems.append(str(e))
        values = {}
    short = set(too_short(values))
    for n in names:
        state = "too short" if n in short else "set" if values.get(n) else "missing"
        plan.secrets.append(SecretRow(n, state))
    plan.missing += [f"secret {n}" for n in names if not values.get(n)]
    plan.missing += [f"secret {n} (too short)" for n in names if n in short and values.get(n)]
    plan.models = model_rows(variants, scripted=scripted, agents=agents)
    plan.missing += [f"model for agent {r.agent} ({r.reason})" for r in plan.models
                     if r.state == "none"]
    return plan


def model_rows(variants: Sequence[ResolvedVariant], *, scripted: bool,
               agents: AgentRegistry | None = None) -> list[ModelRow]:
    """One row per agent that talks to a model through the gateway, in variant order."""
    from .agents import AgentNotAvailable
    from .agents.registry import installed_registry
    from .gateway_service import model_state

    registry = agents or installed_registry()
    rows: dict[str, ModelRow] = {}
    for v in variants:
        if v.agent.name in rows:
            continue
        try:
            api = registry.get(v.agent.name).model_api
        except AgentNotAvailable:
            continue  # said elsewhere, as invalid input
        if api is None:
            continue
        state, reason = model_state(api, scripted=scripted, find=registry.model_api)
        rows[v.agent.name] = ModelRow(v.agent.name, api, state, reason or "")
    return list(rows.values())


def unset_secrets(variants: Sequence[ResolvedVariant], cwd: Path,
                  host_env: Mapping[str, str] | None = None) -> list[str]:
    """Declared secrets with no value here (environment or ./.env)."""
    names = secret_names(variants)
    values = _secret_values(names, cwd, (), (), host_env)
    return [n for n in names if not values.get(n)]
