"""Agent adapters, found through the `pytest_axp_agent` hook (see registry.py)."""

from __future__ import annotations

from .base import Agent, AgentContext, AgentNotAvailable, AgentSandbox

__all__ = ["Agent", "AgentContext", "AgentNotAvailable", "AgentSandbox"]
