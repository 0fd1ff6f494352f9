"""Sandboxes created in the background before anyone asks for them (creating a container
takes ~0.2 s): the first J while xdist workers start, then each worker's next item while
the current one runs. Shared by the Docker backend and the pool."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, Protocol, TypeVar


class _Removable(Protocol):
    def remove(self) -> None: ...


S = TypeVar("S", bound=_Removable)


class CreatedAhead(Generic[S]):
    """Creations under way or done, by key, until taken or discarded."""

    def __init__(self) -> None:
        self._futures: dict[str, Future[S]] = {}
        self._lock = threading.Lock()
        self._creator = ThreadPoolExecutor(max_workers=8, thread_name_prefix="axp-ahead")

    def start(self, key: str, create: Callable[[], S]) -> None:
        """Begin creating for `key`, unless a creation for it is already there."""
        with self._lock:
            if key not in self._futures:
                self._futures[key] = self._creator.submit(create)

    def take(self, key: str, fits: Callable[[S], bool]) -> tuple[bool, S | None]:
        """(whether a creation for `key` was started, the sandbox it made if that `fits`).
        One that failed gives None (the caller creates one itself and reports why if that
        fails too); one that does not fit is removed."""
        with self._lock:
            future = self._futures.pop(key, None)
        if future is None:
            return False, None
        try:
            sandbox = future.result()
        except Exception:
            return True, None
        if fits(sandbox):
            return True, sandbox
        sandbox.remove()
        return True, None

    def discard(self) -> None:
        """Remove every sandbox created ahead that nobody took."""
        with self._lock:
            futures = list(self._futures.values())
            self._futures.clear()
        for future in futures:
            try:
                future.result().remove()
            except Exception:
                pass  # never created, or already gone
