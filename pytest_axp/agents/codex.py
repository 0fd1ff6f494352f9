"""The `codex` agent: OpenAI's codex through Zed's ACP adapter, `codex-acp` (codex built in),
behind the gateway's OpenAI Responses API (the sandbox gets the gateway's address and a run
token in OPENAI_API_KEY, never a key).

Model options: `model` -> codex's `model` (none: codex's own default); `effort` ->
`model_reasoning_effort` when it is one codex knows (minimal, low, medium, high, xhigh).
`thinking`, `context_window_size` and `fast` are not honoured (codex has no such settings).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..sandbox.base import ImageLayer
from .acp import AcpAgent, GatewayAccess
from .base import AgentContext, model_fields
from .codex_layer import CODEX_HOME, TOKEN_ENV, codex_config, codex_layer

MODEL_API = "openai-responses"
ADAPTER_BIN = "codex-acp"
# The codex-acp mode that runs commands without asking and without bubblewrap (which cannot
# start inside Docker); the config already asks for it, the session confirms it.
FULL_ACCESS = "full-access"
EFFORTS = ("minimal", "low", "medium", "high", "xhigh")


class CodexAgent(AcpAgent):
    name = "codex"
    model_api: str | None = MODEL_API
    # codex-acp does not exit when stdin ends (measured): once the prompt has its result,
    # waiting for it only adds seconds to every variant.
    exit_grace_seconds = 0.5

    def image_layer(self) -> ImageLayer | None:
        return codex_layer()

    def adapter_argv(self, ctx: AgentContext) -> list[str]:
        return [ADAPTER_BIN]

    def adapter_env(self, ctx: AgentContext, gateway: GatewayAccess | None) -> dict[str, str]:
        env = {"CODEX_HOME": CODEX_HOME, "HOME": "/home/agent", "NO_BROWSER": "1"}
        if gateway is not None:
            env[TOKEN_ENV] = gateway.token
        return env

    def sandbox_files(self, ctx: AgentContext,
                      gateway: GatewayAccess | None) -> dict[str, bytes]:
        model, extra = model_fields(ctx.variant.agent.model)
        effort = extra.get("effort")
        base_url = gateway.base_url if gateway is not None else "http://127.0.0.1:9"
        config = codex_config(base_url, model,
                              reasoning_effort=effort if effort in EFFORTS else None)
        return {f"{CODEX_HOME}/config.toml": config.encode()}

    def session_mode(self, ctx: AgentContext, session: Mapping[str, Any]) -> str | None:
        modes = session.get("modes")
        if not isinstance(modes, Mapping) or modes.get("currentModeId") == FULL_ACCESS:
            return None
        offered = {m.get("id") for m in modes.get("availableModes") or ()
                   if isinstance(m, Mapping)}
        return FULL_ACCESS if FULL_ACCESS in offered else None
