"""Where a model-driven agent's answers come from, for any model API: a script, a key (or
an upstream of one's own), or nothing, which is said before any sandbox."""

from __future__ import annotations

from dataclasses import dataclass

from pytest_axp.gateway_service import model_state


@dataclass(frozen=True)
class _Api:
    """Only what the check reads of a model API."""

    name: str = "other-api"
    key_env: str = "OTHER_TEST_KEY"
    base_url_env: str = "OTHER_TEST_BASE_URL"
    default_upstream: str = "https://api.other.example"


def test_any_api_without_key_or_script_has_no_model(monkeypatch):
    monkeypatch.delenv("OTHER_TEST_KEY", raising=False)
    monkeypatch.delenv("OTHER_TEST_BASE_URL", raising=False)
    find = {"other-api": _Api()}.get
    assert model_state("other-api", scripted=False, find=find) == (
        "none", "no OTHER_TEST_KEY and no --model-script")
    assert model_state("other-api", scripted=True, find=find) == ("scripted", None)
    monkeypatch.setenv("OTHER_TEST_KEY", "k" * 20)
    assert model_state("other-api", scripted=False, find=find) == ("live", None)


def test_an_upstream_of_ones_own_needs_no_key(monkeypatch):
    monkeypatch.delenv("OTHER_TEST_KEY", raising=False)
    monkeypatch.setenv("OTHER_TEST_BASE_URL", "http://127.0.0.1:9")
    assert model_state("other-api", scripted=False, find={"other-api": _Api()}.get) == (
        "live", None)


def test_builtin_messages_api_reads_anthropic_key(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    assert model_state("anthropic-messages", scripted=False) == (
        "none", "no ANTHROPIC_API_KEY and no --model-script")


def test_an_api_nobody_provides_is_left_to_the_gateway():
    assert model_state("nobody-has-this", scripted=False, find=lambda name: None) == (
        "live", None)
