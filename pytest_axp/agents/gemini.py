"""The `gemini` agent: Gemini CLI in ACP mode (`gemini --acp`) behind the model gateway's
Gemini API. The sandbox gets the gateway's address and a run token, never GEMINI_API_KEY.

Gemini CLI 0.61.0 (measured): it takes the gateway from GOOGLE_GEMINI_BASE_URL (plain http to
any host: host.docker.internal or the agent network's address work as well as localhost) and
the token as its API key (sent in `x-goog-api-key`); GEMINI_CLI_TRUST_WORKSPACE trusts
/workspace (an untrusted folder refuses YOLO mode); the session runs in mode `yolo`, so tools
run without permission requests. Usage statistics, telemetry and update checks are off in the
image's system settings.

Model options: `model` -> `--model=NAME` (without one the CLI routes each prompt itself, asking a
classifier side call that the gateway answers). `effort`, `thinking`, `context_window_size`
and `fast` are not honoured: the CLI takes them from model configs, not from its command line.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..sandbox.base import ImageLayer
from .acp import AcpAgent, GatewayAccess
from .base import AgentContext

MODEL_API = "gemini"  # the gateway's name for the API Gemini CLI speaks
SESSION_MODE = "yolo"


class GeminiAgent(AcpAgent):
    name = "gemini"
    model_api: str | None = MODEL_API

    def image_layer(self) -> ImageLayer | None:
        from .gemini_layer import gemini_layer

        return gemini_layer()

    def adapter_argv(self, ctx: AgentContext) -> list[str]:
        argv = ["gemini", "--acp"]
        model = self.model_name(ctx)
        if model:
            # One argument: a name starting with "-" cannot become another option.
            argv.append(f"--model={model}")
        return argv

    def adapter_env(self, ctx: AgentContext, gateway: GatewayAccess | None) -> dict[str, str]:
        env = {
            "HOME": "/home/agent",
            "GEMINI_CLI_TRUST_WORKSPACE": "true",
            # One node process, not a relaunched child with more heap: the harness owns
            # the process and its limits.
            "GEMINI_CLI_NO_RELAUNCH": "true",
        }
        if gateway is not None:
            env["GOOGLE_GEMINI_BASE_URL"] = gateway.base_url
            env["GEMINI_API_KEY"] = gateway.token
        return env

    def session_mode(self, ctx: AgentContext, session: Mapping[str, Any]) -> str | None:
        return SESSION_MODE
