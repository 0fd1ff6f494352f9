"""The agent network: after setup, a sandbox can be moved to a Docker network with no way
out (`internal`), on which the host, and so the model gateway, is the only peer."""

from __future__ import annotations

from typing import cast

import docker
from docker.errors import APIError, DockerException, NotFound

from .base import SandboxError

AGENT_NETWORK = "pytest-axp-agent"


def ensure_agent_network(client: docker.DockerClient) -> str:
    """The host's address on the agent network, creating the network if needed."""
    try:
        try:
            network = client.networks.get(AGENT_NETWORK)
        except NotFound:
            try:
                network = client.networks.create(AGENT_NETWORK, driver="bridge",
                                                 internal=True,
                                                 labels={"axp.network": "agent"})
            except APIError:
                network = client.networks.get(AGENT_NETWORK)  # a parallel run made it
        if not network.attrs.get("Internal"):
            raise SandboxError(f"network {AGENT_NETWORK} exists but is not internal: "
                               f"remove it (docker network rm {AGENT_NETWORK})")
        return cast(str, network.attrs["IPAM"]["Config"][0]["Gateway"])  # the engine's JSON
    except DockerException as e:
        raise SandboxError(f"cannot set up the agent network: {e}") from None


def isolate(client: docker.DockerClient, container_id: str) -> None:
    """Leave every other network for the agent network: from here on the sandbox reaches
    the host's agent-network address and nothing else."""
    try:
        container = client.containers.get(container_id)
        joined = list((container.attrs.get("NetworkSettings") or {}).get("Networks") or {})
        client.networks.get(AGENT_NETWORK).connect(container)
        for name in joined:
            if name != AGENT_NETWORK:
                client.networks.get(name).disconnect(container, force=True)
    except DockerException as e:
        raise SandboxError(f"cannot isolate sandbox {container_id[:12]}: {e}") from None
