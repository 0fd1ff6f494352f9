"""Sandboxes created ahead by `axp local run`, while pytest and its workers start.

On a small machine, starting xdist workers takes about a second; the first containers can
be created in that time. Each item adopts its container by name (see take_prefetched);
one that no item adopted is removed at the end.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from .record.attempts import next_attempt
from .record.layout import RunPaths
from .runner import EngineOptions, VariantFailed, VariantRun, write_resolved_variant
from .sandbox.base import SandboxError
from .sandbox.docker import PREWARMED_ENV, DockerSandbox


class Prewarm:
    def __init__(self) -> None:
        self._pool: ThreadPoolExecutor | None = None
        self._futures: list[Future] = []

    def start(self, variants: Sequence, runs: Sequence[RunPaths], count: int,
              image_for: Callable[[str], str], options: EngineOptions) -> None:
        """Write every resolved-variant.yaml, then create the first `count` sandboxes in
        collection order (repeat by repeat), each only if its host-side checks pass."""
        items = [(run, repeat, v) for repeat, run in enumerate(runs, 1) for v in variants]
        for run, _, variant in items:
            write_resolved_variant(run, variant)
        self._pool = ThreadPoolExecutor(max_workers=max(1, count),
                                        thread_name_prefix="axp-prewarm")
        for run, repeat, variant in items[:count]:
            try:
                # Options as the run will have them; a container made otherwise (ini
                # settings the CLI does not see) is not adopted: see take_prefetched.
                upcoming = VariantRun(variant, run, repeat, options,
                                      image=image_for(variant.agent.name),
                                      attempt=next_attempt(run.results(variant.id).root))
                upcoming.preflight()
            except (VariantFailed, SandboxError):
                continue  # that item reports its own error, before any container
            self._futures.append(self._pool.submit(DockerSandbox.create,
                                                   **upcoming.sandbox_args()))
        os.environ[PREWARMED_ENV] = "1"

    def finish(self) -> None:
        """Remove every sandbox created ahead that no item took (one that was taken is
        already gone: removing it again is a no-op)."""
        os.environ.pop(PREWARMED_ENV, None)
        for future in self._futures:
            try:
                future.result().remove()
            except Exception:
                pass
        if self._pool is not None:
            self._pool.shutdown(wait=True)
