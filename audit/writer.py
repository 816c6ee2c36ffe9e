"""Group commit: one background thread turns queued appends into batched, durable writes.

Callers submit an item and block on its future; the writer takes whatever is queued (up to
``max_batch``, waiting at most ``max_delay`` for more), commits it in one transaction, resolves every
future, then runs ``after`` (the log signs its checkpoint there). A failure in ``after`` breaks the
writer: later submits raise it instead of writing past an unsigned or inconsistent state.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

from audit.errors import LogClosed

T = TypeVar("T")
R = TypeVar("R")

_STOP = object()


class GroupCommit(Generic[T, R]):
    def __init__(
        self,
        commit: Callable[[list[T]], Sequence[R]],
        *,
        after: Callable[[], None] | None = None,
        max_batch: int = 256,
        max_delay: float = 0.0005,
        name: str = "audit-writer",
    ) -> None:
        if max_batch < 1 or max_delay < 0:
            raise ValueError("max_batch must be >= 1 and max_delay >= 0")
        self._commit = commit
        self._after = after
        self._max_batch = max_batch
        self._max_delay = max_delay
        self._queue: queue.SimpleQueue[tuple[T, Future[R]] | object] = queue.SimpleQueue()
        self._closed = False
        self._broken: BaseException | None = None
        self._guard = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def depth(self) -> int:
        """Items waiting to be written (for the queue-depth metric)."""
        return self._queue.qsize()

    def submit(self, item: T) -> Future[R]:
        future: Future[R] = Future()
        with self._guard:
            if self._broken is not None:
                raise self._broken
            if self._closed:
                raise LogClosed("the audit log is closed")
            self._queue.put((item, future))
        return future

    def close(self) -> None:
        with self._guard:
            if self._closed:
                return
            self._closed = True
            self._queue.put(_STOP)
        self._thread.join()

    def _take(self) -> tuple[list[tuple[T, Future[R]]], bool]:
        first = self._queue.get()
        if first is _STOP:
            return [], True
        batch: list[tuple[T, Future[R]]] = [first]  # type: ignore[list-item]
        deadline = time.monotonic() + self._max_delay
        while len(batch) < self._max_batch:
            try:
                nxt = self._queue.get_nowait()
            except queue.Empty:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    nxt = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
            if nxt is _STOP:
                return batch, True
            batch.append(nxt)  # type: ignore[arg-type]
        return batch, False

    def _run(self) -> None:
        stopping = False
        while not stopping:
            batch, stopping = self._take()
            if not batch:
                continue
            if self._broken is not None:
                for _, future in batch:
                    future.set_exception(self._broken)
                continue
            try:
                results = self._commit([item for item, _ in batch])
            except BaseException as exc:  # every caller learns why its entry was not written
                for _, future in batch:
                    future.set_exception(exc)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                future.set_result(result)
            if self._after is not None:
                try:
                    self._after()
                except BaseException as exc:
                    with self._guard:
                        self._broken = exc
