"""The model gateway as a per-process service: started on first use, stopped at exit."""

from __future__ import annotations

import atexit
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .gateway import ModelApi, ModelGateway
    from .services import Services

_lock = threading.Lock()


def _bind_address(services: Services) -> str | list[str]:
    """Where sandboxes reach the host: the gateway binds there, and only there (binding
    every interface would expose it to the network). Isolated sandboxes reach the host
    only on the agent network. A pool of engines has one such address per engine."""
    from .sandbox import builtin_backend

    backend = services.sandbox_backend or builtin_backend()
    isolated = services.agent_network == "gateway"
    several = getattr(backend, "host_addresses", None)
    if several is not None:
        return list(several(isolated))
    return backend.host_address(isolated=isolated)


def _expose(services: Services, port: int) -> None:
    """Engines that reach this host only through their SSH connection get a forward."""
    from .sandbox import builtin_backend

    backend = services.sandbox_backend or builtin_backend()
    expose = getattr(backend, "expose_gateway", None)
    if expose is not None:
        expose(port, services.agent_network == "gateway")


def gateway_for(services: Services) -> ModelGateway:
    """The process's ModelGateway, started on first use (scripted when a script is set)."""
    with _lock:
        gateway = services.gateway
        if gateway is None:
            from .gateway import ModelGateway, ModelScript
            from .gateway.apis import add_model_api_finder

            script_path = services.model_script
            script = ModelScript.load(script_path) if script_path else None
            if services.find_model_api is not None:
                add_model_api_finder(services.find_model_api)
            gateway = ModelGateway(script=script, bind_host=_bind_address(services))
            gateway.start()
            atexit.register(gateway.stop)
            services.gateway = gateway
            _expose(services, gateway.port)
        return gateway


def stop_gateway(services: Services) -> None:
    gateway, services.gateway = services.gateway, None
    if gateway is not None:
        gateway.stop()


def model_state(api_name: str, *, scripted: bool, gateway: ModelGateway | None = None,
                find: Callable[[str], Any] | None = None) -> tuple[str, str | None]:
    """Where an agent speaking `api_name` gets its answers: ("scripted" | "live" | "none",
    why none). "none" is no key and no script: the agent could only fail, so the run says
    so before any sandbox. An API nobody provides is the gateway's to report ("live")."""
    if scripted:
        return "scripted", None
    from .gateway.apis import model_api
    from .gateway.calls import Upstream, no_model_reason

    api: ModelApi | None
    try:
        api = model_api(api_name)
    except KeyError:
        api = find(api_name) if find is not None else None
    if api is None:
        return "live", None
    upstream = gateway.upstream_for(api) if gateway is not None else Upstream.of(api)
    if upstream.usable:
        return "live", None
    return "none", no_model_reason(api)
