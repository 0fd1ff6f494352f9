"""Image layers for ACP adapters distributed on npm, fetched on the host and copied in.

The host's own npm (its registry, proxy and certificates) installs the adapter into a cache
folder once per pinned version; the Docker build only copies that folder, so it needs no
network. Node comes with the base image.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path

from ..sandbox.base import ImageLayer
from ..sandbox.npm_fetch import npm_package_dir

Log = Callable[[str], None] | None


def _dockerfile() -> bytes:
    return (resources.files("pytest_axp.agents") / "acp_docker" / "Dockerfile").read_bytes()


def npm_adapter_layer(name: str, package: str, version: str, binary: str) -> ImageLayer:
    """A layer with the npm `package` installed under /opt/axp/adapter, its bin `binary`
    linked into /usr/local/bin (node is the base image's)."""
    dockerfile = _dockerfile()

    def context(log: Log) -> dict[str, bytes | Path]:
        return {"Dockerfile": dockerfile,
                "adapter": npm_package_dir(package, version, log=log),
                "adapter-bin": binary.encode()}

    key = f"{package}@{version}\0{binary}\0{dockerfile.decode()}"
    return ImageLayer(name=name, key=key, context=context)
