"""The audit port: every admission decision is handed to a ``DecisionRecorder`` before it is answered.

``record`` runs in a worker thread and may block until the entry is durable (the audit log's group
commit); it returns the entry's index in the log, or None when nothing is kept. If it raises, the request
is answered with HTTP 500 (``record_failed``) and kube-apiserver applies the webhook's failurePolicy:
a decision that could not be recorded is never answered as if it had been. A recorder that also has an
integer ``queue_depth`` attribute has it exported as the ``policyengine_audit_queue_depth`` gauge. One
whose ``blocking`` attribute is False returns at once and is called on the event loop, not in a thread.
"""

from __future__ import annotations

import threading
from typing import Protocol, runtime_checkable

from policyengine.model import Decision

SOURCE_ADMISSION = "admission"


@runtime_checkable
class DecisionRecorder(Protocol):
    def record(self, decision: Decision, *, source: str) -> int | None: ...


class NullRecorder:
    """The default: keeps nothing, returns no index."""

    blocking = False

    def record(self, decision: Decision, *, source: str) -> int | None:
        return None


class MemoryRecorder:
    """A fake for tests: keeps (decision, source) pairs and numbers them from 0."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.entries: list[tuple[Decision, str]] = []

    def record(self, decision: Decision, *, source: str) -> int | None:
        with self._lock:
            self.entries.append((decision, source))
            return len(self.entries) - 1

    @property
    def decisions(self) -> list[Decision]:
        with self._lock:
            return [d for d, _ in self.entries]
