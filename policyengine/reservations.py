"""GPU reservations: what an admitted workload holds against its quota pool until its pods are observed.

The port every store implements (``ReservationStore``: in the process, in the API server, in PostgreSQL)
and the in-process store, ``MemoryReservations``, that ``check`` and a webhook without a cluster use.
``reserve`` is the one atomic step: the limit is checked and the reservation stored in the same
critical section, so two admissions can never both take the last GPUs of a pool.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

__all__ = [
    "MAX_PER_POOL",
    "MemoryReservations",
    "PoolFull",
    "Reservation",
    "ReservationStore",
    "StoreError",
    "StoreEvents",
    "fits",
]

# A pool holds at most this many unexpired reservations: a flood of distinct workloads cannot grow a
# store (a ConfigMap is limited to 1 MiB, a row should stay small) without bound.
MAX_PER_POOL = 1000


@dataclass(frozen=True)
class Reservation:
    key: str  # the workload's identity: "<namespace>/<apiVersion group>/<Kind>/<name>" (uid when known)
    pool: str  # the quota pool it is charged to (org.quota.team; a ClusterQueue under kueue)
    gpus: int  # the devices it adds (workload.gpus.charge.total)
    expires: datetime  # created + reservation TTL
    owner_uids: tuple[str, ...] = ()  # uids its pods will name in ownerReferences, when known


class StoreError(Exception):
    """The store cannot be reached or its retries are spent: the caller returns an error result."""


class PoolFull(Exception):
    """The pool already holds MAX_PER_POOL reservations: the workload is refused (not an error)."""


# The optional hook a store reports its contention through: event ("conflict", "retry", "error") and
# pool. A store that has one keeps it in its ``events`` attribute, which the webhook sets to count them
# as metrics; the default does nothing.
StoreEvents = Callable[[str, str], None]


def _ignore(event: str, pool: str) -> None:
    return None


class ReservationStore(Protocol):
    def held(self, pool: str, now: datetime) -> list[Reservation]:
        """Unexpired reservations of the pool."""
        ...

    def reserve(self, reservation: Reservation, limit: int, observed: int, now: datetime) -> bool:
        """ATOMIC: drop expired entries, then if observed + sum(other unexpired gpus of the pool, the same
        key replaced) + reservation.gpus <= limit: store it and return True; else store nothing, return
        False. Raises StoreError when it cannot decide, PoolFull when the pool holds MAX_PER_POOL."""
        ...

    def release(self, pool: str, key: str) -> None: ...


@runtime_checkable
class ProbedStore(Protocol):
    """A store that can say whether it is reachable (/readyz); ``probe`` raises StoreError if not."""

    def probe(self) -> str: ...


def fits(
    entries: list[Reservation], reservation: Reservation, limit: int, observed: int, now: datetime
) -> tuple[bool, list[Reservation]]:
    """The decision every store makes inside its critical section: (whether it fits, the pool's entries
    to store: expired ones dropped, the same key replaced, the new one appended when it fits). Raises
    PoolFull when the pool would hold more than MAX_PER_POOL reservations."""
    live = [r for r in entries if r.expires > now and r.key != reservation.key]
    if len(live) >= MAX_PER_POOL:
        raise PoolFull(
            f"pool {reservation.pool!r} already holds {len(live)} reservations (at most {MAX_PER_POOL}) "
            "of workloads whose pods have not appeared yet"
        )
    if observed + sum(r.gpus for r in live) + reservation.gpus > limit:
        return False, live
    return True, [*live, reservation]


class MemoryReservations:
    """Reservations held in this process (thread-safe): ``check`` runs and ``serve --inventory``."""

    def __init__(self, events: StoreEvents = _ignore) -> None:
        self._lock = threading.Lock()
        self._pools: dict[str, list[Reservation]] = {}
        self.events = events  # the store's optional hook (StoreEvents); a memory store never contends

    def held(self, pool: str, now: datetime) -> list[Reservation]:
        with self._lock:
            return [r for r in self._pools.get(pool, []) if r.expires > now]

    def reserve(self, reservation: Reservation, limit: int, observed: int, now: datetime) -> bool:
        with self._lock:
            ok, entries = fits(self._pools.get(reservation.pool, []), reservation, limit, observed, now)
            if entries:
                self._pools[reservation.pool] = entries
            else:
                self._pools.pop(reservation.pool, None)
            return ok

    def release(self, pool: str, key: str) -> None:
        with self._lock:
            kept = [r for r in self._pools.get(pool, []) if r.key != key]
            if kept:
                self._pools[pool] = kept
            else:
                self._pools.pop(pool, None)

    def probe(self) -> str:
        return "memory"
