"""Per-process state of an AXP pytest session: run ids, options, shared services."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .record.layout import RunPaths


@dataclass
class AxpSession:
    ulids: list[str]                # one per repeat, handed out by the controller
    runs_dir: Path
    variant_filter: tuple[str, ...]
    image: str | None
    services: dict = field(default_factory=dict)
    max_patch_bytes: int | None = None       # None: the engine's defaults
    max_workspace_bytes: int | None = None
    env_source: dict[str, str] | None = None  # None: the process environment
    file_bindings: tuple[tuple[str, str, str], ...] = ()
    limits: object = None  # sandbox.base.ResourceLimits; None: its defaults
    test_timeout: float | None = None   # seconds; None: the engine's defaults
    setup_timeout: float | None = None
    backend: Any = None  # the SandboxBackend, from the pytest_axp_sandbox_backend hook

    def engine_options(self):
        from .runner import EngineOptions

        extra = {k: v for k, v in (("max_patch_bytes", self.max_patch_bytes),
                                   ("max_workspace_bytes", self.max_workspace_bytes),
                                   ("host_env", self.env_source),
                                   ("limits", self.limits),
                                   ("test_timeout_seconds", self.test_timeout),
                                   ("setup_timeout_seconds", self.setup_timeout),
                                   ("agent_network", self.services.get("agent_network")))
                 if v is not None}
        return EngineOptions(image=self.image, file_bindings=self.file_bindings, **extra)

    @property
    def repeat(self) -> int:
        return len(self.ulids)

    def run_paths(self, experiment_id: str, repeat: int) -> RunPaths:
        return RunPaths(self.runs_dir / f"{experiment_id}-{self.ulids[repeat - 1]}")

    def runs_on_disk(self) -> list[RunPaths]:
        """The run folders this session's run ids name (every experiment, every repeat)."""
        found = []
        if self.runs_dir.is_dir():
            for ulid in self.ulids:
                found += [RunPaths(p) for p in sorted(self.runs_dir.glob(f"*-{ulid}"))
                          if p.is_dir()]
        return found

    def resolve_image(self, agent: str = "") -> str:
        """The sandbox image for an agent: the base image, plus Claude Code for `claude`."""
        from .sandbox.image import ensure_claude_image, ensure_image

        if "image" not in self.services:
            self.services["image"] = ensure_image(self.image, self.runs_dir.parent)
        if agent != "claude" or self.image:
            return self.services["image"]
        if "claude_image" not in self.services:
            self.services["claude_image"] = ensure_claude_image(
                self.services["image"], self.runs_dir.parent)
        return self.services["claude_image"]


SESSION_KEY = pytest.StashKey[AxpSession]()


def new_ulids(n: int) -> list[str]:
    from ulid import ULID

    return [str(ULID()) for _ in range(n)]


def runs_dir_from(config: pytest.Config) -> Path:
    raw = config.getoption("axp_runs_dir") or os.environ.get("AXP_RUNS_DIR") or ".axp/runs"
    return (config.invocation_params.dir / raw).resolve()


def parse_file_bindings(items: list[str], cwd: Path) -> tuple[tuple[str, str, str], ...]:
    """--file NAME=PATH (bind a slot, or replace a named entry's source) and
    --file HOSTPATH::DEST (an extra entry). Paths resolve against `cwd`."""
    from .experiment.models import workspace_relative

    bindings = []
    for item in items:
        if "::" in item:
            host, _, dest = item.partition("::")
            try:
                dest = workspace_relative(dest)
            except ValueError as e:
                raise ValueError(f"--file {item}: {e}") from None
            bindings.append(("adhoc", _host_path(item, host, cwd), dest))
            continue
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"--file {item!r}: expected NAME=PATH or HOSTPATH::DEST")
        bindings.append(("slot", name, _host_path(item, path, cwd)))
    return tuple(bindings)


def _host_path(item: str, path: str, cwd: Path) -> str:
    """`path` from `cwd`, absolute; ValueError if it goes through a symlink. The rule is the
    experiment file's: CI runs `axp local run` on a pull request's checkout, where whoever
    wrote the branch chooses where a link points."""
    from .staging import resolve_source, symlink_in_path

    link = symlink_in_path(path, cwd)
    if link is not None:
        raise ValueError(f"--file {item}: {link[0]} is a symlink (to {link[1]}); command-line "
                         "paths are not followed through links either: pass the real path")
    return str(resolve_source(path, cwd))
