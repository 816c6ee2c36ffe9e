"""Reading a large tree's files in forked worker processes while this process goes on with other work
(``check`` imports the engine and compiles the policy set meanwhile), with what comes back exactly what
reading them here, one after another, would have made.

The files are cut into as many runs of consecutive files as there are workers; each worker, forked with
what to read, reads its run from the front and writes what each file made to a spool file of its own (in
a folder only this user can read), and the runs are put back in their order. When this process asks for
the result before the workers are done, it reads the files no worker has begun, from the back of each
run (``_Claims``: no file is read twice, none left out), instead of waiting with a core idle. Reading a
file is independent of every other file (each makes its own documents, skips and problems), so the
order of the whole is the order of the runs. What a worker writes is small: the objects the gate does not read before evaluating come back
packed (``policyengine.parking``). A worker that fails raises its exception here, as reading in order
would have; one that dies (killed, out of memory) is an error naming how it ended, never a wait.
"""

from __future__ import annotations

import functools
import gc
import mmap
import os
import pickle
import shutil
import signal
import struct
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


class _Claims:
    """Which files of each run are taken: a run's next file from the front (its worker's) and the end of
    what is left (this process takes from the back), two counters per run in a file every process maps.
    A POSIX record lock on that file makes each claim whole; it belongs to the process holding it, and
    the kernel drops it when that process dies, so a killed worker never leaves a claim half-made."""

    _RUN = struct.Struct("<qq")

    def __init__(self, path: str, bounds: Sequence[int]) -> None:
        import fcntl  # POSIX only, as fork is

        self._fcntl = fcntl
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        runs = len(bounds) - 1
        os.write(self._fd, b"".join(self._RUN.pack(bounds[k], bounds[k + 1]) for k in range(runs)))
        self._map = mmap.mmap(self._fd, self._RUN.size * runs)  # shared with the forked workers

    def take(self, run: int, front: bool) -> int | None:
        """The index of a file of ``run`` no one has taken, from its front or its back; None when none is
        left."""
        at = run * self._RUN.size
        self._fcntl.lockf(self._fd, self._fcntl.LOCK_EX)
        try:
            first, end = self._RUN.unpack_from(self._map, at)
            if first >= end:
                return None
            self._RUN.pack_into(self._map, at, *((first + 1, end) if front else (first, end - 1)))
            return int(first if front else end - 1)
        finally:
            self._fcntl.lockf(self._fd, self._fcntl.LOCK_UN)

    def close(self) -> None:
        self._map.close()
        os.close(self._fd)


class Reading(Generic[Made]):
    """What reading some files makes, each file's in their order: read already, or being read by workers
    until ``result`` is asked for."""

    def __init__(
        self,
        done: list[Made] | None,
        workers: Sequence[tuple[int, str]] = (),
        folder: str = "",
        left: tuple[Callable[[Any], Made], Sequence[Any], _Claims] | None = None,
    ) -> None:
        """``done``: each file's, read already; else the workers (pid, spool file) reading them, and what
        this process needs to read the files they have not begun (``left``: how to read one, the files,
        the claims)."""
        self._done, self._workers, self._folder, self._left = done, list(workers), folder, left

    def result(self) -> list[Made]:
        """Each file's, in order; the first exception a file raised (in their order) is raised here."""
        if self._done is None:
            try:
                mine = self._read_left()
                runs = [_collect(pid, path) for pid, path in self._workers]
                self._workers = []
            finally:
                self.close()
            self._done = [made for k, run in enumerate(runs) for made in _joined(run, mine[k])]
        return self._done

    def _read_left(self) -> list[list[tuple[bool, Any]]]:
        """Each run's files no worker has begun, read here from the back (in their order), each as
        (True, what it made) or (False, what it raised); after a raise, nothing more is read."""
        mine: list[list[tuple[bool, Any]]] = [[] for _ in self._workers]
        if self._left is None:
            return mine
        read, items, claims = self._left
        for k, taken in enumerate(mine):
            while (i := claims.take(k, front=False)) is not None:
                try:
                    taken.append((True, read(items[i])))
                except Exception as err:  # raised in the files' order, once the workers' are known
                    taken.append((False, err))
                    return [list(reversed(t)) for t in mine]
        return [list(reversed(t)) for t in mine]

    def close(self) -> None:
        """Stop the workers without waiting for what they read (the caller no longer needs it)."""
        for pid, _ in self._workers:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        self._workers = []
        if self._left is not None:
            self._left[2].close()
            self._left = None
        if self._folder:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = ""


def _joined(run: tuple[list[Any], BaseException | None], mine: list[tuple[bool, Any]]) -> list[Any]:
    """A run's files in order: its worker's, then those read here; the first exception raised."""
    made, failed = run
    if failed is not None:
        raise failed
    for ok, value in mine:
        if not ok:
            raise value
        made.append(value)
    return made


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
    claims = _Claims(os.path.join(folder, "claims"), bounds)
    frozen = gc.get_freeze_count() > 0  # the command froze what it imported: it stays so
    gc.freeze()  # the inherited heap stays shared: a collection in a worker would copy every page
    try:
        for k in range(workers):
            path = os.path.join(folder, f"run-{k}.pickle")
            pid = os.fork()
            if pid == 0:  # the worker: read its run, write it, and end without running any cleanup
                _work(read, items, functools.partial(claims.take, k, front=True), path)
            started.append((pid, path))
    except BaseException:
        Reading[Made](None, started, folder, (read, items, claims)).close()
        raise
    finally:
        if not frozen:
            gc.unfreeze()
    return Reading(None, started, folder, (read, items, claims))


def _work(
    read: Callable[[Any], Any], items: Sequence[Any], take: Callable[[], int | None], path: str
) -> NoReturn:
    """A worker: read the files ``take`` gives (its run's, from the front, until none is left)."""
    code = 0
    try:
        made: list[Any] = []
        try:
            while (i := take()) is not None:
                made.append(read(items[i]))
            payload: tuple[bool, Any] = (True, made)
        except BaseException as err:  # raised again in the parent, as reading in order would have
            payload = (False, err)
        with open(path, "wb") as fh:
            pickle.dump(payload, fh, protocol=pickle.HIGHEST_PROTOCOL)
    except BaseException:
        code = 70
    finally:
        os._exit(code)


def _collect(pid: int, path: str) -> tuple[list[Any], BaseException | None]:
    """What the worker ``pid`` read, once it has ended, or the exception it met; WorkerDied raised."""
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        how = f"was killed by signal {-code}" if code < 0 else f"exited {code}"
        raise WorkerDied(f"a process reading the manifests {how} before handing back what it read")
    with open(path, "rb") as fh:
        ok, made = pickle.load(fh)
    return ([], made) if not ok else (list(made), None)
