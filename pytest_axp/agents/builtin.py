"""The built-in agents, as ordinary hook implementations that answer last.

A plugin that answers `pytest_axp_agent` for one of these names replaces the built-in.
Cheap to import: an adapter's module loads only when its agent is asked for.
"""

from __future__ import annotations

from typing import Any

import pytest

BUILTIN_AGENTS = ("command", "claude", "claude-code", "acp")


@pytest.hookimpl(trylast=True)
def pytest_axp_agent(name: str, config: pytest.Config | None) -> Any | None:
    if name == "command":
        from .command import CommandAgent

        return CommandAgent()
    if name == "claude":
        from .claude_acp import ClaudeAcpAgent

        return ClaudeAcpAgent()
    if name == "claude-code":
        from .claude import ClaudeAgent

        return ClaudeAgent()
    if name == "acp":
        from .acp import CommandAcpAgent

        return CommandAcpAgent()
    return None


@pytest.hookimpl(trylast=True)
def pytest_axp_agent_names(config: pytest.Config | None) -> list[str]:
    return list(BUILTIN_AGENTS)
