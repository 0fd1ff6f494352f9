"""The `claude` agent: Claude Code through its ACP adapter, `@agentclientprotocol/claude-agent-acp`,
as AXP runs it, behind the model gateway (the sandbox gets the gateway's address and a run
token, never a key).

Model options: `model` -> ANTHROPIC_MODEL; `effort` and `fast` -> the session's `effort`
and `fast` config options (when the adapter offers the value); `thinking` -> a thinking
budget (MAX_THINKING_TOKENS: false is 0, a number is that many tokens). `context_window_size`
is not honoured (the adapter has no setting for it).
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Mapping
from typing import Any

from ..record.jsonio import write_atomic
from ..sandbox.base import ImageLayer, SandboxError
from ..secrets import Redactor
from .acp import AcpAgent, GatewayAccess
from .base import AgentContext, model_fields

ADAPTER_PACKAGE = "@agentclientprotocol/claude-agent-acp"
ADAPTER_VERSION = "0.101.0"   # pinned so runs are comparable
ADAPTER_BIN = "claude-agent-acp"
# `auto` makes classifier side calls a scripted model cannot answer; `default` asks us for
# each permission and we allow it (AXP answers allow_always too).
SESSION_MODE = "default"
HOME = "/home/agent"


def _offered(session: Mapping[str, Any], config_id: str, value: str) -> bool:
    for option in session.get("configOptions") or []:
        if isinstance(option, dict) and option.get("id") == config_id:
            return any(isinstance(o, dict) and o.get("value") == value
                       for o in option.get("options") or [])
    return False


def read_sandbox_file(ctx: AgentContext, path: str) -> bytes | None:
    """One file out of the sandbox, or None when it is not there."""
    try:
        buf = io.BytesIO(b"".join(ctx.sandbox.get_archive(path)))
        with tarfile.open(fileobj=buf) as tar:
            member = tar.next()
            f = tar.extractfile(member) if member else None
            return f.read() if f is not None else None
    except (SandboxError, tarfile.TarError, OSError):
        return None


class ClaudeAcpAgent(AcpAgent):
    name = "claude"
    model_api: str | None = "anthropic-messages"

    def image_layer(self) -> ImageLayer | None:
        from .acp_layer import npm_adapter_layer

        return npm_adapter_layer("claude-acp", ADAPTER_PACKAGE, ADAPTER_VERSION, ADAPTER_BIN)

    def adapter_argv(self, ctx: AgentContext) -> list[str]:
        return [ADAPTER_BIN]

    def adapter_env(self, ctx: AgentContext, gateway: GatewayAccess | None) -> dict[str, str]:
        env = {
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_AUTOUPDATER": "1",
            "CLAUDE_CODE_MAX_RETRIES": "2",
            "API_TIMEOUT_MS": "600000",
            # Exactly 1: some hosts export IS_SANDBOX=yes, which the CLI refuses.
            "IS_SANDBOX": "1",
            "HOME": HOME,
        }
        if gateway is not None:
            env["ANTHROPIC_BASE_URL"] = gateway.base_url
            env["ANTHROPIC_API_KEY"] = gateway.token
        model, extra = model_fields(ctx.variant.agent.model)
        if model:
            env["ANTHROPIC_MODEL"] = model
        thinking = extra.get("thinking")
        if isinstance(thinking, bool) and not thinking:
            env["MAX_THINKING_TOKENS"] = "0"
        elif isinstance(thinking, int) and not isinstance(thinking, bool):
            env["MAX_THINKING_TOKENS"] = str(thinking)
        return env

    def session_mode(self, ctx: AgentContext, session: Mapping[str, Any]) -> str | None:
        return SESSION_MODE

    def after_session(self, ctx: AgentContext, session_id: str | None) -> None:
        # Seed 004: agent-session.jsonl is Claude Code's own session file, best effort.
        if not session_id or "/" in session_id:
            return
        data = read_sandbox_file(ctx, f"{HOME}/.claude/projects/-workspace/{session_id}.jsonl")
        if data is not None:
            write_atomic(ctx.paths.agent_session, Redactor(ctx.secret_values).bytes(data))

    def session_config(self, ctx: AgentContext,
                       session: Mapping[str, Any]) -> dict[str, str]:
        _model, extra = model_fields(ctx.variant.agent.model)
        wanted: dict[str, str] = {}
        if extra.get("effort"):
            wanted["effort"] = str(extra["effort"])
        if isinstance(extra.get("fast"), bool):
            wanted["fast"] = "on" if extra["fast"] else "off"
        return {k: v for k, v in wanted.items() if _offered(session, k, v)}
