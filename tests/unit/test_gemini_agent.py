"""The `gemini` agent's hooks on the ACP base: its command line, its environment (the gateway
and the run token, never a key) and its session mode."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from pytest_axp.agents.acp import GatewayAccess
from pytest_axp.agents.gemini import GeminiAgent


def ctx(model: Any = None) -> Any:
    return SimpleNamespace(variant=SimpleNamespace(agent=SimpleNamespace(model=model)))


def test_the_model_is_a_flag_and_no_model_lets_the_cli_route() -> None:
    agent = GeminiAgent()
    assert agent.adapter_argv(ctx("gemini-2.5-pro")) == ["gemini", "--acp",
                                                         "--model=gemini-2.5-pro"]
    assert agent.adapter_argv(ctx()) == ["gemini", "--acp"]
    # a model object's name is the model; a name that looks like an option stays the value
    assert agent.adapter_argv(ctx(SimpleNamespace(
        model_dump=lambda exclude_none: {"name": "--yolo", "effort": "high"}))) == [
        "gemini", "--acp", "--model=--yolo"]


def test_the_sandbox_gets_the_gateway_and_the_run_token() -> None:
    access = GatewayAccess("http://host.docker.internal:4711", "axp-run-tok", handle=None)  # type: ignore[arg-type]
    env = GeminiAgent().adapter_env(ctx(), access)
    assert env["GOOGLE_GEMINI_BASE_URL"] == "http://host.docker.internal:4711"
    assert env["GEMINI_API_KEY"] == "axp-run-tok"
    assert env["GEMINI_CLI_TRUST_WORKSPACE"] == "true"
    assert "GEMINI_API_KEY" not in GeminiAgent().adapter_env(ctx(), None)


def test_the_session_runs_unattended() -> None:
    agent = GeminiAgent()
    assert agent.model_api == "gemini" and agent.name == "gemini"
    assert agent.session_mode(ctx(), {"modes": {"currentModeId": "default"}}) == "yolo"
    layer = agent.image_layer()
    assert layer is not None and layer.name == "gemini"
