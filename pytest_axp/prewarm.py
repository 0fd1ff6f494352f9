"""Sandboxes created ahead by `axp local run`, while pytest and its workers start.

On a small machine, starting xdist workers takes about a second; the first sandboxes can
be created in that time, through the same SandboxBackend.create_ahead the plugin uses for
each worker's next item. Items take them by name (pytest is told so with
--axp-created-ahead); one that no item took is removed at the end.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from .record.attempts import next_attempt
from .record.layout import RunPaths
from .runner import EngineOptions, VariantFailed, VariantRun, write_resolved_variant
from .sandbox.base import SandboxBackend, SandboxError

if TYPE_CHECKING:
    from .experiment import ResolvedVariant

CREATED_AHEAD_OPTION = "--axp-created-ahead"


class Prewarm:
    def __init__(self, backend: SandboxBackend | None = None) -> None:
        if backend is None:
            from .sandbox import builtin_backend

            backend = builtin_backend()
        self.backend = backend

    def start(self, variants: Sequence[ResolvedVariant], runs: Sequence[RunPaths], count: int,
              image_for: Callable[[str], str], options: EngineOptions) -> None:
        """Write every resolved-variant.yaml, then create the first `count` sandboxes in
        collection order (repeat by repeat), each only if its host-side checks pass."""
        items = [(run, repeat, v) for repeat, run in enumerate(runs, 1) for v in variants]
        for run, _, variant in items:
            write_resolved_variant(run, variant)
        for run, repeat, variant in items[:count]:
            try:
                # Options as the run will have them; a sandbox made otherwise (ini
                # settings the CLI does not see) is not taken: see SandboxBackend.take.
                upcoming = VariantRun(variant, run, repeat, options, backend=self.backend,
                                      image=image_for(variant.agent.name),
                                      attempt=next_attempt(run.results(variant.id).root))
                upcoming.preflight()
            except (VariantFailed, SandboxError):
                continue  # that item reports its own error, before any sandbox
            upcoming.create_ahead()

    def finish(self) -> None:
        """Remove every sandbox created ahead that no item took (one that was taken is
        already gone: removing it again is a no-op)."""
        self.backend.discard_ahead()
