"""What the `claude` agent adds to the base sandbox image: the pinned Claude Code binary."""

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

from ..record.jsonio import atomic_file
from ..sandbox.base import ImageLayer, SandboxError

# The Claude Code release the `claude` agent runs; pinned so runs are comparable.
CLAUDE_CODE_VERSION = "2.1.328"


def _dockerfile() -> bytes:
    return (resources.files("pytest_axp.agents") / "claude_docker" / "Dockerfile").read_bytes()


def claude_layer(version: str = CLAUDE_CODE_VERSION) -> ImageLayer:
    """The layer: its key is the Dockerfile and the version, so the binary is fetched only
    when an image with that key does not exist yet."""
    dockerfile = _dockerfile()

    def context(log: Callable[[str], None] | None) -> dict[str, bytes | Path]:
        return {"Dockerfile": dockerfile, "claude": claude_binary(version, log=log)}

    return ImageLayer(name="claude", key=f"{version}\0{dockerfile.decode()}", context=context)


def claude_binary(version: str = CLAUDE_CODE_VERSION,
                  log: Callable[[str], None] | None = None) -> Path:
    """The native Claude Code binary for this machine's architecture.

    $AXP_CLAUDE_BINARY wins; else a cached copy; else `npm pack` of the platform package,
    which uses the host's own npm configuration (registry, proxy, certificates).
    """
    given = os.environ.get("AXP_CLAUDE_BINARY")
    if given:
        path = Path(given)
        if not path.is_file():
            raise SandboxError(f"AXP_CLAUDE_BINARY={given} is not a file")
        return path
    arch = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine().lower())
    if arch is None:
        raise SandboxError(f"no Claude Code build for {platform.machine()}")
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pytest-axp"
    target = cache / f"claude-code-{version}-linux-{arch}" / "claude"
    if target.is_file():
        return target
    npm = shutil.which("npm")
    if npm is None:
        raise SandboxError("the claude agent needs the Claude Code binary: install npm "
                           "(Node.js) or set AXP_CLAUDE_BINARY=/path/to/claude")
    package = f"@anthropic-ai/claude-code-linux-{arch}@{version}"
    if log:
        log(f"fetching {package} with npm")
    with tempfile.TemporaryDirectory() as tmp:
        res = subprocess.run([npm, "pack", "--silent", "--pack-destination", tmp, package],
                             capture_output=True, text=True, check=False)
        tgz = sorted(Path(tmp).glob("*.tgz"))
        if res.returncode != 0 or not tgz:
            last = (res.stderr.strip().splitlines() or ["no output"])[-1]
            raise SandboxError(f"npm pack {package} failed: {last}")
        with tarfile.open(tgz[0]) as tar:
            member = tar.getmember("package/claude")
            src = tar.extractfile(member)
            if src is None:
                raise SandboxError(f"npm pack {package}: package/claude is not a file")
            # Parallel workers fetching at once each end with a whole binary.
            with atomic_file(target, mode=0o755) as out:
                shutil.copyfileobj(src, out)
    return target
