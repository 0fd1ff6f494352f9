"""Agent adapters, looked up by the experiment's agent name."""

from __future__ import annotations

from .base import Agent, AgentContext, AgentNotAvailable


def get_agent(name: str) -> Agent:
    if name == "command":
        from .command import CommandAgent

        return CommandAgent()
    if name == "claude":
        try:
            from .claude import ClaudeAgent
        except ImportError:
            raise AgentNotAvailable(
                "agent 'claude' is not available in this installation") from None
        return ClaudeAgent()
    raise AgentNotAvailable(f"agent {name!r} is not available (known: command, claude)")


__all__ = ["Agent", "AgentContext", "AgentNotAvailable", "get_agent"]
