"""Deciding a checked set's requests in worker processes (``check --jobs``), with the decisions, their
order and every reservation exactly those of one process deciding them one after another.

Workers are forked once the policy set is compiled and the manifests read, so each inherits the engine,
the inventory and the requests instead of loading or receiving them. The one state decisions share is
the quota ledger: a request whose decision reads the reservation store (a GPU workload of a pool with a
limit) depends on the reservations earlier requests of its pool made, and on nothing else (the store
keeps each pool apart). Requests are dealt to shares by team (namespace when unlabelled), this process
deciding one share and a worker each other one, each in the set's order against a ledger of its own,
and each reports the pools its requests read and the pools they reserved in. A pool is decided as one process would have decided it
when all its requests went to one worker, or when none of them reserved anything (every read then saw
the same empty pool). Any other pool has its requests decided again by the parent, in order.
"""

from __future__ import annotations

import gc
import os
import pickle
import signal
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from policyengine.charging import Ledger
from policyengine.engine import Engine
from policyengine.inventory import DEFAULT_TEAM, team_of
from policyengine.memo import interned
from policyengine.model import Decision, Inventory, Request
from policyengine.readahead import MIN_PARALLEL as MIN_PARALLEL
from policyengine.readahead import WorkerDied
from policyengine.readahead import default_jobs as default_jobs
from policyengine.reservations import MemoryReservations, Reservation

# This process's share is smaller by this fraction of a share: it starts deciding before the workers
# (they are forked first) and, once done, reads back and settles every worker's decisions while they
# sit idle.
_HANDICAP = 0.08


@dataclass(frozen=True)
class _Work:
    engine: Engine
    requests: Sequence[Request]
    inventory: Inventory
    now: datetime
    keep: Callable[[int, Decision], Any] | None = None
    full: Callable[[int], Request] | None = None
    settle: Callable[[int, Any], Any] | None = None

    def settled(self, index: int, kept: Any) -> Any:
        """What this process keeps of what ``keep`` made where the request was decided."""
        return self.settle(index, kept) if self.settle is not None else kept

    def request(self, index: int) -> Request:
        """The request to evaluate: the one given, or the one ``full`` makes of it."""
        return self.full(index) if self.full is not None else self.requests[index]

    def decide(self, index: int, ledger: Ledger) -> Any:
        """The decision on request ``index``, or what ``keep`` makes of it."""
        made = self.engine.evaluate(
            self.request(index), inventory=self.inventory, now=self.now, ledger=ledger
        )
        return self.keep(index, made) if self.keep is not None else made


class _Touched(MemoryReservations):
    """A reservation store that notes which pools a decision read, and which it changed."""

    def __init__(self) -> None:
        super().__init__()
        self.pools: set[str] = set()
        self.changed: set[str] = set()

    def held(self, pool: str, now: datetime) -> list[Reservation]:
        self.pools.add(pool)
        return super().held(pool, now)

    def reserve(self, reservation: Reservation, limit: int, observed: int, now: datetime) -> bool:
        self.pools.add(reservation.pool)
        reserved = super().reserve(reservation, limit, observed, now)
        if reserved:
            self.changed.add(reservation.pool)
        return reserved

    def release(self, pool: str, key: str) -> None:
        self.pools.add(pool)
        self.changed.add(pool)
        super().release(pool, key)


_work: _Work | None = None  # set in the parent just before the fork; what every worker reads
_spool = ""  # the folder workers write their decisions to, likewise
# What a worker hands back per request: its decision (None in place of the request when it is the one
# sent: the parent holds it) or what ``keep`` made of it, the pools it read and the pools it changed.
_Decided = tuple[Any, bool, frozenset[str], frozenset[str]]


def decide_all(
    engine: Engine,
    requests: Sequence[Request],
    *,
    inventory: Inventory,
    now: datetime,
    jobs: int,
    existing: bool = False,
    after_each: Callable[[int, Decision], None] | None = None,
    keep: Callable[[int, Decision], Any] | None = None,
    full: Callable[[int], Request] | None = None,
    settle: Callable[[int, Any], Any] | None = None,
) -> list[Any]:
    """Each request's decision, in order, as ``engine.evaluate`` with one shared ledger would make them.
    A scan's set (``existing``: objects the cluster holds) and a caller that acts after each decision
    (``after_each(index, decision)``: a background pass pacing itself) are decided in this process.
    ``keep(index, decision)`` makes of each decision, once made, what the caller keeps (a worker sends
    that back, and the list holds it in place of the decision). ``full(index)``, when given, makes the
    request evaluated in place of ``requests[index]``, which then need only say who it concerns (its
    kind, namespace and name: how the set is shared out). ``settle(index, kept)``, applied in this process
    to what ``keep`` made (in a worker, or here), makes what the list holds."""
    if (
        jobs <= 1
        or existing
        or after_each is not None
        or len(requests) < MIN_PARALLEL
        or not hasattr(os, "fork")  # workers inherit the compiled policy set; never re-load or re-send it
    ):
        ledger = Ledger(MemoryReservations(), existing=existing)
        decisions: list[Any] = []
        for i, request in enumerate(requests):
            made = engine.evaluate(full(i) if full else request, inventory=inventory, now=now, ledger=ledger)
            if after_each is not None:
                after_each(i, made)
            decisions.append(keep(i, made) if keep is not None else made)
            if settle is not None:
                decisions[-1] = settle(i, decisions[-1])
        return decisions
    work = _Work(engine, requests, inventory, now, keep, full, settle)
    shards = _shards(requests, inventory, jobs)
    # Each decision is settled as it is made here or read back, and only what the list holds is kept of
    # it, with the pools it read: no shard's decisions are held whole beside the list.
    out: list[Any] = [None] * len(requests)
    reads: list[frozenset[str]] = [_NO_POOLS] * len(requests)
    changed: set[str] = set()

    def take(index: int, item: _Decided) -> None:
        made, sent, read, changes = item
        out[index] = replace(made, request=requests[index]) if sent else work.settled(index, made)
        reads[index] = read
        changed.update(changes)

    _in_workers(work, shards, take)
    return _settled(work, shards, out, reads, changed)


def _shards(requests: Sequence[Request], inventory: Inventory, jobs: int) -> list[list[int]]:
    """Request indexes dealt to ``jobs`` shards, a team (or unlabelled namespace) whole to the least
    loaded, each shard in the set's order; the first (this process's) counted larger by ``_HANDICAP``."""
    by_namespace: dict[str, list[int]] = {}
    for i, request in enumerate(requests):
        team = team_of(inventory, request.namespace)
        key = f"team {team}" if team != DEFAULT_TEAM else f"namespace {request.namespace}"
        by_namespace.setdefault(key, []).append(i)
    shards: list[list[int]] = [[] for _ in range(jobs)]
    handicap = [_HANDICAP * len(requests) / jobs] + [0.0] * (jobs - 1)
    for indexes in sorted(by_namespace.values(), key=len, reverse=True):
        least = min(range(jobs), key=lambda n: len(shards[n]) + handicap[n])
        shards[least].extend(indexes)
    return [sorted(s) for s in shards if s]


def _settled(
    work: _Work, shards: list[list[int]], out: list[Any], reads: list[frozenset[str]], changed: set[str]
) -> list[Any]:
    """``out`` (the settled decisions; ``reads``: the pools each read; ``changed``: the pools any changed)
    with those of any pool that spans shards made again in order by this process."""
    pool_shards: dict[str, set[int]] = {}
    for n, shard in enumerate(shards):
        for i in shard:
            for pool in reads[i]:
                pool_shards.setdefault(pool, set()).add(n)
    spread = {pool for pool, where in pool_shards.items() if len(where) > 1 and pool in changed}
    while True:  # a request decided again takes every pool it reads along (one each, in practice)
        wider = spread.union(*(read for read in reads if read & spread))
        if wider == spread:
            break
        spread = wider
    ledger = Ledger(MemoryReservations())  # the spread pools' own: other pools never meet them
    for i, read in enumerate(reads):
        if read & spread:
            out[i] = work.settled(i, work.decide(i, ledger))
    return out


def _in_workers(work: _Work, shards: list[list[int]], take: Callable[[int, _Decided], None]) -> None:
    """Each shard's decisions handed to ``take(index, decided)`` one by one: the first shard's as this
    process decides them while a forked worker per other shard decides that one, writing its decisions
    one by one to a spool file of its own (in a folder only this user can read) that this process reads
    back in turn: no shard's decisions are ever one message, held whole as bytes beside the objects they
    make, nor held whole once read. This process would otherwise wait with its core idle."""
    global _work, _spool
    _work = work
    frozen = gc.get_freeze_count() > 0  # the command froze what it imported: it stays so
    gc.freeze()  # the inherited heap stays shared: a collection in a worker would copy every page
    for stream in (sys.stdout, sys.stderr):  # nothing buffered is written twice
        stream.flush()
    workers: list[tuple[int, str]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="policyengine-check-") as folder:
            _spool = folder
            workers = [_fork(shard) for shard in shards[1:]]
            _decide_here(shards[0], take)
            written = [_collect(workers.pop(0)) for _ in shards[1:]]
            for path, shard in zip(written, shards[1:], strict=True):
                for i, item in zip(shard, _read_spool(path, len(shard)), strict=True):
                    take(i, item)
    finally:
        _stop(workers)
        if not frozen:
            gc.unfreeze()
        _work, _spool = None, ""


def _fork(shard: list[int]) -> tuple[int, str]:
    """A worker forked to decide ``shard``; its pid and spool file."""
    fd, path = tempfile.mkstemp(dir=_spool, suffix=".pickle")
    os.close(fd)
    pid = os.fork()
    if pid == 0:  # the worker: decide its shard, and end without running any cleanup
        code = 0
        try:
            try:
                _decide_shard(shard, path)
            except BaseException as err:  # raised again in the parent, as deciding here would have
                with open(path + ".failed", "wb") as fh:
                    pickle.dump(err, fh, protocol=pickle.HIGHEST_PROTOCOL)
        except BaseException:
            code = 70
        finally:
            os._exit(code)
    return pid, path


def _collect(worker: tuple[int, str]) -> str:
    """The spool file of ``worker`` once it has ended; what it raised is raised here."""
    pid, path = worker
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if os.path.exists(path + ".failed"):
        with open(path + ".failed", "rb") as fh:
            raise pickle.load(fh)
    if code != 0:
        how = f"was killed by signal {-code}" if code < 0 else f"exited {code}"
        raise WorkerDied(f"a process deciding the manifests {how} before handing back its decisions")
    return path


def _stop(workers: list[tuple[int, str]]) -> None:
    """End the workers not collected (this process stopped waiting for them)."""
    for pid, _ in workers:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


def _decide_here(shard: list[int], take: Callable[[int, _Decided], None]) -> None:
    """A shard decided in this process as a worker decides one, against a ledger of its own."""
    store = _Touched()
    ledger = Ledger(store)
    pooled: dict[frozenset[str], frozenset[str]] = {}
    for i in shard:
        take(i, _decided(i, store, ledger, pooled))


def _read_spool(path: str, count: int) -> Iterator[_Decided]:
    with open(path, "rb") as fh:
        unpickler = pickle.Unpickler(fh)  # one unpickler: what one pickler shared stays shared
        for _ in range(count):
            yield unpickler.load()


def _decide_shard(shard: list[int], path: str) -> None:
    """Decide a shard in order, each decision written to the spool file ``path`` as it is made."""
    assert _work is not None and _spool  # inherited from the parent by the fork
    store = _Touched()
    ledger = Ledger(store)
    with open(path, "wb") as fh:
        # One pickler for the shard: an object met again (a result shared by many resources) is written
        # once, and read back as one object.
        pickler = pickle.Pickler(fh, protocol=pickle.HIGHEST_PROTOCOL)
        pooled: dict[frozenset[str], frozenset[str]] = {}
        for i in shard:
            pickler.dump(_decided(i, store, ledger, pooled))


_NO_POOLS: frozenset[str] = frozenset()
_POOLED = 4096  # at most this many distinct sets of pools shared; past it, each decision has its own


def _pools(names: set[str], pooled: dict[frozenset[str], frozenset[str]]) -> frozenset[str]:
    """``names`` as one frozenset shared by every decision of the shard that met the same pools (one
    object, written once to a spool file and read back as one: most requests read one pool or none)."""
    return interned(pooled, frozenset(names), _POOLED) if names else _NO_POOLS


def _decided(
    i: int, store: _Touched, ledger: Ledger, pooled: dict[frozenset[str], frozenset[str]]
) -> _Decided:
    assert _work is not None
    store.pools, store.changed = set(), set()
    if _work.keep is not None:  # what the parent keeps is all it is sent
        kept = _work.decide(i, ledger)
        return kept, False, _pools(store.pools, pooled), _pools(store.changed, pooled)
    request = _work.request(i)
    decision = _work.engine.evaluate(request, inventory=_work.inventory, now=_work.now, ledger=ledger)
    # The request goes back only if it is not the one sent (the parent puts its own back).
    sent = decision.request is request and _work.full is None
    light = replace(decision, request=None) if sent else decision  # type: ignore[arg-type]
    return light, sent, _pools(store.pools, pooled), _pools(store.changed, pooled)
