"""Finding agent adapters through the `pytest_axp_agent` hook, in pytest and in the CLI.

Inside pytest the session's own plugin manager answers (installed plugins, conftest files,
`-p` plugins). Outside it (`axp experiment validate`, the CLI's checks before a run) a plugin
manager is built from the built-in agents and the `pytest11` entry points of the installed
distributions that require pytest-axp: the plugins that can provide agents, and no others
(importing every pytest plugin of the machine would cost seconds).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Sequence
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .base import Agent, AgentNotAvailable

if TYPE_CHECKING:
    import pytest

    from ..experiment import ResolvedVariant

DISTRIBUTION = "pytest-axp"
BUILTIN_PLUGIN = "pytest_axp.agents.builtin"


class AgentRegistry:
    """The agents a plugin manager's `pytest_axp_agent` implementations provide."""

    def __init__(self, hook: Any, config: pytest.Config | None = None) -> None:
        self._hook = hook
        self._config = config

    @classmethod
    def for_config(cls, config: pytest.Config) -> AgentRegistry:
        return cls(config.pluginmanager.hook, config)

    def known(self) -> list[str]:
        """Every agent name the plugins list, the first plugin's first."""
        names = self._hook.pytest_axp_agent_names(config=self._config)
        return list(dict.fromkeys(n for found in names for n in found))

    def get(self, name: str) -> Agent:
        adapter = self._hook.pytest_axp_agent(name=name, config=self._config)
        if adapter is None:
            raise AgentNotAvailable(f"agent {name!r} is not available "
                                    f"(known: {', '.join(self.known())})")
        return adapter  # type: ignore[no-any-return]

    def model_api(self, name: str) -> Any | None:
        """The model API `name` a plugin provides (the `pytest_axp_model_api` hook), or None."""
        return self._hook.pytest_axp_model_api(name=name)

    def adapter_for(self, variant: ResolvedVariant) -> Agent:
        """The variant's agent adapter, once it has accepted the variant's agent fields;
        else AgentNotAvailable with the one line that says what is wrong and where."""
        spec = variant.agent
        try:
            adapter = self.get(spec.name)
        except AgentNotAvailable as e:
            raise AgentNotAvailable(f"{variant.source_file}: variant {variant.id}: {e}") \
                from None
        problems = adapter.validate(spec)
        if problems:
            where = getattr(spec, "where", "") or variant.source_file
            raise AgentNotAvailable(f"{where}: variant {variant.id}: agent {spec.name}: "
                                    f"{problems[0]}")
        return adapter

    def problems(self, variants: Iterable[ResolvedVariant]) -> list[str]:
        """One line per variant whose agent is unknown or refuses its fields."""
        found = []
        for variant in variants:
            try:
                self.adapter_for(variant)
            except AgentNotAvailable as e:
                found.append(str(e))
        return found


def _normalized(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    return re.sub(r"[-_.]+", "-", match.group(1)).lower() if match else ""


def axp_entry_points() -> list[EntryPoint]:
    """The `pytest11` entry points of installed distributions that require pytest-axp."""
    found: dict[tuple[str, str], EntryPoint] = {}
    for ep in entry_points(group="pytest11"):
        dist = ep.dist
        if dist is None:
            continue
        if any(_normalized(r) == DISTRIBUTION for r in dist.requires or ()):
            found.setdefault((ep.name, ep.value), ep)
    return list(found.values())


def pytest_plugin_args() -> list[str]:
    """`-p` options loading pytest-axp and every installed plugin built on it, for a pytest
    run with plugin autoload off (`-p NAME` loads the `pytest11` entry point NAME)."""
    args = ["-p", "pytest_axp.plugin"]
    for ep in axp_entry_points():
        args += ["-p", ep.name]
    return args


@functools.cache
def installed_registry() -> AgentRegistry:
    """The agents of this installation, without a pytest session: the built-ins and the
    installed plugins that require pytest-axp (conftest.py agents are seen under pytest)."""
    import pytest

    from .. import hookspecs
    from . import builtin

    pm = pytest.PytestPluginManager()
    pm.add_hookspecs(hookspecs)
    pm.register(builtin, BUILTIN_PLUGIN)
    for ep in axp_entry_points():
        if pm.get_plugin(ep.name) is not None:
            continue
        try:
            plugin = ep.load()
        except Exception as e:  # any import error of a plugin: say which
            raise AgentNotAvailable(f"plugin {ep.name} ({ep.value}) does not load: "
                                    f"{type(e).__name__}: {e}") from None
        pm.register(plugin, ep.name)
    return AgentRegistry(pm.hook, None)


def agent_image(base: str, agent: Agent, lock_dir: Path, *, given_image: bool = False,
                log: Callable[[str], None] | None = None) -> str:
    """The image `agent` runs in: `base` plus the agent's layer, built once. An image the
    user gave (--axp-image) is taken as it is: it is theirs to fill."""
    layer = None if given_image else agent.image_layer()
    if layer is None:
        return base
    from ..sandbox.docker_image import ensure_layer

    return ensure_layer(base, layer, lock_dir, log)


def agent_images(base: str, names: Sequence[str], lock_dir: Path, *,
                 given_image: bool = False, registry: AgentRegistry | None = None,
                 log: Callable[[str], None] | None = None) -> dict[str, str]:
    """agent name -> image, each agent's layer built now (once) for the names given."""
    registry = registry or installed_registry()
    return {name: agent_image(base, registry.get(name), lock_dir, given_image=given_image,
                              log=log)
            for name in dict.fromkeys(names)}
