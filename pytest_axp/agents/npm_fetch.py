"""One file out of an npm package, fetched on the host with `npm pack` (the host's own npm
configuration: registry, proxy, certificates) and cached, for an agent's image layer."""

from __future__ import annotations

import platform
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

from ..record.jsonio import atomic_file
from ..sandbox.base import SandboxError
from .acp_layer import cache_dir

__all__ = ["cache_dir", "npm_arch", "npm_file"]


def npm_arch() -> str:
    """This machine's architecture as npm platform packages name it."""
    arch = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine().lower())
    if arch is None:
        raise SandboxError(f"no agent build for {platform.machine()}")
    return arch


def npm_file(package: str, member: str, target: Path, *, hint: str,
             log: Callable[[str], None] | None = None) -> Path:
    """`target`, extracted from `member` of the npm `package` (name@version) unless cached.
    `hint` says what to do without npm."""
    if target.is_file():
        return target
    npm = shutil.which("npm")
    if npm is None:
        raise SandboxError(f"install npm (Node.js) to fetch {package}, or {hint}")
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
            try:
                src = tar.extractfile(tar.getmember(member))
            except KeyError:
                src = None
            if src is None:
                raise SandboxError(f"npm pack {package}: {member} is not a file")
            # Parallel workers fetching at once each end with a whole file.
            with atomic_file(target, mode=0o755) as out:
                shutil.copyfileobj(src, out)
    return target
