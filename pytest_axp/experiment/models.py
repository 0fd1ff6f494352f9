"""The experiment file, schema v2 and legacy v1, as pydantic models that reject unknown fields.

Shorthands (a bare string for an agent, a prompt or a setup script; one object where a list
is allowed) are normalized before validation, so every stored field has one shape.
"""

from __future__ import annotations

import posixpath
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

_KEBAB = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
_SECRET_REF = re.compile(r"^axp://secrets/[A-Za-z0-9][A-Za-z0-9_.-]*$")
WORKSPACE = "/workspace"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _as_list(value: Any) -> Any:
    if value is None:
        return value
    return value if isinstance(value, list) else [value]


class ModelSpec(_Strict):
    name: str
    effort: str | None = None
    context_window_size: int | None = None
    thinking: bool | int | str | None = None
    fast: bool | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value


class Agent(_Strict):
    name: str
    model: ModelSpec | None = None
    script: str | None = None  # ours: the `command` agent's bash script

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @field_validator("script")
    @classmethod
    def _script_only_for_command(cls, value: str | None, info) -> str | None:
        if value is not None and info.data.get("name") not in (None, "command"):
            raise ValueError("only the 'command' agent takes a script")
        return value

    @model_validator(mode="after")
    def _command_needs_script(self) -> "Agent":
        if self.name == "command" and not self.script:
            raise ValueError("the 'command' agent needs a 'script'")
        return self


class Prompt(_Strict):
    id: str
    prompt: str
    description: str | None = None
    tags: list[str] = []


class EnvVar(_Strict):
    name: str
    value: str = ""

    @field_validator("value", mode="before")
    @classmethod
    def _scalar_to_text(cls, value: Any) -> Any:
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value) if isinstance(value, (int, float)) else value

    @field_validator("value")
    @classmethod
    def _reserved_scheme(cls, value: str) -> str:
        if value.startswith("axp://") and not _SECRET_REF.match(value):
            raise ValueError("values starting with axp:// are reserved; only "
                             "axp://secrets/<name> is valid")
        return value


class McpEnv(_Strict):
    name: str
    from_: str | None = Field(default=None, alias="from")


class McpHeader(_Strict):
    name: str
    value: str


class McpServer(_Strict):
    name: str
    type: Literal["stdio", "http", "sse"] | None = None
    command: str | None = None
    args: list[str] = []
    url: str | None = None
    env: list[McpEnv] = []
    headers: list[McpHeader] = []


class SetupCheck(_Strict):
    name: str
    script: str


class FileEntry(_Strict):
    name: str | None = None
    source: str | None = None
    sha256: str | None = None
    dest: str
    _where: str = PrivateAttr(default="")

    @property
    def where(self) -> str:
        """file:line:column of this entry in its experiment file."""
        return self._where

    @field_validator("sha256")
    @classmethod
    def _hex(cls, value: str | None) -> str | None:
        if value is not None and not _SHA256.match(value):
            raise ValueError("sha256 must be 64 hexadecimal characters")
        return value.lower() if value else value

    @field_validator("dest")
    @classmethod
    def _inside_workspace(cls, value: str) -> str:
        return workspace_relative(value)

    @model_validator(mode="after")
    def _slot_needs_name(self) -> "FileEntry":
        if self.source is None and not self.name:
            raise ValueError("an entry without a source is a slot and needs a 'name' "
                             "(bind it with --file NAME=PATH)")
        return self


def workspace_relative(dest: str) -> str:
    """`dest` as a path relative to /workspace ('.' for the workspace itself)."""
    text = dest.strip()
    if not text:
        raise ValueError("dest must not be empty")
    if text.startswith("/"):
        norm = posixpath.normpath(text)
        if norm == WORKSPACE:
            return "."
        if not norm.startswith(WORKSPACE + "/"):
            raise ValueError("dest escapes /workspace")
        return norm[len(WORKSPACE) + 1:]
    norm = posixpath.normpath(text)
    if norm == ".." or norm.startswith("../"):
        raise ValueError("dest escapes /workspace")
    return norm


def _setup_shorthand(value: Any) -> Any:
    if isinstance(value, str):
        return [{"name": "setup", "script": value}]
    return _as_list(value)


class SetupStep(_Strict):
    name: str
    script: str
    description: str | None = None
    tags: list[str] = []
    files: list[FileEntry] = []
    environment_variables: list[EnvVar] = []
    secrets: list[str] = []
    mcp_servers: list[McpServer] = []
    setup_checks: list[SetupCheck] = []


class Environment(_Strict):
    name: str
    setup: list[SetupStep] = []
    description: str | None = None
    tags: list[str] = []
    commit: str | None = None

    _norm_setup = field_validator("setup", mode="before")(classmethod(
        lambda cls, v: _setup_shorthand(v)))


class Product(_Strict):
    name: str
    type: str | None = None
    setup: list[SetupStep] = []
    version: str | None = None
    commit: str | None = None
    description: str | None = None
    tags: list[str] = []

    _norm_setup = field_validator("setup", mode="before")(classmethod(
        lambda cls, v: _setup_shorthand(v)))


class TestSpec(_Strict):
    __test__ = False  # not a pytest test class, despite the name

    name: str
    script: str

    @field_validator("name")
    @classmethod
    def _file_safe(cls, value: str) -> str:
        if not _SAFE_NAME.match(value):
            raise ValueError("test names may use letters, digits, '.', '_' and '-' "
                             "(they name log files)")
        return value


class Tests(_Strict):
    __test__ = False

    application: list[TestSpec] = []
    introspection: list[TestSpec] = []

    @field_validator("application", "introspection", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value

    @field_validator("application", "introspection")
    @classmethod
    def _unique(cls, value: list[TestSpec]) -> list[TestSpec]:
        seen: set[str] = set()
        for test in value:
            if test.name in seen:
                raise ValueError(f"two tests are named {test.name!r}")
            seen.add(test.name)
        return value


class Limits(_Strict):
    max_turns: int | None = Field(default=None, gt=0)
    max_time_seconds: float | None = Field(default=None, gt=0)
    max_cost_usd: float | None = Field(default=None, ge=0)


def _prompts_shorthand(value: Any) -> Any:
    items = _as_list(value)
    if items is None:
        return None
    return [{"id": f"prompt-{i + 1}", "prompt": p} if isinstance(p, str) else p
            for i, p in enumerate(items)]


class Extension(_Strict):
    id: str
    description: str | None = None
    tags: list[str] = []
    agents: list[Agent] | None = None
    prompts: list[Prompt] | None = None
    environments: list[Environment] | None = None
    products: list[Product] | None = None
    extensions: list["Extension"] = []

    _norm_agents = field_validator("agents", mode="before")(classmethod(lambda cls, v: _as_list(v)))
    _norm_prompts = field_validator("prompts", mode="before")(classmethod(
        lambda cls, v: _prompts_shorthand(v)))
    _norm_envs = field_validator("environments", "products", "extensions", mode="before")(
        classmethod(lambda cls, v: _as_list(v)))


def _kebab(value: str) -> str:
    if not _KEBAB.match(value):
        raise ValueError("must be kebab-case: lowercase letters and digits joined by '-'")
    return value


class ExperimentV2(_Strict):
    schema_version: Literal[2]
    id: str
    name: str = Field(min_length=1)
    description: str | None = None
    agents: list[Agent] | None = None
    prompts: list[Prompt] | None = None
    environments: list[Environment] | None = None
    products: list[Product] | None = None
    extensions: list[Extension] = []
    environment_variables: list[EnvVar] = []
    secrets: list[str] = []
    files: list[FileEntry] = []
    tests: Tests
    limits: Limits

    _id = field_validator("id")(classmethod(lambda cls, v: _kebab(v)))
    _norm_agents = field_validator("agents", mode="before")(classmethod(lambda cls, v: _as_list(v)))
    _norm_prompts = field_validator("prompts", mode="before")(classmethod(
        lambda cls, v: _prompts_shorthand(v)))
    _norm_lists = field_validator("environments", "products", "extensions", "files",
                                  "environment_variables", mode="before")(
        classmethod(lambda cls, v: _as_list(v)))


class Flow(_Strict):
    prompt: str


class Overrides(_Strict):
    setup: list[SetupStep] | None = None
    prompt: str | None = None
    model: ModelSpec | None = None
    agent: Agent | None = None
    secrets: list[str] = []
    files: list[FileEntry] = []
    mcp_servers: list[McpServer] = []
    setup_checks: list[SetupCheck] = []

    _norm_setup = field_validator("setup", mode="before")(classmethod(
        lambda cls, v: _setup_shorthand(v)))


class MatrixVariant(_Strict):
    id: str
    tag: str | None = None
    description: str | None = None
    overrides: Overrides = Overrides()

    @field_validator("id")
    @classmethod
    def _safe(cls, value: str) -> str:
        if not _SAFE_NAME.match(value):
            raise ValueError("variant ids may use letters, digits, '.', '_' and '-'")
        return value


class Matrix(_Strict):
    variant: list[MatrixVariant]


class ExperimentV1(_Strict):
    schema_version: Literal[1]
    id: str
    name: str = Field(min_length=1)
    description: str | None = None
    flow: Flow | None = None
    model: ModelSpec | None = None
    agent: Agent | None = None
    setup: list[SetupStep] = []
    environment_variables: list[EnvVar] = []
    files: list[FileEntry] = []
    secrets: list[str] = []
    mcp_servers: list[McpServer] = []
    setup_checks: list[SetupCheck] = []
    matrix: Matrix | None = None
    tests: Tests
    limits: Limits

    _id = field_validator("id")(classmethod(lambda cls, v: _kebab(v)))
    _norm_setup = field_validator("setup", mode="before")(classmethod(
        lambda cls, v: _setup_shorthand(v)))


Experiment = ExperimentV1 | ExperimentV2
