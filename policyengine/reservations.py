"""The reservation port: GPUs charged to a quota pool at admission and held until the workload's pods
are observed, so workloads admitted together cannot each see the same free quota.

``ReservationStore`` is what the engine asks; ``MemoryReservations`` keeps them in the process (one
replica, or ``--inventory``); the webhook provides stores shared by several replicas.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class Reservation:
    key: str  # the workload's identity: "<namespace>/<apiVersion group>/<Kind>/<name>" (uid when known)
    pool: str  # the quota pool it is charged to (org.quota.team; a ClusterQueue under kueue)
    gpus: int  # the devices it adds (workload.gpus.charge.total)
    expires: datetime  # created + reservation TTL
    owner_uids: tuple[str, ...] = ()  # uids its pods will name in ownerReferences, when known


class StoreError(Exception):
    """The store cannot be reached or its retries are spent: the caller returns an error result."""


class ReservationStore(Protocol):
    def held(self, pool: str, now: datetime) -> list[Reservation]:
        """The unexpired reservations of the pool."""
        ...

    def reserve(self, reservation: Reservation, limit: int, observed: int, now: datetime) -> bool:
        """ATOMIC: drop expired entries, then if observed + sum(other unexpired gpus of the pool, the same
        key replaced) + reservation.gpus <= limit: store it and return True; else store nothing, return
        False. Raises StoreError when it cannot decide."""
        ...

    def release(self, pool: str, key: str) -> None: ...


class MemoryReservations:
    """Reservations of one process, under one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pools: dict[str, dict[str, Reservation]] = {}

    def held(self, pool: str, now: datetime) -> list[Reservation]:
        with self._lock:
            return [r for r in self._pools.get(pool, {}).values() if r.expires > now]

    def reserve(self, reservation: Reservation, limit: int, observed: int, now: datetime) -> bool:
        with self._lock:
            entries = {k: r for k, r in self._pools.get(reservation.pool, {}).items() if r.expires > now}
            others = sum(r.gpus for k, r in entries.items() if k != reservation.key)
            if observed + others + reservation.gpus > limit:
                self._pools[reservation.pool] = entries
                return False
            entries[reservation.key] = reservation
            self._pools[reservation.pool] = entries
            return True

    def release(self, pool: str, key: str) -> None:
        with self._lock:
            self._pools.get(pool, {}).pop(key, None)
