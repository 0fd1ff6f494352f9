"""Variants: the cross product of the axes, extensions, ids, tags and fingerprints (§1)."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict

from .errors import ExperimentError, Problem
from .models import (
    Agent, Environment, EnvVar, ExperimentV1, ExperimentV2, Extension, FileEntry, Limits,
    McpServer, Product, Prompt, SetupCheck, SetupStep, Tests,
)
from .yamlsource import YamlSource

_SLUG = re.compile(r"[^a-z0-9_-]+")
_VARIANT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class ResolvedStep(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    phase: str   # "environment" or "product"
    name: str
    script: str


class ResolvedVariant(BaseModel):
    """Everything one variant run needs, with secrets by name only."""

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


def fingerprint(variant: ResolvedVariant) -> str:
    """sha256 of what determines the run's behaviour, independent of names and key order."""
    body = variant.model_dump(mode="json", exclude=_NOT_FINGERPRINTED, by_alias=True)
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def slug(text: str) -> str:
    return _SLUG.sub("-", text.lower()).strip("-") or "x"


def _agent_id(agent: Agent) -> str:
    return slug(f"{agent.name}-{agent.model.name}" if agent.model else agent.name)


def _unique_ids(ids: list[str]) -> list[str]:
    """Number values of one axis that would share an id (e.g. two `command` agents)."""
    if len(set(ids)) == len(ids):
        return ids
    return [f"{i}-{n + 1}" if ids.count(i) > 1 else i for n, i in enumerate(ids)]


def _dedup(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _with_where(entry: FileEntry, source: YamlSource, loc: tuple) -> FileEntry:
    line, col = source.position(loc)
    entry._where = f"{source.file}:{line}:{col}"
    return entry


def _setup_parts(steps: list[SetupStep], phase: str, loc: tuple, source: YamlSource):
    resolved, files, env, secrets, mcp, checks = [], [], [], [], [], []
    for i, step in enumerate(steps):
        resolved.append(ResolvedStep(phase=phase, name=step.name, script=step.script))
        files += [_with_where(f, source, loc + (i, "files", j)) for j, f in enumerate(step.files)]
        env += step.environment_variables
        secrets += step.secrets
        mcp += step.mcp_servers
        checks += step.setup_checks
    return resolved, files, env, secrets, mcp, checks


# -- v2 ------------------------------------------------------------------------------------

def _leaves(exp: ExperimentV2):
    """(extension path, axes, extension tags, loc of the leaf) for every variant family."""
    top = {"agents": exp.agents, "prompts": exp.prompts,
           "environments": exp.environments, "products": exp.products}
    if not exp.extensions:
        yield [], top, [], ()
        return

    def walk(ext: Extension, axes, path, tags, loc):
        axes = {k: (getattr(ext, k) if getattr(ext, k) is not None else v)
                for k, v in axes.items()}
        path, tags = path + [ext.id], tags + list(ext.tags)
        if not ext.extensions:
            yield path, axes, tags, loc
        for i, child in enumerate(ext.extensions):
            yield from walk(child, axes, path, tags, loc + ("extensions", i))

    for i, ext in enumerate(exp.extensions):
        yield from walk(ext, top, [], [], ("extensions", i))


def _resolve_v2(exp: ExperimentV2, source: YamlSource) -> list[ResolvedVariant]:
    variants: list[ResolvedVariant] = []
    top_files = [_with_where(f, source, ("files", i)) for i, f in enumerate(exp.files)]
    for path, axes, ext_tags, loc in _leaves(exp):
        agents = axes["agents"] or []
        prompts = axes["prompts"] or []
        where = loc or ()
        if not agents:
            raise ExperimentError([source.problem(where, f"variant {'.'.join(path) or 'default'}"
                                                  " has no agent: give 'agents'", path="agents")])
        if not prompts:
            raise ExperimentError([source.problem(where, f"variant {'.'.join(path) or 'default'}"
                                                  " has no prompt: give 'prompts'", path="prompts")])
        envs = axes["environments"] or [None]
        prods = axes["products"] or [None]
        ids = {
            "agents": _unique_ids([_agent_id(a) for a in agents]),
            "prompts": _unique_ids([slug(p.id) for p in prompts]),
            "environments": _unique_ids([slug(e.name) if e else "" for e in envs]),
            "products": _unique_ids([slug(p.name) if p else "" for p in prods]),
        }
        for (ai, agent), (pi, prompt), (ei, env), (di, prod) in itertools.product(
                enumerate(agents), enumerate(prompts), enumerate(envs), enumerate(prods)):
            parts = list(path)
            labels = list(path)
            for axis, index, label in (("agents", ai, agent.name + (f" {agent.model.name}" if agent.model else "")),
                                       ("prompts", pi, prompt.id),
                                       ("environments", ei, env.name if env else ""),
                                       ("products", di, prod.name if prod else "")):
                if len(ids[axis]) > 1:
                    parts.append(ids[axis][index])
                    labels.append(label)
            vid = ".".join(parts) or "default"
            setup, files, env_vars, secrets, mcp, checks = [], list(top_files), \
                list(exp.environment_variables), list(exp.secrets), [], []
            for kind, item in (("environment", env), ("product", prod)):
                if item is None:
                    continue
                axis_loc = _axis_loc(loc, axes, kind + "s", exp)
                idx = (envs if kind == "environment" else prods).index(item)
                s, f, e, sec, m, c = _setup_parts(item.setup, kind,
                                                  axis_loc + (idx, "setup"), source)
                setup += s
                files += f
                env_vars += e
                secrets += sec
                mcp += m
                checks += c
            matrix = {"agent": agent.name}
            if agent.model:
                matrix["model"] = agent.model.name
            matrix["prompt"] = prompt.id
            if env:
                matrix["environment"] = env.name
            if prod:
                matrix["product"] = prod.name
            tags = _dedup(list(prompt.tags) + (list(env.tags) if env else [])
                          + (list(prod.tags) if prod else []) + ext_tags)
            variants.append(_finish(ResolvedVariant(
                schema_version=2, experiment_id=exp.id, experiment_name=exp.name,
                experiment_description=exp.description, source_file=source.file,
                id=vid, tag=" / ".join(labels) or exp.name, tags=tags, extension_path=path,
                matrix=matrix, agent=agent, prompt=prompt, environment=env, product=prod,
                setup=setup, setup_checks=checks, files=files,
                environment_variables=env_vars, secrets=_dedup(secrets), mcp_servers=mcp,
                tests=exp.tests, limits=exp.limits), source, loc))
    _check_ids(variants, source)
    return variants


def _axis_loc(leaf_loc: tuple, axes, axis: str, exp: ExperimentV2) -> tuple:
    """Where the axis a leaf uses was written: the nearest extension giving it, else the top."""
    node: Any = exp
    found: tuple = (axis,)
    loc: tuple = ()
    parts = list(leaf_loc)
    while parts:
        key, idx = parts[0], parts[1]
        parts = parts[2:]
        node = getattr(node, key)[idx]
        loc = loc + (key, idx)
        if getattr(node, axis, None) is not None:
            found = loc + (axis,)
    return found


def _finish(variant: ResolvedVariant, source: YamlSource, loc: tuple) -> ResolvedVariant:
    if not _VARIANT_ID.match(variant.id):
        raise ExperimentError([source.problem(loc, f"variant id {variant.id!r} is not "
                                              "file-system safe", path="id")])
    return variant.model_copy(update={"fingerprint": fingerprint(variant)})


def _check_ids(variants: list[ResolvedVariant], source: YamlSource) -> None:
    seen: dict[str, ResolvedVariant] = {}
    for v in variants:
        if v.id in seen:
            raise ExperimentError([Problem(source.file, 1, 1, "", f"two variants resolve to "
                                           f"the id {v.id!r} ({seen[v.id].tag} and {v.tag}): "
                                           "give their axis values distinct names or ids")])
        seen[v.id] = v


# -- v1 ------------------------------------------------------------------------------------

def _resolve_v1(exp: ExperimentV1, source: YamlSource) -> list[ResolvedVariant]:
    from .models import MatrixVariant, Overrides

    entries = exp.matrix.variant if exp.matrix else [MatrixVariant(id="default", tag="default")]
    variants: list[ResolvedVariant] = []
    seen: set[str] = set()
    for i, mv in enumerate(entries):
        loc = ("matrix", "variant", i) if exp.matrix else ()
        if mv.id in seen:
            raise ExperimentError([source.problem(loc + ("id",), f"duplicate variant id "
                                                  f"{mv.id!r}")])
        seen.add(mv.id)
        ov: Overrides = mv.overrides
        agent = ov.agent or exp.agent or Agent(name="claude")
        model = ov.model or exp.model
        if agent.model is None and model is not None:
            agent = agent.model_copy(update={"model": model})
        prompt_text = ov.prompt if ov.prompt is not None else (exp.flow.prompt if exp.flow else None)
        if prompt_text is None:
            raise ExperimentError([source.problem(loc, f"variant {mv.id} has no prompt: give "
                                                  "flow.prompt or overrides.prompt", path="flow")])
        steps, steps_loc = (ov.setup, loc + ("overrides", "setup")) if ov.setup is not None \
            else (exp.setup, ("setup",))
        setup, files, env_vars, secrets, mcp, checks = _setup_parts(steps, "environment",
                                                                    steps_loc, source)
        top_files = [_with_where(f, source, ("files", j)) for j, f in enumerate(exp.files)]
        ov_files = [_with_where(f, source, loc + ("overrides", "files", j))
                    for j, f in enumerate(ov.files)]
        matrix = {"agent": agent.name}
        if agent.model:
            matrix["model"] = agent.model.name
        matrix["prompt"] = "prompt"
        variants.append(_finish(ResolvedVariant(
            schema_version=1, experiment_id=exp.id, experiment_name=exp.name,
            experiment_description=exp.description, source_file=source.file,
            id=mv.id, tag=mv.tag or mv.id, tags=[], matrix=matrix, agent=agent,
            prompt=Prompt(id="prompt", prompt=prompt_text),
            setup=setup,
            setup_checks=list(exp.setup_checks) + checks + list(ov.setup_checks),
            files=top_files + files + ov_files,
            environment_variables=list(exp.environment_variables) + env_vars,
            secrets=_dedup(list(exp.secrets) + secrets + list(ov.secrets)),
            mcp_servers=list(exp.mcp_servers) + mcp + list(ov.mcp_servers),
            tests=exp.tests, limits=exp.limits), source, loc))
    return variants


def resolve(exp: ExperimentV1 | ExperimentV2, source: YamlSource) -> list[ResolvedVariant]:
    if isinstance(exp, ExperimentV2):
        return _resolve_v2(exp, source)
    return _resolve_v1(exp, source)
