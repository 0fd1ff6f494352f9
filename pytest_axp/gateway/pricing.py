"""Per-model-family token prices used to meter gateway runs.

Numbers are Anthropic's public list prices in USD per million tokens
(https://www.anthropic.com/pricing and the "Pricing" page of the Claude API docs):
cache writes are 1.25x input for the 5-minute cache and 2x input for the 1-hour
cache, cache reads 0.1x input. They match the table baked into Claude Code
2.1.328, so the gateway's cost agrees with the CLI's own `total_cost_usd`.

Gemini models: Google's list prices for the Gemini Developer API, standard (paid) tier, text
input (https://ai.google.dev/gemini-api/docs/pricing), see `GEMINI_PRICES`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ModelPrice:
    input: float
    output: float
    cache_write: float
    cache_write_1h: float
    cache_read: float
    # What the whole call costs instead when its prompt (cached part included) has more than
    # `long_prompt` tokens (Gemini Pro models).
    long: ModelPrice | None = None
    long_prompt: int = 0


def _price(input_per_m: float, output_per_m: float) -> ModelPrice:
    return ModelPrice(
        input=input_per_m,
        output=output_per_m,
        cache_write=input_per_m * 1.25,
        cache_write_1h=input_per_m * 2.0,
        cache_read=input_per_m * 0.1,
    )


# Opus 4.5 and later list at $5/$25; the older Opus generations at $15/$75.
OPUS = _price(5.0, 25.0)
OPUS_LEGACY = _price(15.0, 75.0)
SONNET = _price(3.0, 15.0)
HAIKU = _price(1.0, 5.0)  # Haiku 4.5
HAIKU_3_5 = _price(0.8, 4.0)
HAIKU_3 = _price(0.25, 1.25)

_LEGACY_OPUS_MARKERS = ("claude-3-opus", "opus-4-0", "opus-4-1", "opus-4-2025", "opus-4@")


# ---- Gemini ------------------------------------------------------------------------------
# See the module docstring for where the figures come from.


def _gemini(input_per_m: float, output_per_m: float, cache_read_per_m: float,
            long: ModelPrice | None = None) -> ModelPrice:
    # Gemini bills no cache writes (implicit caching; explicit caches' storage is billed by
    # the hour, outside any call).
    return ModelPrice(input=input_per_m, output=output_per_m, cache_write=input_per_m,
                      cache_write_1h=input_per_m, cache_read=cache_read_per_m,
                      long=long, long_prompt=200_000 if long is not None else 0)


GEMINI_3_PRO = _gemini(2.0, 12.0, 0.20, long=_gemini(4.0, 18.0, 0.40))
GEMINI_3_FLASH = _gemini(0.50, 3.0, 0.05)
GEMINI_2_5_PRO = _gemini(1.25, 10.0, 0.125, long=_gemini(2.50, 15.0, 0.25))
GEMINI_2_5_FLASH = _gemini(0.30, 2.50, 0.03)
GEMINI_2_5_FLASH_LITE = _gemini(0.10, 0.40, 0.01)
GEMINI_2_0_FLASH = _gemini(0.10, 0.40, 0.025)
GEMINI_2_0_FLASH_LITE = _gemini(0.075, 0.30, 0.075)

# By the part of the model id that names it, most specific first (ids come with suffixes:
# `-preview-06-05`, `-001`, a `models/` prefix). Versions not listed (newer than this table)
# are priced by family at the newest listed generation's price; an unknown family as Pro,
# so a cost cap errs on the early side.
GEMINI_PRICES: tuple[tuple[str, ModelPrice], ...] = (
    ("gemini-2.0-flash-lite", GEMINI_2_0_FLASH_LITE),
    ("gemini-2.0-flash", GEMINI_2_0_FLASH),
    ("gemini-2.5-flash-lite", GEMINI_2_5_FLASH_LITE),
    ("gemini-2.5-flash", GEMINI_2_5_FLASH),
    ("gemini-2.5-pro", GEMINI_2_5_PRO),
    ("gemini-3-flash", GEMINI_3_FLASH),
    ("gemini-3-pro", GEMINI_3_PRO),
    ("flash-lite", GEMINI_2_5_FLASH_LITE),
    ("flash", GEMINI_3_FLASH),
    ("pro", GEMINI_3_PRO),
)


def gemini_price(name: str) -> ModelPrice:
    """Price row for a Gemini model id (lower case)."""
    return next((price for marker, price in GEMINI_PRICES if marker in name), GEMINI_3_PRO)


# ---- OpenAI ------------------------------------------------------------------------------
# OpenAI's list prices in USD per million tokens (https://openai.com/api/pricing, "Standard"
# tier, as published for these models): input, cached input, output. OpenAI has no cache
# writes, so those are priced as input. Longest matching prefix wins; a `gpt-`/`o`-series id
# not listed (a newer release) is priced as gpt-5, codex's default family.


def _openai(input_per_m: float, cached_per_m: float, output_per_m: float) -> ModelPrice:
    return ModelPrice(input=input_per_m, output=output_per_m, cache_write=input_per_m,
                      cache_write_1h=input_per_m, cache_read=cached_per_m)


OPENAI_PRICES: dict[str, ModelPrice] = {
    "gpt-5": _openai(1.25, 0.125, 10.0),
    "gpt-5-codex": _openai(1.25, 0.125, 10.0),
    "gpt-5-mini": _openai(0.25, 0.025, 2.0),
    "gpt-5-nano": _openai(0.05, 0.005, 0.40),
    "gpt-5-pro": _openai(15.0, 15.0, 120.0),  # no cached-input discount
    "gpt-5.1": _openai(1.25, 0.125, 10.0),
    "gpt-5.1-codex-mini": _openai(0.25, 0.025, 2.0),
    "gpt-5.2": _openai(1.75, 0.175, 14.0),
    "gpt-4.1": _openai(2.0, 0.50, 8.0),
    "gpt-4.1-mini": _openai(0.40, 0.10, 1.60),
    "gpt-4.1-nano": _openai(0.10, 0.025, 0.40),
    "gpt-4o": _openai(2.50, 1.25, 10.0),
    "gpt-4o-mini": _openai(0.15, 0.075, 0.60),
    "o3": _openai(2.0, 0.50, 8.0),
    "o4-mini": _openai(1.10, 0.275, 4.40),
}
OPENAI_DEFAULT = OPENAI_PRICES["gpt-5"]


def openai_price(name: str) -> ModelPrice | None:
    """The row for an OpenAI model id (lower case), or None when it is not an OpenAI one."""
    name = name.rsplit("/", 1)[-1]
    best = max((p for p in OPENAI_PRICES if name == p or name.startswith(p + "-")),
               key=len, default=None)
    if best is not None:
        return OPENAI_PRICES[best]
    if name.startswith(("gpt-", "codex-")) or (len(name) > 1 and name[0] == "o"
                                                and name[1].isdigit()):
        return OPENAI_DEFAULT
    return None


# ---- all providers ------------------------------------------------------------------------


def price_for_model(model: str | None) -> ModelPrice:
    """Price row for a model id; unknown or missing models are priced as Sonnet."""
    name = (model or "").lower()
    if "gemini" in name:
        return gemini_price(name)
    openai = openai_price(name)
    if openai is not None:
        return openai
    if "opus" in name:
        if any(m in name for m in _LEGACY_OPUS_MARKERS) or name.endswith("opus-4"):
            return OPUS_LEGACY
        return OPUS
    if "haiku" in name:
        if "3-5" in name:
            return HAIKU_3_5
        if "claude-3-haiku" in name:
            return HAIKU_3
        return HAIKU
    return SONNET


def _int(usage: Mapping[str, Any], key: str) -> int:
    value = usage.get(key)
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


@dataclass(frozen=True)
class TokenUsage:
    """One response's token counts in the one shape every model API reports to the meter.

    `cache_write_1h_tokens` is the part of `cache_write_tokens` written to the 1-hour cache
    (billed higher); the rest of the writes are 5-minute ones."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_1h_tokens: int = 0

    @classmethod
    def from_mapping(cls, usage: Mapping[str, Any]) -> TokenUsage:
        """From counts named as the run summary names them (which is also the Messages API's
        `usage` object, with its optional `cache_creation` breakdown)."""
        cache_write = _int(usage, "cache_creation_input_tokens")
        breakdown = usage.get("cache_creation")
        write_1h = (
            _int(breakdown, "ephemeral_1h_input_tokens") if isinstance(breakdown, Mapping) else 0
        )
        return cls(
            input_tokens=_int(usage, "input_tokens"),
            output_tokens=_int(usage, "output_tokens"),
            cache_write_tokens=cache_write,
            cache_read_tokens=_int(usage, "cache_read_input_tokens"),
            cache_write_1h_tokens=min(write_1h, cache_write),
        )


def cost_of(model: str | None, tokens: TokenUsage) -> float:
    """Cost in USD of one response's tokens at the model's list price."""
    p = price_for_model(model)
    prompt = tokens.input_tokens + tokens.cache_read_tokens + tokens.cache_write_tokens
    if p.long is not None and prompt > p.long_prompt:
        p = p.long
    total = (
        tokens.input_tokens * p.input
        + tokens.output_tokens * p.output
        + (tokens.cache_write_tokens - tokens.cache_write_1h_tokens) * p.cache_write
        + tokens.cache_write_1h_tokens * p.cache_write_1h
        + tokens.cache_read_tokens * p.cache_read
    )
    return total / 1_000_000


def cost_usd(model: str | None, usage: Mapping[str, Any]) -> float:
    """Cost of one response given its (final, merged) Messages API usage object."""
    return cost_of(model, TokenUsage.from_mapping(usage))
