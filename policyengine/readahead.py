"""Reading a large tree's files in forked worker processes while this process goes on with other work
(``check`` compiles the policy set meanwhile), with what comes back exactly what reading them here, one
after another, would have made.

The files are cut into runs of consecutive files; each worker reads a run at a time and sends back what
each file made, and the runs are put back in their order. Reading a file is independent of every other
file (each makes its own documents, skips and problems), so the order of the whole is the order of the
runs. What a worker sends back is small: the objects the gate does not read before evaluating come back
packed (``policyengine.parking``), and a run holds at most ``RUN`` files.
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from multiprocessing.pool import AsyncResult, Pool

# Below this many files (or requests, ``policyengine.fanout``) a pool of workers costs more to start
# than it saves: they are read (decided) in this process.
MIN_PARALLEL = 200
RUN = 50  # files per message: balances the workers, and bounds what one message holds
START_METHOD = "fork"  # workers inherit what to read: a task is sent as two numbers

Item = TypeVar("Item")
Made = TypeVar("Made")


# Set in this process just before the fork, and what the workers read: what to read and how. A task is
# then just a run's bounds.
_read: Callable[[Any], Any] | None = None
_items: Sequence[Any] = ()


def _read_run(start: int, stop: int) -> list[Any]:
    assert _read is not None  # inherited from the parent by the fork
    return [_read(item) for item in _items[start:stop]]


class Reading(Generic[Made]):
    """What reading some files makes, each file's in their order: read already, or being read by workers
    until ``result`` is asked for."""

    def __init__(
        self, done: list[Made] | None, pool: Pool | None, pending: AsyncResult[list[list[Made]]] | None
    ):
        self._done, self._pool, self._pending = done, pool, pending

    def result(self) -> list[Made]:
        """Each file's, in order; a worker's exception is raised here, as reading in order would have."""
        if self._done is None:
            assert self._pool is not None and self._pending is not None
            try:
                runs = self._pending.get()
            finally:
                self.close()  # every run came back (or one failed): nothing is left to do
            self._done = [made for run in runs for made in run]
        return self._done

    def close(self) -> None:
        """Stop the workers without waiting for what they read (the caller no longer needs it)."""
        global _read, _items
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None
            _read, _items = None, ()


def default_jobs() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def start(read: Callable[[Item], Made], items: Sequence[Item], jobs: int) -> Reading[Made]:
    """Begin reading ``items`` (``read`` makes what one item gives) in forked workers when that pays,
    else read them now; ``Reading.result`` gives each item's, in order. ``jobs`` is how many processes
    may run at once, this one included: it goes on with its own work (``check`` compiles the policy set
    and imports the engine) while ``jobs - 1`` workers read, so that none of them waits for a core."""
    if jobs <= 1 or len(items) < MIN_PARALLEL:
        return Reading([read(item) for item in items], None, None)
    import multiprocessing  # only a large tree pays for it

    if START_METHOD not in multiprocessing.get_all_start_methods():
        return Reading([read(item) for item in items], None, None)
    global _read, _items
    _read, _items = read, items
    for stream in (sys.stdout, sys.stderr):  # a worker flushes what it inherited when it ends
        stream.flush()
    gc.freeze()  # the inherited heap stays shared: a collection in a worker would copy every page
    try:
        pool = multiprocessing.get_context(START_METHOD).Pool(jobs - 1)
    finally:
        gc.unfreeze()
    runs = [(i, min(i + RUN, len(items))) for i in range(0, len(items), RUN)]
    pending = pool.starmap_async(_read_run, runs, chunksize=1)
    return Reading(None, pool, pending)
