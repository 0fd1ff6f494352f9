"""The model gateway as a per-process service: started on first use, stopped at exit."""

from __future__ import annotations

import atexit
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .gateway import ModelGateway
    from .services import Services

_lock = threading.Lock()


def bridge_address() -> str:
    """The host's address on Docker's default bridge: reachable from sandboxes, and only
    from this machine (binding every interface would expose the gateway to the network)."""
    from .sandbox.docker import client

    try:
        config = client().networks.get("bridge").attrs["IPAM"]["Config"]
        return config[0]["Gateway"]
    except Exception:
        return "0.0.0.0"


def gateway_for(services: Services) -> ModelGateway:
    """The process's ModelGateway, started on first use (scripted when a script is set)."""
    with _lock:
        gateway = services.gateway
        if gateway is None:
            from .gateway import ModelGateway, ModelScript

            script_path = services.model_script
            script = ModelScript.load(script_path) if script_path else None
            if services.agent_network == "gateway":
                # Isolated sandboxes reach the host only on the agent network.
                from .sandbox.network import ensure_agent_network

                bind = ensure_agent_network()
            else:
                bind = bridge_address()
            gateway = ModelGateway(script=script, bind_host=bind)
            gateway.start()
            atexit.register(gateway.stop)
            services.gateway = gateway
        return gateway


def stop_gateway(services: Services) -> None:
    gateway, services.gateway = services.gateway, None
    if gateway is not None:
        gateway.stop()
