"""Agent adapters, found through the `pytest_axp_agent` hook (see registry.py).

The names below load on first use: the plugin imports `agents.builtin` in every pytest
session, which must stay cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .base import Agent, AgentContext, AgentNotAvailable, AgentSandbox

__all__ = ["Agent", "AgentContext", "AgentNotAvailable", "AgentSandbox"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
