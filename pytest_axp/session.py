"""Per-process state of an AXP pytest session: run ids, options, shared services."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from .record.layout import RunPaths
from .services import Services

if TYPE_CHECKING:
    from .runner import EngineOptions
    from .sandbox.base import ResourceLimits, SandboxBackend

T = TypeVar("T")


@dataclass
class AxpSession:
    ulids: list[str]                # one per repeat, handed out by the controller
    runs_dir: Path
    variant_filter: tuple[str, ...]
    image: str | None
    services: Services = field(default_factory=Services)
    max_patch_bytes: int | None = None       # None: the engine's defaults
    max_workspace_bytes: int | None = None
    env_source: dict[str, str] | None = None  # None: the process environment
    file_bindings: tuple[tuple[str, str, str], ...] = ()
    limits: ResourceLimits | None = None  # None: the engine's defaults
    test_timeout: float | None = None   # seconds; None: the engine's defaults
    setup_timeout: float | None = None
    agents: Any = None  # agents.registry.AgentRegistry of this session's plugins
    backend: SandboxBackend | None = None  # from the pytest_axp_sandbox_backend hook

    def engine_options(self) -> EngineOptions:
        """The options of this session's variant runs; what is unset keeps the engine's
        defaults."""
        from .runner import EngineOptions

        d = EngineOptions()

        def given(value: T | None, default: T) -> T:
            return default if value is None else value

        return EngineOptions(
            image=self.image, file_bindings=self.file_bindings,
            max_patch_bytes=given(self.max_patch_bytes, d.max_patch_bytes),
            max_workspace_bytes=given(self.max_workspace_bytes, d.max_workspace_bytes),
            host_env=given(self.env_source, d.host_env),
            limits=given(self.limits, d.limits),
            test_timeout_seconds=given(self.test_timeout, d.test_timeout_seconds),
            setup_timeout_seconds=given(self.setup_timeout, d.setup_timeout_seconds),
            agent_network=given(self.services.agent_network, d.agent_network),
            agents=given(self.agents, d.agents))

    @property
    def repeat(self) -> int:
        return len(self.ulids)

    def run_paths(self, experiment_id: str, repeat: int) -> RunPaths:
        return RunPaths(self.runs_dir / f"{experiment_id}-{self.ulids[repeat - 1]}")

    def runs_on_disk(self) -> list[RunPaths]:
        """The run folders this session's run ids name (every experiment, every repeat)."""
        found = []
        if self.runs_dir.is_dir():
            for ulid in self.ulids:
                found += [RunPaths(p) for p in sorted(self.runs_dir.glob(f"*-{ulid}"))
                          if p.is_dir()]
        return found

    def resolve_image(self, agent: str = "") -> str:
        """The sandbox image for an agent: the base image plus the agent's own layer."""
        from .agents import AgentNotAvailable
        from .agents.registry import AgentRegistry, agent_image, installed_registry
        from .sandbox.docker_image import ensure_image

        if self.services.image is None:
            self.services.image = ensure_image(self.image, self.runs_dir.parent)
        base = self.services.image
        images = self.services.agent_images
        if agent and agent not in images:
            registry = self.agents if isinstance(self.agents, AgentRegistry) \
                else installed_registry()
            try:
                adapter = registry.get(agent)
            except AgentNotAvailable:
                return base  # the item says so in its preflight, before any container
            images[agent] = agent_image(base, adapter, self.runs_dir.parent,
                                        given_image=bool(self.image))
        return images.get(agent, base)


SESSION_KEY = pytest.StashKey[AxpSession]()

# The ini settings' defaults, for the plugin's addini and for callers that build options
# without a pytest config (`axp local run` before pytest starts).
INI_DEFAULTS = {
    "axp_agent_network": "open",
    "axp_memory": "4g",
    "axp_cpus": "2",
    "axp_pids_limit": "2048",
    "axp_output_limit_bytes": str(64 * 1024 * 1024),
    "axp_test_timeout": "900",
    "axp_setup_timeout": "1800",
}


def apply_options(session: AxpSession, getoption: Callable[[str], Any],
                  getini: Callable[[str], Any], cwd: Path) -> None:
    """The engine settings from pytest options and ini values, the one place they are read
    (the plugin passes its config's getters). ValueError says what is wrong."""
    from .sandbox.base import ResourceLimits

    try:
        session.limits = ResourceLimits(
            memory=str(getini("axp_memory")), cpus=float(getini("axp_cpus")),
            pids=int(getini("axp_pids_limit")),
            output_bytes=int(getini("axp_output_limit_bytes")))
    except ValueError as e:
        raise ValueError(f"axp resource limits: {e}") from None
    session.test_timeout = _seconds(getoption, getini, "axp_test_timeout")
    session.setup_timeout = _seconds(getoption, getini, "axp_setup_timeout")
    agent_network = str(getini("axp_agent_network"))
    if agent_network not in ("open", "gateway"):
        raise ValueError(f"axp_agent_network: {agent_network!r}: use open or gateway")
    session.services.agent_network = agent_network
    env_args, env_files = getoption("axp_env") or [], getoption("axp_env_file") or []
    file_args = getoption("axp_file") or []
    if env_args or env_files or (cwd / ".env").is_file():
        from .secrets import layered_environment

        session.env_source = layered_environment(   # EnvError is a ValueError
            cwd=cwd, env_files=[cwd / f for f in env_files], env_args=env_args)
    if file_args:
        session.file_bindings = parse_file_bindings(file_args, cwd)
    script = getoption("axp_model_script")
    if script:
        path = (cwd / script).resolve()
        if not path.is_file():
            raise ValueError(f"--axp-model-script {script}: no such file")
        session.services.model_script = str(path)


def _seconds(getoption: Callable[[str], Any], getini: Callable[[str], Any],
             name: str) -> float:
    """A timeout from --axp-NAME (wins) or ini NAME: a positive number of seconds."""
    option = "--" + name.replace("_", "-")
    raw = getoption(name)
    where = option if raw is not None else f"ini {name}"
    if raw is None:
        raw = getini(name)
    try:
        value = float(raw)
    except (TypeError, ValueError):
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise ValueError(f"{where}: {raw!r} is not a positive number of seconds")
    return value


def engine_options_from(options: Mapping[str, Any], ini: Mapping[str, Any],
                        cwd: Path) -> EngineOptions:
    """EngineOptions as the plugin will build them from these pytest options (by dest
    name) and ini values, for a caller that has not started pytest yet."""
    session = AxpSession(ulids=[], runs_dir=cwd, variant_filter=(),
                         image=options.get("axp_image"),
                         max_patch_bytes=options.get("axp_max_patch_bytes"),
                         max_workspace_bytes=options.get("axp_max_workspace_bytes"))
    apply_options(session, options.get, lambda name: ini.get(name, INI_DEFAULTS[name]), cwd)
    return session.engine_options()


def new_ulids(n: int) -> list[str]:
    """One ULID per repeat, all of one millisecond: the runs of one `--repeat` invocation
    are told apart from others by that timestamp (view.data.run_set), so minting them
    across a millisecond boundary (a loaded machine) would split the set."""
    import time

    from ulid import ULID

    now = time.time()
    return [str(ULID.from_timestamp(now)) for _ in range(n)]


def runs_dir_from(config: pytest.Config) -> Path:
    from .runs import resolve_runs_dir

    return resolve_runs_dir(config.getoption("axp_runs_dir"), config.invocation_params.dir)


def parse_file_bindings(items: list[str], cwd: Path) -> tuple[tuple[str, str, str], ...]:
    """--file NAME=PATH (bind a slot, or replace a named entry's source) and
    --file HOSTPATH::DEST (an extra entry). Paths resolve against `cwd`."""
    from .experiment.models import workspace_relative

    bindings = []
    for item in items:
        if "::" in item:
            host, _, dest = item.partition("::")
            try:
                dest = workspace_relative(dest)
            except ValueError as e:
                raise ValueError(f"--file {item}: {e}") from None
            bindings.append(("adhoc", _host_path(item, host, cwd), dest))
            continue
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"--file {item!r}: expected NAME=PATH or HOSTPATH::DEST")
        bindings.append(("slot", name, _host_path(item, path, cwd)))
    return tuple(bindings)


def _host_path(item: str, path: str, cwd: Path) -> str:
    """`path` from `cwd`, absolute; ValueError if it goes through a symlink. The rule is the
    experiment file's: CI runs `axp local run` on a pull request's checkout, where whoever
    wrote the branch chooses where a link points."""
    from .staging import resolve_source, symlink_in_path

    link = symlink_in_path(path, cwd)
    if link is not None:
        raise ValueError(f"--file {item}: {link[0]} is a symlink (to {link[1]}); command-line "
                         "paths are not followed through links either: pass the real path")
    return str(resolve_source(path, cwd))
