"""The per-process services an AXP session shares between its items."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pytest

    from .gateway import ModelGateway
    from .sandbox.base import SandboxBackend


@dataclass
class Services:
    gateway: ModelGateway | None = None    # started on first use by gateway_service
    image: str | None = None               # the base sandbox image, once ensured
    agent_images: dict[str, str] = field(default_factory=dict)  # agent -> base + its layer
    agent_network: str | None = None       # "open" or "gateway"; None: the engine's default
    model_script: str | None = None        # path of a scripted model for the gateway
    next_item: pytest.Item | None = None   # the item after the running one, to prefetch for
    sandbox_backend: SandboxBackend | None = None  # this session's, once an item needs it
    # The pytest_axp_model_api hook, asked for model APIs the gateway does not know yet.
    find_model_api: Callable[[str], Any] | None = None
    runs_held: list[str] = field(default_factory=list)  # ULIDs whose run lock we hold
