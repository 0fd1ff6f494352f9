"""Image layers for ACP adapters distributed on npm, fetched on the host and copied in.

The host's own npm (its registry, proxy and certificates) installs the adapter into a cache
folder once per pinned version; the Docker build only copies that folder, so it needs no
network. Node comes with the base image.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from ..sandbox.base import ImageLayer, SandboxError
from ..sandbox.npm_fetch import cache_dir, npm_arch

Log = Callable[[str], None] | None


def _npm() -> str:
    npm = shutil.which("npm")
    if npm is None:
        raise SandboxError("ACP agents are installed with the host's npm: install Node.js/npm")
    return npm


def _publish(tmp: Path, target: Path) -> Path:
    # Parallel workers fetching at once: the first rename wins, the others drop theirs.
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        tmp.rename(target)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not target.is_dir():
            raise
    if not any(target.iterdir()):
        raise SandboxError(f"{target} is empty: remove it and try again")
    return target


def npm_package_dir(package: str, version: str, log: Log = None) -> Path:
    """`package@version` with its dependencies, installed by the host's npm into a cached
    folder (`<folder>/node_modules/<package>`). Linux on this architecture only."""
    safe = package.replace("/", "+").lstrip("@")
    target = cache_dir() / f"npm-{safe}-{version}-linux-{npm_arch()}"
    if (target / "node_modules" / package / "package.json").is_file():
        return target
    if log:
        log(f"installing {package}@{version} with npm (host side)")
    cache_dir().mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir()) as tmp:
        out = Path(tmp) / "out"
        out.mkdir()
        res = subprocess.run(
            [_npm(), "install", "--prefix", str(out), "--omit=dev", "--no-audit", "--no-fund",
             "--ignore-scripts", "--no-save", "--os=linux", f"--cpu={npm_arch()}",
             f"{package}@{version}"],
            capture_output=True, text=True, check=False)
        if res.returncode != 0:
            last = (res.stderr.strip().splitlines() or ["no output"])[-1]
            raise SandboxError(f"npm install {package}@{version} failed: {last}")
        return _publish(out, target)


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
