"""One run's meter, shared by every model API the run talks to: calls, turns, tokens (cache
reads and writes included), cost at list price, and the max_cost_usd cap.

Each API turns its own usage report into a `TokenUsage` and hands it here; the meter never
looks at a wire format.
"""

from __future__ import annotations

import threading
from typing import Any

from .pricing import TokenUsage, cost_of

__all__ = ["Meter", "TokenUsage"]


class Meter:
    """Counters of one run. Thread-safe: the gateway's loop writes, pytest threads read."""

    def __init__(self, max_cost_usd: float | None = None,
                 max_turns: int | None = None) -> None:
        self.max_cost_usd = max_cost_usd
        self.max_turns = max_turns
        self.requests = 0  # model calls, refused ones included
        self.turns = 0  # main-conversation calls (those carrying tools)
        self.input_tokens = 0
        self.output_tokens = 0
        self.cache_creation_input_tokens = 0
        self.cache_read_input_tokens = 0
        self.cost_usd = 0.0
        self.stopped_reason: str | None = None
        self._lock = threading.Lock()

    def count_request(self) -> None:
        with self._lock:
            self.requests += 1

    def count_turn(self) -> bool:
        """Count a main-conversation call; False (and the run stopped) when it would be one
        more than max_turns: the agent gets no turn past the limit, however fast it asks,
        and the refused call is not a turn."""
        with self._lock:
            if self.max_turns is not None and self.turns >= self.max_turns:
                if self.stopped_reason is None:
                    self.stopped_reason = f"max_turns reached: {self.max_turns}"
                return False
            self.turns += 1
            return True

    def add(self, model: str | None, tokens: TokenUsage) -> float:
        """Meter one answered call; returns its cost. Passing the cap stops the run: the call
        that passed it is still delivered, the next ones are refused (see `stopped_reason`)."""
        cost = cost_of(model, tokens)
        with self._lock:
            self.input_tokens += tokens.input_tokens
            self.output_tokens += tokens.output_tokens
            self.cache_creation_input_tokens += tokens.cache_write_tokens
            self.cache_read_input_tokens += tokens.cache_read_tokens
            self.cost_usd += cost
            limit = self.max_cost_usd
            if limit is not None and self.stopped_reason is None and self.cost_usd > limit:
                self.stopped_reason = f"max_cost_usd exceeded: {self.cost_usd:.4f} > {limit:g}"
        return cost

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": self.requests,
                "turns": self.turns,
                "input_tokens": self.input_tokens,
                "output_tokens": self.output_tokens,
                "cache_creation_input_tokens": self.cache_creation_input_tokens,
                "cache_read_input_tokens": self.cache_read_input_tokens,
                "cost_usd": self.cost_usd,
                "stopped_reason": self.stopped_reason,
            }
