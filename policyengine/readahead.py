"""Reading a large tree's files in forked worker processes while this process goes on with other work
(``check`` imports the engine and compiles the policy set meanwhile), with what comes back exactly what
reading them here, one after another, would have made.

The files are cut into as many runs of consecutive files as there are workers; each worker, forked with
what to read, reads its run and writes what each file made to a spool file of its own (in a folder only
this user can read), and the runs are put back in their order. Reading a file is independent of every
other file (each makes its own documents, skips and problems), so the order of the whole is the order of
the runs. What a worker writes is small: the objects the gate does not read before evaluating come back
packed (``policyengine.parking``). A worker that fails raises its exception here, as reading in order
would have; one that dies (killed, out of memory) is an error naming how it ended, never a wait.
"""

from __future__ import annotations

import gc
import os
import pickle
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Sequence
from typing import Any, Generic, NoReturn, TypeVar

# Below this many files (or requests, ``policyengine.fanout``) a pool of workers costs more to start
# than it saves: they are read (decided) in this process.
MIN_PARALLEL = 200

Item = TypeVar("Item")
Made = TypeVar("Made")


class WorkerDied(RuntimeError):
    """A worker ended without handing back what it read."""


class Reading(Generic[Made]):
    """What reading some files makes, each file's in their order: read already, or being read by workers
    until ``result`` is asked for."""

    def __init__(
        self, done: list[Made] | None, workers: Sequence[tuple[int, str]] = (), folder: str = ""
    ) -> None:
        """``done``: each file's, read already; else the workers (pid, spool file) reading them."""
        self._done, self._workers, self._folder = done, list(workers), folder

    def result(self) -> list[Made]:
        """Each file's, in order; a worker's exception is raised here."""
        if self._done is None:
            try:
                runs = [_collect(pid, path) for pid, path in self._workers]
                self._workers = []
            finally:
                self.close()
            self._done = [made for run in runs for made in run]
        return self._done

    def close(self) -> None:
        """Stop the workers without waiting for what they read (the caller no longer needs it)."""
        for pid, _ in self._workers:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        self._workers = []
        if self._folder:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = ""


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
    if jobs <= 1 or len(items) < MIN_PARALLEL or not hasattr(os, "fork"):
        return Reading([read(item) for item in items])
    workers = max(1, min(jobs - 1, len(items) // (MIN_PARALLEL // 2)))  # each reads a hundred or more
    folder = tempfile.mkdtemp(prefix="policyengine-read-")  # mode 0700
    bounds = [len(items) * k // workers for k in range(workers + 1)]
    for stream in (sys.stdout, sys.stderr):  # nothing buffered is written twice
        stream.flush()
    started: list[tuple[int, str]] = []
    frozen = gc.get_freeze_count() > 0  # the command froze what it imported: it stays so
    gc.freeze()  # the inherited heap stays shared: a collection in a worker would copy every page
    try:
        for k in range(workers):
            path = os.path.join(folder, f"run-{k}.pickle")
            pid = os.fork()
            if pid == 0:  # the worker: read its run, write it, and end without running any cleanup
                _work(read, items[bounds[k] : bounds[k + 1]], path)
            started.append((pid, path))
    except BaseException:
        Reading[Made](None, started, folder).close()
        raise
    finally:
        if not frozen:
            gc.unfreeze()
    return Reading(None, started, folder)


def _work(read: Callable[[Any], Any], items: Sequence[Any], path: str) -> NoReturn:
    code = 0
    try:
        try:
            payload: tuple[bool, Any] = (True, [read(item) for item in items])
        except BaseException as err:  # raised again in the parent, as reading in order would have
            payload = (False, err)
        with open(path, "wb") as fh:
            pickle.dump(payload, fh, protocol=pickle.HIGHEST_PROTOCOL)
    except BaseException:
        code = 70
    finally:
        os._exit(code)


def _collect(pid: int, path: str) -> list[Any]:
    """What the worker ``pid`` read, once it has ended; its exception raised, or WorkerDied."""
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        how = f"was killed by signal {-code}" if code < 0 else f"exited {code}"
        raise WorkerDied(f"a process reading the manifests {how} before handing back what it read")
    with open(path, "rb") as fh:
        ok, made = pickle.load(fh)
    if not ok:
        raise made
    return list(made)
