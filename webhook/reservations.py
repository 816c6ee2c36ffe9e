"""Opening the GPU reservation store that ``serve --reservations`` names.

``memory`` keeps them in this process (one replica, or ``--inventory`` without a cluster). The shared
stores (``kube``: the API server, ``postgresql://``) are opened by their own modules.
"""

from __future__ import annotations

from typing import Any

from policyengine.reservations import MemoryReservations, ReservationStore

__all__ = ["open_store"]


def open_store(spec: str, kube_api: Any) -> ReservationStore:
    """The store ``spec`` names; raises ValueError for one this build cannot open."""
    if spec == "memory":
        return MemoryReservations()
    scheme = spec.split("://")[0]
    raise ValueError(f"reservation store {scheme!r} is not available in this build (use memory)")
