"""The audit log behind the webhook's DecisionRecorder port: one signed entry per admission decision,
durable (group commit) before the decision is answered.

When the log cannot take an entry, ``failure`` decides: ``deny`` (the default) raises, so the request is
answered 500 and kube-apiserver applies the webhook's failurePolicy; ``allow`` answers without an audit
index and counts the miss in ``failures``, which the metrics and readiness report.

A log out of service (its server out of reach, or every append failing) is reported by ``outage``: it
makes the replica unready in deny mode, and once it has lasted ``restart_after`` seconds, not ``live``
either, so that the kubelet restarts a process that could not heal itself.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import Any

from audit import AuditError, AuditLog, load_signer
from audit.decisions import encoded_entry_for, entry_for
from audit.errors import StoreUnavailable
from policyengine.model import Decision
from webhook.logs import get_logger

FAILURE_MODES = ("deny", "allow")
RESTART_AFTER = 120.0  # seconds of outage after which a deny-mode replica asks to be restarted


class AuditRecorder:
    def __init__(self, log: AuditLog, *, failure: str = "deny", restart_after: float = RESTART_AFTER) -> None:
        if failure not in FAILURE_MODES:
            raise ValueError(f"audit failure mode must be one of {FAILURE_MODES}")
        self.log = log
        self.failure = failure
        self.restart_after = restart_after  # 0: never
        self._lock = threading.Lock()
        self.failures = 0
        # Since when appends have failed while the store was reachable (an out-of-reach store keeps its
        # own account, and is healthy again as soon as it is back, before any request comes).
        self._failing_since: float | None = None

    @classmethod
    def open(
        cls,
        target: str,
        key: str,
        *,
        origin: str | None = None,
        next_key: str | None = None,
        failure: str = "deny",
        restart_after: float = RESTART_AFTER,
    ) -> AuditRecorder:
        signer = load_signer(key, origin)
        successors = [load_signer(next_key, signer.name)] if next_key else []
        log = AuditLog.open(target, signer=signer, next_signers=successors)
        return cls(log, failure=failure, restart_after=restart_after)

    @property
    def queue_depth(self) -> int:
        return int(self.log.queue_depth)

    def outage(self) -> float | None:
        """Seconds the log has not been taking entries, None while it takes them."""
        store = getattr(self.log, "outage", None)
        down = store() if callable(store) else None
        with self._lock:
            since = self._failing_since
        spans = [s for s in (down, None if since is None else time.monotonic() - since) if s is not None]
        return max(spans) if spans else None

    @property
    def healthy(self) -> bool:
        return self.outage() is None

    @property
    def live(self) -> bool:
        """False once a deny-mode log has been out of service for ``restart_after`` seconds. In allow mode
        the replica still answers, and a restart would only stop it (it cannot open an unreachable log)."""
        if self.failure != "deny" or self.restart_after <= 0:
            return True
        outage = self.outage()
        return outage is None or outage < self.restart_after

    @property
    def queued(self) -> bool:
        """Whether ``submit`` can queue an entry without waiting (the audit log's group commit)."""
        return callable(getattr(self.log, "submit", None))

    def record(self, decision: Decision, *, source: str) -> int | None:
        if self.queued:
            return self.submit(decision, source=source).result()
        try:
            index = self.log.append(self._entry(decision, source))
        except AuditError as err:
            self._failed(err)
            return None  # allow mode: answered without an index
        self._succeeded()
        return index

    def submit(self, decision: Decision, *, source: str) -> Future[int | None]:
        """``record`` without waiting: the entry is queued for the log's group commit (``queued``
        logs only), and the future gives what ``record`` returns once the entry is durable, or raises
        what it raises. The event loop awaits it instead of parking a thread on it."""
        done: Future[int | None] = Future()
        try:
            written = self._submit(decision, source)
        except Exception as err:  # as record would raise it, from the future
            self._settle(done, err, None)
            return done
        written.add_done_callback(lambda f: self._settle(done, f.exception(), f))
        return done

    def _submit(self, decision: Decision, source: str) -> Future[int]:
        """Queue the entry of ``decision``, canonicalised once when the log takes the bytes with it."""
        encoded = getattr(self.log, "submit_encoded", None)
        if encoded is None:
            return self.log.submit(self._entry(decision, source))
        entry, data = encoded_entry_for(decision, source=source, time=datetime.now(UTC))
        return encoded(entry, data)  # type: ignore[no-any-return]

    def _entry(self, decision: Decision, source: str) -> dict[str, Any]:
        return entry_for(decision, source=source, time=datetime.now(UTC))

    def _settle(
        self, done: Future[int | None], err: BaseException | None, written: Future[int] | None
    ) -> None:
        if err is None and written is not None:
            self._succeeded()
            done.set_result(written.result())
            return
        if isinstance(err, AuditError):
            try:
                self._failed(err)
            except AuditError as denied:
                done.set_exception(denied)
            else:
                done.set_result(None)  # allow mode: answered without an index
            return
        done.set_exception(err if err is not None else RuntimeError("no entry written"))

    def _failed(self, err: AuditError) -> None:
        """Counts the failure and logs it; raises it in deny mode (allow: the answer has no index)."""
        with self._lock:
            self.failures += 1
            if not isinstance(err, StoreUnavailable) and self._failing_since is None:
                self._failing_since = time.monotonic()
        get_logger().error(
            "audit append failed",
            extra={"code": err.code, "failure_mode": self.failure, "reason": err.message},
        )
        if self.failure == "deny":
            raise err

    def _succeeded(self) -> None:
        with self._lock:
            self._failing_since = None

    def close(self) -> None:
        self.log.close()
