"""Sandboxes: where a variant runs, behind the Sandbox and SandboxBackend protocols.

The engine gets its backend from the `pytest_axp_sandbox_backend` hook; Docker's
(pytest_axp.sandbox.docker) answers last. Only pytest_axp/sandbox/docker* use the Docker SDK.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import ExecResult, Sandbox, SandboxBackend, SandboxError, SandboxInfo

if TYPE_CHECKING:
    import pytest

__all__ = ["ExecResult", "Sandbox", "SandboxBackend", "SandboxError", "SandboxInfo",
           "builtin_backend", "load_backend", "loaded_builtin_backend", "reap_orphans",
           "remove_run_sandboxes"]


def builtin_backend() -> SandboxBackend:
    """The built-in (Docker) backend of this process: for callers without a pytest config,
    such as `axp sandbox clean`. Importing it does not contact the engine. The pool of
    engines AXP_DOCKER_HOSTS names, if it names any."""
    from .docker import backend
    from .pool import pool_backend

    return pool_backend() or backend()


def loaded_builtin_backend() -> SandboxBackend | None:
    """The built-in backend if this process has used it (so may have sandboxes), else None."""
    import sys

    pool = sys.modules.get(f"{__name__}.pool")
    if pool is not None and pool._pool is not None:
        return pool._pool  # type: ignore[no-any-return]
    module = sys.modules.get(f"{__name__}.docker")
    return module._backend if module is not None else None


def reap_orphans(backend: SandboxBackend | None = None) -> None:
    """Best effort: remove the sandboxes whose owner process died (on this host)."""
    backend = backend or builtin_backend()
    try:
        for orphan in backend.orphans():
            backend.remove_sandbox(orphan.id)
    except SandboxError:
        pass  # `axp sandbox clean` reports what cannot be removed


def remove_run_sandboxes(run_ids: list[str], backend: SandboxBackend | None = None) -> None:
    """Best effort: every sandbox of these runs, and any this process still creates ahead.
    Nothing to do if no backend was used here and none is given."""
    from .base import LABEL_RUN_ID

    backend = backend or loaded_builtin_backend()
    if backend is None:
        return
    try:
        backend.finish()
        for run_id in run_ids:
            backend.remove_labelled({LABEL_RUN_ID: run_id})
    except Exception:
        pass  # the engine is in trouble: the next run reaps what is left


def load_backend(config: pytest.Config) -> SandboxBackend:
    """The backend the `pytest_axp_sandbox_backend` hook names for this session."""
    import pytest

    found: SandboxBackend | None = config.hook.pytest_axp_sandbox_backend(config=config)
    if found is None:
        raise pytest.UsageError("no sandbox backend: a plugin answered "
                                "pytest_axp_sandbox_backend with nothing usable")
    return found
