"""The experiment file, schema v2 and legacy v1, as pydantic models that reject unknown fields.

Shorthands (a bare string for an agent, a prompt, a model or a setup script; one agent or
prompt where a list is allowed) are normalized before validation, so every stored field has
exactly one shape and later stages never branch on it.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from .errors import ExperimentError, Problem, format_path, problems_from_validation
from .yamlsource import YamlSource

KEBAB = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")

_EXTENSION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")  # '.' joins the extension path
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
_SECRET_REF = re.compile(r"^axp://secrets/[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# A git revision that can be neither an option nor a range: a commit id, a tag, a branch.
_COMMIT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")
WORKSPACE = "/workspace"
# Names and ids become file names (255 bytes at most), container names and log lines: bounded
# and free of control characters when the file is loaded, not when a path is first made.
MAX_NAME_LENGTH = 100
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _name_text(value: str) -> str:
    if len(value) > MAX_NAME_LENGTH:
        raise ValueError(f"too long: {len(value)} characters, at most {MAX_NAME_LENGTH} "
                         "(names become file and container names)")
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters (newline, tab, ...)")
    return value


Name = Annotated[str, AfterValidator(_name_text)]


def _safe_name(value: str, what: str, why: str = "") -> str:
    """Ids and names that become file names, node ids and container names."""
    _name_text(value)
    if not SAFE_NAME.match(value):
        raise ValueError(f"{what} may use letters, digits, '.', '_' and '-', starting with "
                         f"a letter or digit{why}")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _null_is_absent(cls, value: Any) -> Any:
        # `tags:` with nothing after it is common in hand-written YAML; treat it as not given
        # for fields that have a default, and let required fields report "field required".
        if isinstance(value, dict):
            return {k: v for k, v in value.items()
                    if not (v is None and k in cls.model_fields
                            and not cls.model_fields[k].is_required())}
        return value


def _scalar_text(value: Any) -> Any:
    """YAML reads `commit: 1234567` or `version: 1.2` as numbers; they are text here."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if isinstance(value, (int, float)) else value


def _one_or_many(value: Any) -> Any:
    return value if isinstance(value, list) else [value]


def _setup_shorthand(value: Any) -> Any:
    return [{"name": "setup", "script": value}] if isinstance(value, str) else value


def _model_shorthand(value: Any) -> Any:
    return {"name": value} if isinstance(value, str) else value


def _prompts_shorthand(value: Any) -> Any:
    # A bare string gets an id from its position, so ids stay stable while the text changes.
    return [{"id": f"prompt-{i + 1}", "prompt": p} if isinstance(p, str) else p
            for i, p in enumerate(_one_or_many(value))]


def _agents_shorthand(value: Any) -> Any:
    return [{"name": a} if isinstance(a, str) else a for a in _one_or_many(value)]


class ModelSpec(_Strict):
    name: Name = Field(min_length=1)
    effort: str | None = None
    context_window_size: int | None = Field(default=None, gt=0, strict=True)
    thinking: bool | int | str | None = None
    fast: bool | None = None

    @field_validator("thinking", mode="before")
    @classmethod
    def _scalar(cls, value: Any) -> Any:
        # Checked here so a bad value gets one clear message, not one per union member.
        if value is not None and not isinstance(value, (bool, int, str)):
            raise ValueError("expected true or false, a number of tokens, or a string")
        return value


class SourcePosition(str):
    """file:line:column where a value was written. Not part of the value: two agents that
    say the same are equal wherever they are written (a resolved variant read back from
    resolved-variant.yaml has no position and equals the one it was written from)."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str)

    def __ne__(self, other: object) -> bool:
        return not isinstance(other, str)

    __hash__ = str.__hash__


class _AgentRules(_Strict):
    """Agent fields beyond the name (e.g. `script`) are accepted here; the agent's adapter
    decides whether they fit it (agents.base.Agent.validate)."""

    _where: str = PrivateAttr(default="")

    @property
    def where(self) -> str:
        """file:line:column of this agent in its experiment file ('' when not from a file)."""
        return self._where


class Agent(_AgentRules):
    """An agent (`claude`: Claude Code; `command`: a bash script, ours; or a plugin's) and
    its model."""

    name: Name = Field(min_length=1)
    model: ModelSpec | None = None
    script: str | None = None  # ours: the `command` agent's bash script (its adapter checks)
    command: str | None = None  # ours: the `acp` agent's adapter command line (split, no shell)

    @field_validator("model", mode="before", json_schema_input_type=str | ModelSpec | None)
    @classmethod
    def _model(cls, value: Any) -> Any:
        return _model_shorthand(value)


class AgentV1(_AgentRules):
    """A v1 agent: the model is given separately, at the top level or in overrides."""

    name: Name = Field(min_length=1)
    script: str | None = None  # ours: the `command` agent's bash script (its adapter checks)
    command: str | None = None  # ours: the `acp` agent's adapter command line (split, no shell)


class Prompt(_Strict):
    id: str
    prompt: str
    description: str | None = None
    tags: list[str] = []

    _safe = field_validator("id")(classmethod(lambda cls, v: _safe_name(v, "prompt ids")))


class EnvVar(_Strict):
    name: Name
    value: str

    @field_validator("name")
    @classmethod
    def _env_name(cls, value: str) -> str:
        if not _ENV_NAME.match(value):
            raise ValueError("not a valid environment variable name")
        return value

    @field_validator("value", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        return _scalar_text(value)

    @field_validator("value")
    @classmethod
    def _reserved_scheme(cls, value: str) -> str:
        if value.startswith("axp://") and not _SECRET_REF.match(value):
            raise ValueError("values starting with axp:// are reserved; only "
                             "axp://secrets/<name> is valid")
        return value


class McpEnv(_Strict):
    name: Name
    from_: str | None = Field(default=None, alias="from")


class McpHeader(_Strict):
    name: Name
    value: str

    @field_validator("value", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        return _scalar_text(value)


class McpServer(_Strict):
    name: Name
    type: Literal["stdio", "http", "sse"] | None = None
    command: str | None = None
    args: list[str] = []
    url: str | None = None
    env: list[McpEnv] = []
    headers: list[McpHeader] = []

    @field_validator("args", mode="before")
    @classmethod
    def _args_text(cls, value: Any) -> Any:
        return [_scalar_text(a) for a in value] if isinstance(value, list) else value


class SetupCheck(_Strict):
    name: Name
    script: str


def workspace_relative(dest: str) -> str:
    """`dest` relative to /workspace ('.' for the workspace itself); ValueError if it escapes."""
    text = dest.strip()
    if not text:
        raise ValueError("dest must not be empty")
    norm = posixpath.normpath(text)
    if norm.startswith("/"):
        if norm == WORKSPACE:
            return "."
        if not norm.startswith(WORKSPACE + "/"):
            raise ValueError("dest escapes /workspace")
        return norm[len(WORKSPACE) + 1:]
    if norm == ".." or norm.startswith("../"):
        raise ValueError("dest escapes /workspace")
    return norm


@dataclass(frozen=True)
class GitPin:
    """The `commit` of the environment or product whose setup stages a file entry: its source
    (a git work tree, or a git URL) is taken at that commit."""

    commit: str
    where: str   # file:line:column of the `commit` field
    field: str   # its path, e.g. environments[0].commit


class FileEntry(_Strict):
    name: Name | None = None
    source: str | None = None
    sha256: str | None = None
    dest: str
    _where: str = PrivateAttr(default="")
    _pin: GitPin | None = PrivateAttr(default=None)

    @property
    def where(self) -> str:
        """file:line:column of this entry in its experiment file ('' when not from a file)."""
        return self._where

    @property
    def pin(self) -> GitPin | None:
        """The commit its source is taken at (set when variants are resolved), if any."""
        return self._pin

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
    def _slot_needs_name(self) -> FileEntry:
        if self.source is None and not self.name:
            raise ValueError("an entry without a source is a slot and needs a 'name' "
                             "(bound at run time with --file NAME=PATH)")
        return self


def _secret_name(name: str) -> str:
    _name_text(name)
    if not _ENV_NAME.match(name):
        raise ValueError(f"secret {name!r} is not a valid environment variable name")
    return name


SecretName = Annotated[str, AfterValidator(_secret_name)]


class SetupStep(_Strict):
    name: Name
    script: str
    description: str | None = None
    tags: list[str] = []
    files: list[FileEntry] = []
    environment_variables: list[EnvVar] = []
    secrets: list[SecretName] = []
    mcp_servers: list[McpServer] = []
    setup_checks: list[SetupCheck] = []



_SetupInput = str | list[SetupStep]


def _commit(value: str | None) -> str | None:
    if value is None:
        return None
    _name_text(value)
    if not _COMMIT.match(value) or ".." in value:
        raise ValueError("a commit is a git commit id, tag or branch: letters, digits, '.', "
                         "'_', '/' and '-', starting with a letter or digit")
    return value


class Environment(_Strict):
    name: Name = Field(min_length=1)
    setup: list[SetupStep] = []
    description: str | None = None
    tags: list[str] = []
    commit: str | None = None

    _setup = field_validator("setup", mode="before", json_schema_input_type=_SetupInput)(
        classmethod(lambda cls, v: _setup_shorthand(v)))
    _text = field_validator("commit", mode="before")(classmethod(lambda cls, v: _scalar_text(v)))
    _revision = field_validator("commit")(classmethod(lambda cls, v: _commit(v)))


class Product(_Strict):
    name: Name = Field(min_length=1)
    type: str | None = None
    setup: list[SetupStep] = []
    version: str | None = None
    commit: str | None = None
    description: str | None = None
    tags: list[str] = []

    _setup = field_validator("setup", mode="before", json_schema_input_type=_SetupInput)(
        classmethod(lambda cls, v: _setup_shorthand(v)))
    _text = field_validator("version", "commit", mode="before")(
        classmethod(lambda cls, v: _scalar_text(v)))
    _revision = field_validator("commit")(classmethod(lambda cls, v: _commit(v)))


class TestSpec(_Strict):
    __test__ = False  # not a pytest test class, despite the name

    name: str
    script: str

    _file_safe = field_validator("name")(classmethod(
        lambda cls, v: _safe_name(v, "test names", " (they name log files)")))


class Tests(_Strict):
    __test__ = False

    application: list[TestSpec] = []
    introspection: list[TestSpec] = []


class Limits(_Strict):
    max_turns: int | None = Field(default=None, gt=0, strict=True)
    max_time_seconds: float | None = Field(default=None, gt=0, strict=True)
    max_cost_usd: float | None = Field(default=None, ge=0, strict=True)


_AgentsInput = str | Agent | list[str | Agent] | None
_PromptsInput = str | Prompt | list[str | Prompt] | None


class Extension(_Strict):
    id: str
    description: str | None = None
    tags: list[str] = []
    agents: list[Agent] | None = None
    prompts: list[Prompt] | None = None
    environments: list[Environment] | None = None
    products: list[Product] | None = None
    extensions: list[Extension] = []

    @field_validator("id")
    @classmethod
    def _safe(cls, value: str) -> str:
        _name_text(value)
        if not _EXTENSION_ID.match(value):
            raise ValueError("extension ids may use letters, digits, '_' and '-', starting "
                             "with a letter or digit")
        return value

    _agents = field_validator("agents", mode="before", json_schema_input_type=_AgentsInput)(
        classmethod(lambda cls, v: _agents_shorthand(v)))
    _prompts = field_validator("prompts", mode="before", json_schema_input_type=_PromptsInput)(
        classmethod(lambda cls, v: _prompts_shorthand(v)))


def _kebab(value: str) -> str:
    _name_text(value)
    if not KEBAB.match(value):
        raise ValueError("must be kebab-case: lowercase letters and digits joined by '-'")
    return value


class _Experiment(_Strict):
    _source: YamlSource | None = PrivateAttr(default=None)

    @property
    def source(self) -> YamlSource:
        """Where the experiment came from; positions for errors found after validation."""
        return self._source or YamlSource("<experiment>", self.model_dump(by_alias=True))


class ExperimentV2(_Experiment):
    schema_version: Literal[2]
    id: str
    name: Name = Field(min_length=1)
    description: str | None = None
    agents: list[Agent] | None = None
    prompts: list[Prompt] | None = None
    environments: list[Environment] | None = None
    products: list[Product] | None = None
    extensions: list[Extension] = []
    environment_variables: list[EnvVar] = []
    secrets: list[SecretName] = []
    files: list[FileEntry] = []
    tests: Tests
    limits: Limits

    _id = field_validator("id")(classmethod(lambda cls, v: _kebab(v)))
    _agents = field_validator("agents", mode="before", json_schema_input_type=_AgentsInput)(
        classmethod(lambda cls, v: _agents_shorthand(v)))
    _prompts = field_validator("prompts", mode="before", json_schema_input_type=_PromptsInput)(
        classmethod(lambda cls, v: _prompts_shorthand(v)))


class Flow(_Strict):
    prompt: str


_ModelInput = str | ModelSpec | None
_AgentV1Input = str | AgentV1 | None


class _V1Shorthands(_Strict):
    """v1's `setup`, `model` and `agent`, each a string or an object, wherever v1 takes them
    (the top level and a matrix variant's overrides)."""

    _setup = field_validator("setup", mode="before", check_fields=False,
                             json_schema_input_type=_SetupInput)(
        classmethod(lambda cls, v: _setup_shorthand(v)))
    _model = field_validator("model", mode="before", check_fields=False,
                             json_schema_input_type=_ModelInput)(
        classmethod(lambda cls, v: _model_shorthand(v)))
    _agent = field_validator("agent", mode="before", check_fields=False,
                             json_schema_input_type=_AgentV1Input)(
        classmethod(lambda cls, v: _model_shorthand(v)))


class Overrides(_V1Shorthands):
    setup: list[SetupStep] | None = None
    prompt: str | None = None
    model: ModelSpec | None = None
    agent: AgentV1 | None = None
    secrets: list[SecretName] = []
    files: list[FileEntry] = []
    mcp_servers: list[McpServer] = []
    setup_checks: list[SetupCheck] = []



class MatrixVariant(_Strict):
    id: str
    tag: str | None = None
    overrides: Overrides = Overrides()

    _safe = field_validator("id")(classmethod(lambda cls, v: _safe_name(v, "variant ids")))


class Matrix(_Strict):
    variant: list[MatrixVariant]


class ExperimentV1(_Experiment, _V1Shorthands):
    schema_version: Literal[1]
    id: str
    name: Name = Field(min_length=1)
    description: str | None = None
    flow: Flow | None = None
    model: ModelSpec | None = None
    agent: AgentV1 | None = None
    setup: list[SetupStep] = []
    files: list[FileEntry] = []
    secrets: list[SecretName] = []
    mcp_servers: list[McpServer] = []
    setup_checks: list[SetupCheck] = []
    matrix: Matrix | None = None
    tests: Tests
    limits: Limits

    _id = field_validator("id")(classmethod(lambda cls, v: _kebab(v)))


Experiment = ExperimentV1 | ExperimentV2
AXES_KEYS = ("agents", "prompts", "environments", "products", "extensions", "matrix", "flow")


def parse_experiment(source: YamlSource) -> Experiment:
    """Validate parsed YAML as a v1 or v2 experiment. Raises ExperimentError only."""
    data = source.data
    if not isinstance(data, dict):
        raise ExperimentError([source.problem((), "the top level must be a mapping of fields",
                                              path="")])
    if "schema_version" not in data:
        raise ExperimentError([source.problem(("schema_version",), "field required (2, or 1 "
                                              "for legacy files)", at="parent")])
    version = data["schema_version"]
    models: dict[int, type[ExperimentV1 | ExperimentV2]] = {1: ExperimentV1, 2: ExperimentV2}
    model = models.get(version) if type(version) is int else None
    if model is None:
        raise ExperimentError([source.problem(("schema_version",), f"unsupported schema_version "
                                              f"{version!r}: use 2 (or 1 for legacy files)")])
    try:
        exp = model.model_validate(data)
    except ValidationError as e:
        raise ExperimentError(problems_from_validation(source.file, model, e,
                                                       source.position)) from None
    except RecursionError:
        raise ExperimentError([Problem(source.file, 1, 1, "", "values nested too deeply")]) \
            from None
    problems = _duplicate_tests(exp, source)
    if isinstance(exp, ExperimentV1):
        problems += _duplicate_v1_variants(exp, source)
    if problems:
        raise ExperimentError(sorted(problems, key=lambda p: (p.line, p.column)))
    exp._source = source
    return exp


def _duplicate_tests(exp: Experiment, source: YamlSource) -> list[Problem]:
    problems = []
    for kind in ("application", "introspection"):
        first: dict[str, int] = {}
        for i, test in enumerate(getattr(exp.tests, kind)):
            if test.name in first:
                other = format_path(("tests", kind, first[test.name]))
                problems.append(source.problem(("tests", kind, i, "name"),
                                               f"duplicate test name {test.name!r} "
                                               f"(also {other})"))
            first.setdefault(test.name, i)
    return problems


def _duplicate_v1_variants(exp: ExperimentV1, source: YamlSource) -> list[Problem]:
    problems = []
    seen: set[str] = set()
    for i, variant in enumerate(exp.matrix.variant if exp.matrix else []):
        if variant.id in seen:
            problems.append(source.problem(("matrix", "variant", i, "id"),
                                           f"duplicate variant id {variant.id!r}"))
        seen.add(variant.id)
    return problems
