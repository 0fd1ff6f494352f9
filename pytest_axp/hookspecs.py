"""Hook specifications: where third-party plugins extend pytest-axp.

Registered with `pytest_addhooks`, so any pytest plugin (an installed package with a
`pytest11` entry point, a conftest.py, `-p module`) may implement them. The built-in agents
and the Docker backend are ordinary `trylast` implementations of these same hooks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pathlib import Path

    from .record.layout import RunPaths


@pytest.hookspec(firstresult=True)
def pytest_axp_agent(name: str, config: pytest.Config | None) -> Any | None:
    """The agent adapter (see agents.base.Agent) for an experiment's agent `name`, or None
    if this plugin has none.

    The first non-None answer wins; the built-in `command` and `claude` agents answer last,
    so a plugin may replace them. `config` is None when the `axp` CLI checks an experiment
    outside a pytest session (it then asks the built-ins and the installed plugins).
    """


def pytest_axp_agent_names(config: pytest.Config | None) -> list[str]:
    """The agent names this plugin answers `pytest_axp_agent` for: an unknown name's error
    lists them as the known agents."""
    raise NotImplementedError  # a specification: pluggy never calls its body


@pytest.hookspec(firstresult=True)
def pytest_axp_sandbox_backend(config: pytest.Config) -> Any | None:
    """The sandbox backend that creates this session's sandboxes, or None.

    The answer implements pytest_axp.sandbox.base.SandboxBackend, and its sandboxes
    Sandbox; the engine uses nothing else of them. Asked once per process, when the first
    variant runs (never at collection). The first non-None answer wins; the built-in
    Docker backend answers last. tests/fakes/local_backend.py is a small example.
    """


@pytest.hookspec(firstresult=True)
def pytest_axp_model_api(name: str) -> Any | None:
    """The model API (wire format) called `name` that the model gateway serves, or None."""


def pytest_axp_variant_finished(run: RunPaths, summary: dict[str, Any]) -> None:
    """A variant ended and its run-summary.json was just written: `summary` is its content
    (`summary["variant_id"]`), `run` the run folder (`run.root`, `run.run_id`,
    `run.results(variant_id).root`). Called in the process that ran the variant (an xdist
    worker under -n); not called for an interrupted variant, which has no summary."""


def pytest_axp_run_finished(run_dir: Path, index: dict[str, Any]) -> None:
    """A run completed: its index.json was just written under `run_dir`; `index` is its
    content. Called once per run (per repeat), in the controller process."""
