"""The codex agent's config.toml: codex asks the gateway's Responses API, runs unattended with
no bubblewrap sandbox, and any model name stays one TOML string."""

from __future__ import annotations

import tomllib

import pytest

from pytest_axp.agents.codex_layer import CODEX_HOME, codex_config


def test_the_provider_is_the_gateways_responses_api() -> None:
    config = tomllib.loads(codex_config("http://10.0.0.2:4100/", "gpt-5.2"))
    assert config["model"] == "gpt-5.2"
    provider = config["model_providers"][config["model_provider"]]
    assert provider["base_url"] == "http://10.0.0.2:4100/v1"
    assert provider["wire_api"] == "responses" and provider["env_key"] == "OPENAI_API_KEY"
    assert config["sandbox_mode"] == "danger-full-access"
    assert config["approval_policy"] == "never"
    assert "model_reasoning_effort" not in config
    assert tomllib.loads(codex_config("http://h", "m", reasoning_effort="low"))[
        "model_reasoning_effort"] == "low"
    assert not CODEX_HOME.startswith("/tmp")
    assert "model" not in tomllib.loads(codex_config("http://h", None))


@pytest.mark.parametrize("model", ['a"b', "x\nmodel = 'evil'", "back\\slash", "[t]", "é\u0007"])
def test_any_model_name_is_one_string(model: str) -> None:
    config = tomllib.loads(codex_config("http://h:1", model))
    assert config["model"] == model and set(config) >= {"model_provider", "model_providers"}


def test_without_npm_the_error_says_what_to_do(tmp_path, monkeypatch) -> None:
    from pytest_axp.agents.codex_layer import codex_acp_binary
    from pytest_axp.sandbox.base import SandboxError

    monkeypatch.delenv("AXP_CODEX_ACP_BINARY", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SandboxError, match="AXP_CODEX_ACP_BINARY=/path/to/codex-acp"):
        codex_acp_binary()
    given = tmp_path / "codex-acp"
    given.write_bytes(b"\x7fELF")
    monkeypatch.setenv("AXP_CODEX_ACP_BINARY", str(given))
    assert codex_acp_binary() == given
    monkeypatch.setenv("AXP_CODEX_ACP_BINARY", str(tmp_path / "missing"))
    with pytest.raises(SandboxError, match="is not a file"):
        codex_acp_binary()
