"""The audit log behind the webhook's DecisionRecorder port: one signed entry per admission decision,
durable (group commit) before the decision is answered.

When the log cannot take an entry, ``failure`` decides: ``deny`` (the default) raises, so the request is
answered 500 and kube-apiserver applies the webhook's failurePolicy; ``allow`` answers without an audit
index and counts the miss in ``failures``, which the metrics and readiness report.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from audit import AuditError, AuditLog, load_signer
from audit.decisions import entry_for
from policyengine.model import Decision
from webhook.logs import get_logger

FAILURE_MODES = ("deny", "allow")


class AuditRecorder:
    def __init__(self, log: AuditLog, *, failure: str = "deny") -> None:
        if failure not in FAILURE_MODES:
            raise ValueError(f"audit failure mode must be one of {FAILURE_MODES}")
        self.log = log
        self.failure = failure
        self._lock = threading.Lock()
        self.failures = 0
        self.healthy = True  # the last append succeeded

    @classmethod
    def open(
        cls, target: str, key: str, *, origin: str | None = None, failure: str = "deny"
    ) -> AuditRecorder:
        return cls(AuditLog.open(target, signer=load_signer(key, origin)), failure=failure)

    @property
    def queue_depth(self) -> int:
        return int(self.log.queue_depth)

    def record(self, decision: Decision, *, source: str) -> int | None:
        try:
            index = self.log.append(entry_for(decision, source=source, time=datetime.now(UTC)))
        except AuditError as err:
            with self._lock:
                self.failures += 1
                self.healthy = False
            get_logger().error("audit append failed", extra={"code": err.code, "failure_mode": self.failure})
            if self.failure == "deny":
                raise
            return None
        self.healthy = True
        return index

    def close(self) -> None:
        self.log.close()
