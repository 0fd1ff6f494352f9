"""Attempts of one variant item: a variant that ended as `error` for an infrastructure
reason (Failure.infrastructure) runs again, in a fresh sandbox, up to `retries` times.

Test failures, agent timeouts and agent exits are results, never retried. A failure once
the tests have started is not retried either: its tests are already reported. Each earlier
attempt moves to results/<id>/attempts/<n>/ and the last one's summary lists them all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .record.attempts import archive_attempt, archived_entries, next_attempt
from .record.summary import AgentOutcome
from .runner import VariantFailed, VariantRun

if TYPE_CHECKING:
    from .experiment import TestSpec


class RetryingRun:
    """Stands for the VariantRun of the current attempt (same methods for the item body)."""

    def __init__(self, results_root: Path, new_run: Callable[[int], VariantRun],
                 prepare: Callable[[VariantRun], None], retries: int) -> None:
        self._results_root = results_root
        self._new_run = new_run      # attempt number -> a VariantRun not yet provisioned
        self._prepare = prepare      # image and provision; raises VariantFailed
        self.retries_left = max(0, retries)
        self.current: VariantRun | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["current"], name)

    # -- phases ---------------------------------------------------------------------------

    def provision(self) -> bool:
        """Provision an attempt, retrying infrastructure failures. False if the last
        attempt failed (its outcome says why; finish() records it)."""
        while True:
            run = self._start_attempt()
            try:
                self._prepare(run)
                return True
            except VariantFailed:
                if not self._retry(run):
                    return False

    def run_agent(self) -> AgentOutcome | None:
        while True:
            run = self.current
            assert run is not None
            try:
                run.run_agent()  # an ending that is not the agent's doing is in its failure
            except VariantFailed:
                pass  # the engine failed under the agent: recorded as infrastructure
            if not self._retry(run) or not self.provision():
                assert self.current is not None  # provision() set it
                return self.current.outcome.agent

    def planned_tests(self) -> Iterator[tuple[str, TestSpec]]:
        run = self.current
        if run is None or run.outcome.failure is not None:
            return  # the attempt ended in error before the tests
        yield from run.planned_tests()

    def complete(self) -> str:
        assert self.current is not None  # the item body runs after provision()
        return self.current.complete()

    def finish(self) -> dict[str, Any] | None:
        return self.current.finish() if self.current is not None else None

    # -- attempts -------------------------------------------------------------------------

    def _start_attempt(self) -> VariantRun:
        # Numbered after the attempts already archived (by --resume, or a retry above).
        run = self._new_run(next_attempt(self._results_root))
        run.prior_attempts = archived_entries(self._results_root)
        self.current = run
        return run

    def _retry(self, run: VariantRun) -> bool:
        """Retire `run` and make room for the next attempt, if its failure may be retried."""
        failure = run.outcome.failure
        if failure is None or not failure.infrastructure or self.retries_left <= 0:
            return False
        self.retries_left -= 1
        run.finish()
        archive_attempt(run.run, run.variant.id)
        return True
