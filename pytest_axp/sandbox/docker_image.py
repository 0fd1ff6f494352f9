"""The base image: shipped as a Dockerfile, tagged by its content, built on first use."""

from __future__ import annotations

import fcntl
import hashlib
import io
import os
import tarfile
import tempfile
from collections.abc import Callable
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import IO

from docker.errors import BuildError, DockerException, ImageNotFound

from .base import ImageLayer, SandboxError
from .docker import client
from .npm_fetch import cache_dir, given_file, npm_arch, packed_file

IMAGE_REPO = "pytest-axp/base"
# Node for agents and experiments that need it (AXP's sandboxes have node; Debian bookworm's
# is 18, too old for the ACP adapters): npm's plain build, pinned so images are comparable.
NODE_VERSION = "22.23.5"
LAYER_REPO_PREFIX = "pytest-axp/"  # an agent's layer is pytest-axp/<layer name>:<digest>
DEFAULT_BASE_IMAGE = "debian:bookworm"


Log = Callable[[str], None] | None


def _image_dir(name: str = "image") -> Traversable:
    return resources.files("pytest_axp.sandbox") / name


def _context_files(name: str = "image") -> dict[str, bytes]:
    root = _image_dir(name)
    return {p.name: p.read_bytes() for p in sorted(root.iterdir(), key=lambda p: p.name)
            if p.is_file()}


def node_binary(log: Log = None) -> Path:
    """The node executable for the base image: $AXP_NODE_BINARY, a cached copy, or npm's
    `node-linux-<arch>` package fetched on the host."""
    given = given_file("AXP_NODE_BINARY")
    if given is not None:
        return given
    arch = npm_arch()
    return packed_file(f"node-linux-{arch}@{NODE_VERSION}", "bin/node",
                       cache_dir() / f"node-{NODE_VERSION}-linux-{arch}" / "node",
                       needed_by="the sandbox image (or AXP_NODE_BINARY=/path/to/node)",
                       log=log)


def default_image_tag(base_image: str = DEFAULT_BASE_IMAGE) -> str:
    h = hashlib.sha256(base_image.encode() + b"\0node " + NODE_VERSION.encode())
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
                  base_image: str, log: Log = None) -> str:
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
                log: Log = None) -> str:
    tag = tag or default_image_tag(base_image)
    context: dict[str, bytes | Path] = {**_context_files(), "node": node_binary(log)}
    return _docker_build(context, tag, {"BASE_IMAGE": base_image},
                         base_image, log)


def _run_build(buf: IO[bytes], tag: str, buildargs: dict[str, str], base_image: str,
               log: Log = None) -> str:
    try:
        _, lines = client().images.build(
            fileobj=buf, custom_context=True, tag=tag, rm=True, forcerm=True,
            buildargs=buildargs, pull=False)
        for line in lines:
            # The engine's build log: one JSON object per line.
            stream = line.get("stream") if isinstance(line, dict) else None
            if log and isinstance(stream, str):
                log(stream.rstrip())
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


def ensure_image(tag: str | None, lock_dir: Path, log: Log = None) -> str:
    """The image to run: the given one (must exist) or the default, built once under a lock."""
    if tag:
        if not image_exists(tag):
            raise SandboxError(f"image {tag!r} not found: build it or drop --axp-image")
        return tag
    base = os.environ.get("AXP_BASE_IMAGE", DEFAULT_BASE_IMAGE)
    return _build_once(default_image_tag(base), lock_dir,
                       lambda tag: build_image(tag, base, log=log))


def _build_once(tag: str, lock_dir: Path, build: Callable[[str], object]) -> str:
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


# -- agent layers -------------------------------------------------------------------------

def layer_tag(base_tag: str, layer: ImageLayer) -> str:
    """The layer's image tag: a digest of the base image's tag and the layer's key."""
    digest = hashlib.sha256(f"{base_tag}\0{layer.name}\0{layer.key}".encode()).hexdigest()
    return f"{LAYER_REPO_PREFIX}{layer.name}:{digest[:12]}"


def ensure_layer(base_tag: str, layer: ImageLayer, lock_dir: Path,
                 log: Callable[[str], None] | None = None) -> str:
    """`base_tag` plus `layer`, built once (its context is made only then) and reused."""
    def build(tag: str) -> None:
        _docker_build(dict(layer.context(log)), tag, {"BASE": base_tag}, base_tag, log)

    return _build_once(layer_tag(base_tag, layer), lock_dir, build)
