from __future__ import annotations

import pytest

from pytest_axp.gateway.pricing import HAIKU, OPUS, OPUS_LEGACY, SONNET, cost_usd, price_for_model


@pytest.mark.parametrize(
    ("model", "price"),
    [
        ("claude-sonnet-4-5", SONNET),
        ("claude-sonnet-4-5-20250929", SONNET),
        ("claude-opus-4-5", OPUS),
        ("claude-opus-5-5", OPUS),
        ("claude-opus-4-1-20250805", OPUS_LEGACY),
        ("claude-haiku-4-5", HAIKU),
        ("some-unknown-model", SONNET),
        (None, SONNET),
    ],
)
def test_family_lookup(model: str | None, price: object) -> None:
    assert price_for_model(model) is price


def test_cost_matches_claude_code_for_sonnet() -> None:
    # 3 scripted turns of 120 in / 30 out: Claude Code 2.1.328 reports total_cost_usd 0.00243.
    assert 3 * cost_usd(
        "claude-sonnet-4-5", {"input_tokens": 120, "output_tokens": 30}
    ) == pytest.approx(0.00243)


def test_cache_tokens_and_1h_writes() -> None:
    usage = {
        "input_tokens": 1_000_000,
        "output_tokens": 1_000_000,
        "cache_creation_input_tokens": 2_000_000,
        "cache_read_input_tokens": 1_000_000,
        "cache_creation": {
            "ephemeral_1h_input_tokens": 1_000_000,
            "ephemeral_5m_input_tokens": 1_000_000,
        },
    }
    # sonnet: 3 + 15 + 3.75 (5m) + 6 (1h) + 0.30
    assert cost_usd("claude-sonnet-4-5", usage) == pytest.approx(28.05)
    assert cost_usd(
        "claude-haiku-4-5", {"input_tokens": None, "output_tokens": 1_000_000}
    ) == pytest.approx(5.0)
