"""What the `claude` agent adds to the base sandbox image: the pinned Claude Code binary."""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path

from ..sandbox.base import ImageLayer
from ..sandbox.npm_fetch import cache_dir, given_file, npm_arch, packed_file

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

    $AXP_CLAUDE_BINARY wins; else a cached copy; else `npm pack` of the platform package.
    """
    given = given_file("AXP_CLAUDE_BINARY")
    if given is not None:
        return given
    arch = npm_arch()
    target = cache_dir() / f"claude-code-{version}-linux-{arch}" / "claude"
    return packed_file(f"@anthropic-ai/claude-code-linux-{arch}@{version}", "claude", target,
                       needed_by="the claude agent (or AXP_CLAUDE_BINARY=/path/to/claude)",
                       log=log)
