"""What the `gemini` agent adds to the base sandbox image: the pinned Gemini CLI, with
system settings that keep usage statistics, telemetry and update checks off."""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path

from ..sandbox.base import ImageLayer
from ..sandbox.npm_fetch import cache_dir, given_file, packed_tarball

# The Gemini CLI release the `gemini` agent runs; pinned so runs are comparable.
GEMINI_CLI_VERSION = "0.61.0"
PACKAGE = "@google/gemini-cli"


def _file(name: str) -> bytes:
    return (resources.files("pytest_axp.agents") / "gemini_docker" / name).read_bytes()


def gemini_layer(version: str = GEMINI_CLI_VERSION) -> ImageLayer:
    """The layer: its key is the version and the files baked in, so the package is fetched
    only when an image with that key does not exist yet."""
    dockerfile, settings = _file("Dockerfile"), _file("settings.json")

    def context(log: Callable[[str], None] | None) -> dict[str, bytes | Path]:
        return {"Dockerfile": dockerfile, "settings.json": settings,
                "gemini-cli.tgz": gemini_package(version, log=log)}

    key = f"{version}\0{dockerfile.decode()}\0{settings.decode()}"
    return ImageLayer(name="gemini", key=key, context=context)


def gemini_package(version: str = GEMINI_CLI_VERSION,
                   log: Callable[[str], None] | None = None) -> Path:
    """The CLI's npm package (.tgz). $AXP_GEMINI_CLI_TGZ wins (a file made by `npm pack
    @google/gemini-cli@VERSION`); else a cached copy; else `npm pack` on the host."""
    given = given_file("AXP_GEMINI_CLI_TGZ")
    if given is not None:
        return given
    target = cache_dir() / f"gemini-cli-{version}" / "gemini-cli.tgz"
    return packed_tarball(f"{PACKAGE}@{version}", target, needed_by="the gemini agent", log=log)
