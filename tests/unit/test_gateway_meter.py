"""The shared meter: one normalised usage shape, cache tokens, cost at list price, the cost cap."""

from __future__ import annotations

import pytest

from pytest_axp.gateway import ModelScript
from pytest_axp.gateway.apis import Answer
from pytest_axp.gateway.messages import MESSAGES
from pytest_axp.gateway.meter import Meter, TokenUsage
from pytest_axp.gateway.pricing import cost_of
from pytest_axp.gateway.sse import events_of_message

CACHED = {
    "input_tokens": 100,
    "output_tokens": 40,
    "cache_creation_input_tokens": 300,
    "cache_read_input_tokens": 2000,
    "cache_creation": {"ephemeral_1h_input_tokens": 200, "ephemeral_5m_input_tokens": 100},
}


def test_messages_usage_in_the_meters_shape() -> None:
    assert MESSAGES.tokens(CACHED) == TokenUsage(
        input_tokens=100,
        output_tokens=40,
        cache_write_tokens=300,
        cache_read_tokens=2000,
        cache_write_1h_tokens=200,
    )
    # Missing, null and non-numeric counts are zero; a 1h share never exceeds the writes.
    assert MESSAGES.tokens(
        {
            "input_tokens": None,
            "output_tokens": "7",
            "cache_creation_input_tokens": 5,
            "cache_creation": {"ephemeral_1h_input_tokens": 9},
        }
    ) == TokenUsage(cache_write_tokens=5, cache_write_1h_tokens=5)


def test_whole_and_streamed_answers_report_the_same_usage() -> None:
    script = ModelScript.from_yaml(
        "turns: [{text: hi}]\nusage: {input_tokens: 12, output_tokens: 34, "
        "cache_read_input_tokens: 56, cache_creation_input_tokens: 78}"
    )
    message = (
        script.cursor().next_reply({"model": "claude-haiku-4-5", "tools": [{"name": "x"}]}).message
    )
    assert message is not None
    whole = MESSAGES.read_body(message)
    streamed = MESSAGES.read_stream(list(events_of_message(message)))
    expected = TokenUsage(
        input_tokens=12, output_tokens=34, cache_write_tokens=78, cache_read_tokens=56
    )
    assert MESSAGES.tokens(whole.usage) == MESSAGES.tokens(streamed.usage) == expected
    assert whole.model == streamed.model == "claude-haiku-4-5"
    assert MESSAGES.read_body(["not", "an", "object"]) == Answer(None)


def test_meter_adds_tokens_and_cost() -> None:
    meter = Meter()
    tokens = MESSAGES.tokens(CACHED)
    first = meter.add("claude-sonnet-4-5", tokens)
    # sonnet per million: 3 in, 15 out, 3.75 5m writes, 6 1h writes, 0.30 reads
    assert first == pytest.approx((100 * 3 + 40 * 15 + 100 * 3.75 + 200 * 6 + 2000 * 0.3) / 1e6)
    assert first == cost_of("claude-sonnet-4-5", tokens)
    second = meter.add("claude-opus-4-5", TokenUsage(input_tokens=1000))
    assert second == pytest.approx(1000 * 5 / 1e6)
    meter.count_request()
    meter.count_request()
    meter.count_turn()
    snap = meter.snapshot()
    assert snap == {
        "requests": 2, "turns": 1, "input_tokens": 1100, "output_tokens": 40,
        "cache_creation_input_tokens": 300, "cache_read_input_tokens": 2000,
        "cost_usd": pytest.approx(first + second), "stopped_reason": None,
    }


def test_cap_stops_once_passed_and_keeps_metering() -> None:
    meter = Meter(max_cost_usd=0.01)
    turn = TokenUsage(input_tokens=1000, output_tokens=1000)  # 0.018 USD at Sonnet prices
    cheap = TokenUsage(input_tokens=1)
    meter.add("claude-sonnet-4-5", cheap)
    assert meter.stopped_reason is None
    meter.add("claude-sonnet-4-5", turn)
    assert meter.stopped_reason == "max_cost_usd exceeded: 0.0180 > 0.01"
    meter.add("claude-sonnet-4-5", turn)  # the first reason stays; spending is still counted
    assert meter.stopped_reason == "max_cost_usd exceeded: 0.0180 > 0.01"
    assert meter.input_tokens == 2001 and meter.cost_usd == pytest.approx(0.036003)


def test_cap_is_exclusive_and_none_is_no_cap() -> None:
    at_limit = Meter(max_cost_usd=0.018)
    at_limit.add("claude-sonnet-4-5", TokenUsage(input_tokens=1000, output_tokens=1000))
    assert at_limit.stopped_reason is None  # reaching the cap is allowed, passing it is not
    free = Meter()
    free.add("claude-opus-4-1", TokenUsage(output_tokens=10_000_000))
    assert free.stopped_reason is None and free.cost_usd == pytest.approx(750.0)
