"""Variants: the cross product of the axes, extensions, ids, tags and fingerprints (§1)."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict

from .errors import ExperimentError, format_path
from .models import (
    SAFE_NAME,
    Agent,
    Environment,
    EnvVar,
    Experiment,
    ExperimentV1,
    ExperimentV2,
    Extension,
    FileEntry,
    GitPin,
    Limits,
    MatrixVariant,
    McpServer,
    Product,
    Prompt,
    SetupCheck,
    SetupStep,
    SourcePosition,
    Tests,
)
from .yamlsource import YamlSource

_SLUG_RUN = re.compile(r"[^a-z0-9_-]+")
AXES = ("agents", "prompts", "environments", "products")
# What one file may make: each variant becomes a folder, a container and a
# resolved-variant.yaml, so the cross product is bounded like the file's own size is.
MAX_VARIANTS = 10_000
MAX_RESOLVED_BYTES = 64 * 1024 * 1024  # every variant's resolved form, together
# A variant id names folders (results/<id>/) and is part of a container name; file names
# stop at 255 bytes, so the id, made of several names, is bounded on its own.
MAX_VARIANT_ID_LENGTH = 200


class ResolvedStep(SetupStep):
    """A setup step as it runs: environment steps first, then product steps."""

    phase: Literal["environment", "product"]


class ResolvedVariant(BaseModel):
    """Everything one variant run needs. Secrets are names only, so it is safe to write out."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: int
    experiment_id: str
    experiment_name: str
    experiment_description: str | None = None
    source_file: str
    id: str
    tag: str
    tags: list[str] = []
    extension_path: list[str] = []
    matrix: dict[str, str] = {}
    agent: Agent
    prompt: Prompt
    environment: Environment | None = None
    product: Product | None = None
    setup: list[ResolvedStep] = []
    setup_checks: list[SetupCheck] = []
    files: list[FileEntry] = []
    environment_variables: list[EnvVar] = []
    secrets: list[str] = []
    mcp_servers: list[McpServer] = []
    tests: Tests
    limits: Limits
    fingerprint: str = ""

    def resolved_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json", exclude_none=True, by_alias=True),
                              sort_keys=False, allow_unicode=True)


_NOT_FINGERPRINTED = {"id", "tag", "tags", "extension_path", "experiment_name",
                      "experiment_description", "source_file", "fingerprint"}


def _without_descriptions(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_descriptions(v) for k, v in value.items() if k != "description"}
    if isinstance(value, list):
        return [_without_descriptions(v) for v in value]
    return value


def fingerprint(variant: ResolvedVariant) -> str:
    """sha256 of what decides the run's behaviour; names, tags and descriptions do not."""
    body = _without_descriptions(variant.model_dump(mode="json", exclude=_NOT_FINGERPRINTED,
                                                    by_alias=True))
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def slug(text: str) -> str:
    return _SLUG_RUN.sub("-", text.lower()).strip("-")


def _dedup(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


@dataclass
class _Parts:
    """What setup steps and file-level lists contribute to a variant, in run order."""

    setup: list[ResolvedStep] = field(default_factory=list)
    checks: list[SetupCheck] = field(default_factory=list)
    files: list[FileEntry] = field(default_factory=list)
    env: list[EnvVar] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)
    mcp: list[McpServer] = field(default_factory=list)

    def add_steps(self, steps: list[SetupStep], phase: Literal["environment", "product"],
                  loc: tuple[Any, ...],
                  source: YamlSource, pin: GitPin | None = None) -> None:
        for i, step in enumerate(steps):
            self.setup.append(ResolvedStep(phase=phase, **dict(step)))
            files = _located(step.files, (*loc, i, "files"), source)
            for entry in files:
                entry._pin = pin  # the same for every variant: it comes from one place
            self.files += files
            self.env += step.environment_variables
            self.secrets += step.secrets
            self.mcp += step.mcp_servers
            self.checks += step.setup_checks


def _located(entries: list[FileEntry], loc: tuple[Any, ...],
             source: YamlSource) -> list[FileEntry]:
    for j, entry in enumerate(entries):
        # Entries are frozen; the private position is set once, and an entry shared by several
        # variants comes from one place in the file.
        entry._where = source.where((*loc, j))
    return list(entries)


# -- v2 ------------------------------------------------------------------------------------

@dataclass
class _Leaf:
    path: list[str]
    loc: tuple[Any, ...]              # where the leaf extension is written; () for the top
    tags: list[str]
    axes: dict[str, list[Any]]        # axis -> values ([None] when absent)
    axis_locs: dict[str, tuple[Any, ...]]  # axis -> where its list is written


def _leaves(exp: ExperimentV2) -> list[_Leaf]:
    top = _Leaf([], (), [], {}, {})
    for axis in AXES:
        values = getattr(exp, axis)
        top.axes[axis] = list(values) if values else [None]
        top.axis_locs[axis] = (axis,)
    if not exp.extensions:
        return [top]
    out: list[_Leaf] = []

    def walk(parent: _Leaf, exts: list[Extension], loc: tuple[Any, ...]) -> None:
        for i, ext in enumerate(exts):
            here = (*loc, i)
            leaf = _Leaf([*parent.path, ext.id], here, parent.tags + list(ext.tags),
                         dict(parent.axes), dict(parent.axis_locs))
            for axis in AXES:
                values = getattr(ext, axis)
                if values is not None:  # given, even empty, replaces the parent's axis
                    leaf.axes[axis] = list(values) or [None]
                    leaf.axis_locs[axis] = (*here, axis)
            if ext.extensions:
                walk(leaf, ext.extensions, (*here, "extensions"))
            else:
                out.append(leaf)

    walk(top, exp.extensions, ("extensions",))
    return out


def _agent_id(agent: Agent) -> str:
    return slug(f"{agent.name}-{agent.model.name}" if agent.model else agent.name)


def _agent_label(agent: Agent) -> str:
    return f"{agent.name} {agent.model.name}" if agent.model else agent.name


def _value_id(axis: str, value: Any) -> str:
    if axis == "agents":
        return _agent_id(value)
    if axis == "prompts":
        prompt_id: str = value.id
        return prompt_id
    return slug(value.name)


def _value_label(axis: str, value: Any) -> str:
    if axis == "agents":
        return _agent_label(value)
    label: str = value.id if axis == "prompts" else value.name
    return label


@dataclass
class _Candidate:
    variant: ResolvedVariant
    locs: dict[str, tuple[Any, ...]]  # axis -> where this variant's value is written


def _resolve_v2(exp: ExperimentV2, source: YamlSource) -> list[ResolvedVariant]:
    top_files = _located(exp.files, ("files",), source)
    candidates: list[_Candidate] = []
    leaves = _leaves(exp)
    count = sum(math.prod(len(leaf.axes[a]) for a in AXES) for leaf in leaves)
    if count > MAX_VARIANTS:
        raise ExperimentError([source.problem(
            (), f"the axes make {count} variants; at most {MAX_VARIANTS} are allowed per "
            "file: split the experiment", path="")])
    for leaf in leaves:
        varying = [a for a in AXES if len(leaf.axes[a]) > 1]
        for picks in itertools.product(*(list(enumerate(leaf.axes[a])) for a in AXES)):
            chosen = dict(zip(AXES, picks, strict=True))
            locs = {a: leaf.axis_locs[a] + ((i,) if leaf.axes[a][i] is not None else ())
                    for a, (i, _) in chosen.items()}
            parts_id = list(leaf.path) + [_value_id(a, chosen[a][1]) for a in varying]
            vid = ".".join(parts_id) or "default"
            tag = " / ".join(list(leaf.path) + [_value_label(a, chosen[a][1])
                                                for a in varying]) or "default"
            agent: Agent | None = chosen["agents"][1]
            prompt: Prompt | None = chosen["prompts"][1]
            env: Environment | None = chosen["environments"][1]
            prod: Product | None = chosen["products"][1]
            for axis, value in (("agents", agent), ("prompts", prompt)):
                if value is None:
                    raise ExperimentError([source.problem(
                        leaf.loc, f"variant {vid} has no {axis[:-1]}: give '{axis}' at the "
                        "top level or in its extension", path=format_path(leaf.loc))])
            assert agent is not None and prompt is not None
            if not agent.where:  # shared by several variants: one place in the file
                agent._where = SourcePosition(source.where(locs["agents"]))
            if "" in parts_id or not SAFE_NAME.match(vid):
                raise ExperimentError([source.problem(
                    leaf.loc, f"variant {tag!r} gets the id {vid!r}, which is not safe as a "
                    "file name: give its axis values names with letters or digits")])
            if len(vid) > MAX_VARIANT_ID_LENGTH:
                raise ExperimentError([source.problem(
                    leaf.loc, f"variant id {vid[:40]}... is {len(vid)} characters long, at "
                    f"most {MAX_VARIANT_ID_LENGTH} (it names folders): shorten its extension "
                    "ids or axis names")])
            parts = _Parts(files=list(top_files), env=list(exp.environment_variables),
                           secrets=list(exp.secrets))
            if env is not None:
                parts.add_steps(env.setup, "environment", locs["environments"] + ("setup",),
                                source, _pin(env.commit, locs["environments"], source))
            if prod is not None:
                parts.add_steps(prod.setup, "product", locs["products"] + ("setup",), source,
                                _pin(prod.commit, locs["products"], source))
            matrix = {"agent": agent.name}
            if agent.model is not None:
                matrix["model"] = agent.model.name
            matrix["prompt"] = prompt.id
            if env is not None:
                matrix["environment"] = env.name
            if prod is not None:
                matrix["product"] = prod.name
            tags = _dedup(list(prompt.tags) + (list(env.tags) if env else [])
                          + (list(prod.tags) if prod else []) + leaf.tags)
            variant = ResolvedVariant(
                schema_version=2, experiment_id=exp.id, experiment_name=exp.name,
                experiment_description=exp.description, source_file=source.abspath or source.file,
                id=vid, tag=tag, tags=tags, extension_path=list(leaf.path), matrix=matrix,
                agent=agent, prompt=prompt, environment=env, product=prod,
                setup=parts.setup, setup_checks=parts.checks, files=parts.files,
                environment_variables=parts.env, secrets=_dedup(parts.secrets),
                mcp_servers=parts.mcp, tests=exp.tests, limits=exp.limits)
            candidates.append(_Candidate(_with_fingerprint(variant), locs))
    _check_unique_ids(candidates, source)
    return [c.variant for c in candidates]


def _pin(commit: str | None, loc: tuple[Any, ...], source: YamlSource) -> GitPin | None:
    if commit is None:
        return None
    return GitPin(commit, source.where((*loc, "commit")), format_path((*loc, "commit")))


def _check_unique_ids(candidates: list[_Candidate], source: YamlSource) -> None:
    seen: dict[str, _Candidate] = {}
    for cand in candidates:
        first = seen.setdefault(cand.variant.id, cand)
        if first is cand:
            continue
        # Point at the first axis value that tells the two apart: that is what needs a name.
        differing = next((a for a in AXES if first.locs[a] != cand.locs[a]), None)
        loc = cand.locs[differing] if differing else ()
        a, b = (", ".join(format_path(c.locs[x]) for x in AXES
                          if c.locs[x] and isinstance(c.locs[x][-1], int))
                for c in (first, cand))
        raise ExperimentError([source.problem(
            loc, f"two variants resolve to the id {cand.variant.id!r} ({a}; and {b}): give "
            "their axis values distinct names, models or ids")])


def _with_fingerprint(variant: ResolvedVariant) -> ResolvedVariant:
    return variant.model_copy(update={"fingerprint": fingerprint(variant)})


# -- v1 ------------------------------------------------------------------------------------

def _resolve_v1(exp: ExperimentV1, source: YamlSource) -> list[ResolvedVariant]:
    entries = exp.matrix.variant if exp.matrix else [MatrixVariant(id="default", tag="default")]
    variants: list[ResolvedVariant] = []
    seen: set[str] = set()
    for i, mv in enumerate(entries):
        loc: tuple[Any, ...] = ("matrix", "variant", i) if exp.matrix else ()
        if mv.id in seen:
            raise ExperimentError([source.problem((*loc, "id"),
                                                  f"duplicate variant id {mv.id!r}")])
        seen.add(mv.id)
        ov = mv.overrides
        base_agent = ov.agent or exp.agent
        model = ov.model or exp.model
        agent = Agent(name=base_agent.name if base_agent else "claude",
                      script=base_agent.script if base_agent else None,
                      command=base_agent.command if base_agent else None, model=model)
        agent._where = SourcePosition(source.where(
            (*loc, "overrides", "agent") if ov.agent else ("agent",) if exp.agent else loc))
        prompt_text = ov.prompt if ov.prompt is not None else (exp.flow.prompt if exp.flow
                                                               else None)
        if prompt_text is None:
            raise ExperimentError([source.problem(
                loc, f"variant {mv.id!r} has no prompt: give flow.prompt or overrides.prompt",
                path=format_path(loc) if loc else "flow", at="parent")])
        # Overrides of lists add to the top-level list; setup replaces.
        parts = _Parts(
            files=_located(exp.files, ("files",), source)
            + _located(ov.files, (*loc, "overrides", "files"), source),
            secrets=list(exp.secrets) + list(ov.secrets),
            mcp=list(exp.mcp_servers) + list(ov.mcp_servers),
            checks=list(exp.setup_checks) + list(ov.setup_checks))
        if ov.setup is not None:
            parts.add_steps(ov.setup, "environment", (*loc, "overrides", "setup"), source)
        else:
            parts.add_steps(exp.setup, "environment", ("setup",), source)
        matrix = {"agent": agent.name}
        if agent.model is not None:
            matrix["model"] = agent.model.name
        matrix["prompt"] = "prompt"
        variants.append(_with_fingerprint(ResolvedVariant(
            schema_version=1, experiment_id=exp.id, experiment_name=exp.name,
            experiment_description=exp.description, source_file=source.abspath or source.file,
            id=mv.id, tag=mv.tag or mv.id, tags=[], extension_path=[], matrix=matrix,
            agent=agent, prompt=Prompt(id="prompt", prompt=prompt_text),
            setup=parts.setup, setup_checks=parts.checks, files=parts.files,
            environment_variables=parts.env, secrets=_dedup(parts.secrets),
            mcp_servers=parts.mcp, tests=exp.tests, limits=exp.limits)))
    return variants


def _check_resolved_size(variants: list[ResolvedVariant], source: YamlSource) -> None:
    total = 0
    for variant in variants:
        total += len(variant.model_dump_json(exclude_none=True))
        if total > MAX_RESOLVED_BYTES:
            raise ExperimentError([source.problem((), (
                f"its {len(variants)} variants would write more than "
                f"{MAX_RESOLVED_BYTES // (1024 * 1024)} MB of resolved variants: split the "
                "experiment or share less between its variants"), path="")])


def resolve(exp: Experiment, source: YamlSource) -> list[ResolvedVariant]:
    """Every variant of a validated experiment, in declaration order. Raises ExperimentError."""
    variants = _resolve_v2(exp, source) if isinstance(exp, ExperimentV2) else _resolve_v1(
        exp, source)
    _check_resolved_size(variants, source)
    return variants
