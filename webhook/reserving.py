"""The webhook's GPU reservation ledger: the store ``--reservations`` names, metered for ``/metrics``
(reservations made and refused, store conflicts, retries and errors) and reported by ``/readyz``.

The store's state is reported, not a readiness gate: when it is out of service only the requests that
add GPUs to a pool with a quota get an error result (their failurePolicy decides); every other request
is still judged.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Any

from policyengine.charging import Ledger
from policyengine.reservations import PoolFull, ProbedStore, Reservation, ReservationStore, StoreError
from webhook.settings import Settings
from webhook.telemetry import Telemetry

__all__ = ["MeteredStore", "UnavailableStore", "ledger_from", "store_spec"]


def store_spec(settings: Settings) -> str:
    """--reservations, else ``kube`` with --kube and ``memory`` otherwise."""
    return settings.reservations or ("kube" if settings.kube else "memory")


class UnavailableStore:
    """A store that could not be opened: every question is a StoreError naming why."""

    blocking = False  # answers at once (webhook.onloop)

    def __init__(self, why: str) -> None:
        self.why = why

    def held(self, pool: str, now: datetime) -> list[Reservation]:
        raise StoreError(self.why)

    def reserve(self, reservation: Reservation, limit: int, observed: int, now: datetime) -> bool:
        raise StoreError(self.why)

    def release(self, pool: str, key: str) -> None:
        raise StoreError(self.why)


class MeteredStore:
    """Counts what passes through a store; remembers its last error for /readyz."""

    def __init__(self, store: ReservationStore, telemetry: Telemetry, spec: str) -> None:
        self.store, self.telemetry, self.spec = store, telemetry, spec
        self._lock = threading.Lock()
        self.last_error: str | None = None
        if hasattr(store, "events"):  # a shared store reports its conflicts and retries
            store.events = self.event

    def event(self, event: str, pool: str) -> None:
        self.telemetry.add("reservation_store_events", 1, event=event)

    def _failed(self, err: StoreError) -> None:
        with self._lock:
            self.last_error = str(err)[:300]
        self.telemetry.add("reservation_store_events", 1, event="error")

    def _ok(self) -> None:
        with self._lock:
            self.last_error = None

    def held(self, pool: str, now: datetime) -> list[Reservation]:
        try:
            found = self.store.held(pool, now)
        except StoreError as err:
            self._failed(err)
            raise
        self._ok()
        return found

    def reserve(self, reservation: Reservation, limit: int, observed: int, now: datetime) -> bool:
        try:
            made = self.store.reserve(reservation, limit, observed, now)
        except PoolFull:
            self.telemetry.add("reservations", 1, result="full")
            raise
        except StoreError as err:
            self._failed(err)
            raise
        self._ok()
        self.telemetry.add("reservations", 1, result="made" if made else "refused")
        return made

    def release(self, pool: str, key: str) -> None:
        try:
            self.store.release(pool, key)
        except StoreError as err:
            self._failed(err)
            raise
        self.telemetry.add("reservations", 1, result="released")

    def status(self) -> dict[str, Any]:
        """``{"store": spec, "healthy": bool, "error"?: why}`` for /readyz (a probe when the store has one)."""
        if isinstance(self.store, UnavailableStore):
            return {"store": self.spec, "healthy": False, "error": self.store.why}
        if isinstance(self.store, ProbedStore):
            try:
                self.store.probe()
                self._ok()
            except StoreError as err:
                self._failed(err)
        with self._lock:
            error = self.last_error
        return {"store": self.spec, "healthy": error is None, **({"error": error} if error else {})}


def ledger_from(settings: Settings, telemetry: Telemetry, kube_api: Any = None) -> Ledger:
    """The ledger of the store the settings name; a store that cannot be opened is reported, and every
    GPU admission into a pool with a quota is an error result until the process is restarted."""
    from webhook.reservations import open_store

    spec = store_spec(settings)
    shown = spec if "@" not in spec else spec.split("://")[0] + "://…@" + spec.rsplit("@", 1)[-1]
    store: ReservationStore
    try:
        store = open_store(spec, kube_api)
    except (ValueError, StoreError, OSError) as err:
        why = str(err).replace(spec, shown)  # a DSN's password never reaches /readyz or a result
        store = UnavailableStore(f"the reservation store {shown!r} cannot be opened: {why}")
    metered = MeteredStore(store, telemetry, shown)
    return Ledger(metered, ttl=timedelta(seconds=settings.reservation_ttl))
