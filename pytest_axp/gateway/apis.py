"""The seam for model APIs: what a wire format (Anthropic Messages, and later OpenAI Responses or
Gemini generateContent) must provide, and the registry the gateway consults to route a request.

A model API module only translates: the scripted model's agent-neutral replies into its answers,
its responses (whole or streamed) into a final message and a usage object, and its usage object
into the meter's `TokenUsage`. Authentication, recording, the cost cap, refusals, streaming
and forwarding are the gateway's, the same for every API.

Registering one: `register_model_api(MyApi())` (a plugin does it at import, e.g. from its
`pytest_configure`), or a finder asked by name (`add_model_api_finder`, where a pluggy hook
`pytest_axp_model_api(name)` plugs in); `model_api(name)` finds one by name, and a gateway
routes by path among those found so far (a run's `model_api` is looked up when it opens).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from .http import Request
from .pricing import TokenUsage
from .script import Reply


@dataclass(frozen=True)
class Route:
    """A request an API serves: `path` is exact, or a regular expression when `pattern`.

    `model_call`: a model turn, counted in the run's requests and metered. Other routes (token
    counting, say) are authenticated and recorded but neither counted nor metered."""

    method: str
    path: str
    model_call: bool = True
    pattern: bool = False

    def matches(self, method: str, path: str) -> bool:
        if method != self.method:
            return False
        return re.fullmatch(self.path, path) is not None if self.pattern else path == self.path


@dataclass
class Call:
    """One authenticated call, as an API module sees it."""

    seq: int
    request: Request
    body: dict[str, Any]
    route: Route


@dataclass
class Answer:
    """A model's answer in an API's terms: the final message, its usage as the API reports it,
    and (for a streamed answer) the events that carry it, as (event name or None, data)."""

    message: dict[str, Any] | None
    usage: dict[str, Any] = field(default_factory=dict)
    model: str | None = None
    events: Sequence[tuple[str | None, Any]] | None = None
    error: Any = None  # an error event inside a stream


@dataclass(frozen=True)
class ErrorReply:
    status: int
    body: Any
    headers: tuple[tuple[str, str], ...] = ()


@runtime_checkable
class ModelApi(Protocol):
    # Read-only members: plain class attributes satisfy them.
    @property
    def name(self) -> str: ...

    @property
    def routes(self) -> Sequence[Route]: ...

    @property
    def key_env(self) -> str:
        """Where the real key is read from (forward mode)."""

    @property
    def base_url_env(self) -> str:
        """Where another upstream URL is read from."""

    @property
    def default_upstream(self) -> str: ...

    def upstream_headers(self, key: str) -> list[tuple[str, str]]:
        """How this API carries the real key upstream."""

    def error(self, status: int, message: str, kind: str | None = None) -> ErrorReply:
        """An error in this API's shape. 402 is the gateway's refusal (run stopped, or no
        model): the answer must make the client give up at once, not retry (with another
        status if its clients retry a 402)."""

    def request_model(self, call: Call) -> str | None:
        """The model a request asks for."""

    def render(self, call: Call, reply: Reply) -> Answer:
        """A scripted reply (turn, side or exhausted; never an error) as this API answers
        `call`: streamed (with `events`) when the call asked for a stream."""

    def side_answer(self, call: Call) -> Any:
        """The scripted JSON answer to a route that is not a model call."""

    def read_stream(self, events: list[tuple[str, Any]]) -> Answer:
        """A forwarded stream, parsed into (event, data) pairs, as its final answer."""

    def read_body(self, body: Any) -> Answer:
        """A forwarded whole (non-streamed) response body as its answer."""

    def tokens(self, usage: Mapping[str, Any]) -> TokenUsage:
        """The usage object this API reports, in the meter's shape."""


Finder = Callable[[str], "ModelApi | None"]


class ModelApiRegistry:
    """Model APIs by name; routes are matched in registration order."""

    def __init__(self) -> None:
        self._apis: dict[str, ModelApi] = {}
        self._finders: list[Finder] = []
        self._lock = threading.Lock()

    def add_finder(self, finder: Finder) -> None:
        """`finder(name)` is asked for a name not registered yet (the way a pluggy hook such as
        `pytest_axp_model_api(name)` plugs in); the API it returns is registered."""
        with self._lock:
            self._finders.append(finder)

    def register(self, api: ModelApi) -> None:
        with self._lock:
            known = self._apis.get(api.name)
            if known is not None and known is not api:
                raise ValueError(f"model API {api.name!r} is already registered")
            self._apis[api.name] = api

    def get(self, name: str) -> ModelApi:
        with self._lock:
            api = self._apis.get(name)
            finders = list(self._finders)
        for finder in finders if api is None else ():
            api = finder(name)
            if api is not None:
                self.register(api)
                break
        if api is None:
            known = ", ".join(sorted(self.names())) or "none"
            raise KeyError(f"unknown model API {name!r} (known: {known})")
        return api

    def names(self) -> list[str]:
        with self._lock:
            return list(self._apis)

    def all(self) -> list[ModelApi]:
        with self._lock:
            return list(self._apis.values())

    def route(self, method: str, path: str) -> tuple[ModelApi, Route] | None:
        for api in self.all():
            for route in api.routes:
                if route.matches(method, path):
                    return api, route
        return None


REGISTRY = ModelApiRegistry()


def register_model_api(api: ModelApi) -> None:
    """Make `api` available to every gateway of this process that uses the default registry."""
    REGISTRY.register(api)


def model_api(name: str) -> ModelApi:
    return REGISTRY.get(name)


def add_model_api_finder(finder: Finder) -> None:
    """Let `finder(name)` supply APIs that are not registered yet (e.g. the plugin's hook)."""
    REGISTRY.add_finder(finder)
