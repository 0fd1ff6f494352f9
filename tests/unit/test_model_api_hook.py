"""A plugin's model API reaches the gateway through the pytest_axp_model_api hook."""

from __future__ import annotations

import pytest

from pytest_axp.session import SESSION_KEY


def test_the_session_asks_the_hook_for_model_apis(pytester: pytest.Pytester) -> None:
    pytester.makeconftest("""
        def pytest_axp_model_api(name):
            return {"api": name} if name == "my-wire-format" else None
    """)
    config = pytester.parseconfigure()
    find = config.stash[SESSION_KEY].services.find_model_api
    assert find is not None
    assert find("my-wire-format") == {"api": "my-wire-format"}
    assert find("anthropic-messages") is None  # the built-in is registered, not hooked
