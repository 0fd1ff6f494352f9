"""The base image: shipped as a Dockerfile, tagged by its content, built on first use."""

from __future__ import annotations

import fcntl
import hashlib
import io
import os
import platform
import shutil
import subprocess
import tarfile
import tempfile
from importlib import resources
from pathlib import Path

from docker.errors import BuildError, DockerException, ImageNotFound

from ..record.jsonio import atomic_file
from .base import SandboxError
from .docker import client

IMAGE_REPO = "pytest-axp/base"
CLAUDE_IMAGE_REPO = "pytest-axp/claude"
DEFAULT_BASE_IMAGE = "debian:bookworm"
# The Claude Code release the `claude` agent runs; pinned so runs are comparable.
CLAUDE_CODE_VERSION = "2.1.328"


def _image_dir(name: str = "image"):
    return resources.files("pytest_axp.sandbox") / name


def _context_files(name: str = "image") -> dict[str, bytes]:
    root = _image_dir(name)
    return {p.name: p.read_bytes() for p in sorted(root.iterdir(), key=lambda p: p.name)
            if p.is_file()}


def default_image_tag(base_image: str = DEFAULT_BASE_IMAGE) -> str:
    h = hashlib.sha256(base_image.encode())
    for name, data in _context_files().items():
        h.update(name.encode() + b"\0" + data)
    return f"{IMAGE_REPO}:{h.hexdigest()[:12]}"


def image_exists(tag: str) -> bool:
    try:
        client().images.get(tag)
        return True
    except ImageNotFound:
        return False
    except DockerException as e:
        raise SandboxError(f"cannot inspect image {tag}: {e}") from None


def _docker_build(context: dict[str, bytes | Path], tag: str, buildargs: dict[str, str],
                  base_image: str, log=None) -> str:
    with tempfile.TemporaryFile() as buf:
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for name, data in context.items():
                if isinstance(data, Path):
                    tar.add(data, arcname=name)
                    continue
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        buf.seek(0)
        return _run_build(buf, tag, buildargs, base_image, log)


def build_image(tag: str | None = None, base_image: str = DEFAULT_BASE_IMAGE,
                log=None) -> str:
    tag = tag or default_image_tag(base_image)
    return _docker_build(dict(_context_files()), tag, {"BASE_IMAGE": base_image},
                         base_image, log)


def _run_build(buf, tag: str, buildargs: dict[str, str], base_image: str, log=None) -> str:
    try:
        _, lines = client().images.build(
            fileobj=buf, custom_context=True, tag=tag, rm=True, forcerm=True,
            buildargs=buildargs, pull=False)
        for line in lines:
            if log and "stream" in line:
                log(line["stream"].rstrip())
    except BuildError as e:
        tail = "".join(x.get("stream", "") for x in list(e.build_log)[-8:]).strip()
        hint = ""
        if "pull access denied" in tail or "not found" in tail or "manifest" in tail:
            hint = (f" (is the base image {base_image!r} available? Without an image "
                    "registry, seed it locally: see README)")
        raise SandboxError(f"building {tag} failed: {e.msg}{hint}\n{tail}") from None
    except DockerException as e:
        raise SandboxError(f"building {tag} failed: {e}") from None
    return tag


def ensure_image(tag: str | None, lock_dir: Path, log=None) -> str:
    """The image to run: the given one (must exist) or the default, built once under a lock."""
    if tag:
        if not image_exists(tag):
            raise SandboxError(f"image {tag!r} not found: build it or drop --axp-image")
        return tag
    base = os.environ.get("AXP_BASE_IMAGE", DEFAULT_BASE_IMAGE)
    return _build_once(default_image_tag(base), lock_dir,
                       lambda tag: build_image(tag, base, log=log))


def _build_once(tag: str, lock_dir: Path, build) -> str:
    """`tag`, built by `build(tag)` unless it exists; parallel workers (xdist) and runs
    wait for one build instead of each making their own."""
    if image_exists(tag):
        return tag
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / ".image-build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not image_exists(tag):
            build(tag)
    return tag


# -- Claude Code layer ---------------------------------------------------------------------

def claude_image_tag(base_tag: str, version: str = CLAUDE_CODE_VERSION) -> str:
    h = hashlib.sha256(f"{base_tag}\0{version}".encode())
    for name, data in _context_files("claude_image").items():
        h.update(name.encode() + b"\0" + data)
    return f"{CLAUDE_IMAGE_REPO}:{h.hexdigest()[:12]}"


def claude_binary(version: str = CLAUDE_CODE_VERSION, log=None) -> Path:
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
                             capture_output=True, text=True)
        tgz = sorted(Path(tmp).glob("*.tgz"))
        if res.returncode != 0 or not tgz:
            last = (res.stderr.strip().splitlines() or ["no output"])[-1]
            raise SandboxError(f"npm pack {package} failed: {last}")
        with tarfile.open(tgz[0]) as tar:
            member = tar.getmember("package/claude")
            src = tar.extractfile(member)
            # Parallel workers fetching at once each end with a whole binary.
            with atomic_file(target, mode=0o755) as out:
                shutil.copyfileobj(src, out)
    return target


def ensure_claude_image(base_tag: str, lock_dir: Path, log=None) -> str:
    def build(tag: str) -> None:
        context: dict[str, bytes | Path] = dict(_context_files("claude_image"))
        context["claude"] = claude_binary(log=log)
        _docker_build(context, tag, {"BASE": base_tag}, base_tag, log)

    return _build_once(claude_image_tag(base_tag), lock_dir, build)
