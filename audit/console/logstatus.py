"""What the log page says about the log: its size, its latest checkpoint and signer, and the last time
this process verified it against the auditor's public key (the standalone console does at start)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from audit.checkpoint import peek_checkpoint
from audit.errors import AuditError
from audit.log import AuditLog
from audit.note import Verifier, split_note
from audit.verify import VerifyReport


@dataclass(frozen=True)
class Verification:
    started: datetime
    finished: datetime | None = None
    report: VerifyReport | None = None
    error: str = ""


class LogStatus:
    """The last verification this process ran (None: it runs none); read by the log page."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: Verification | None = None
        self.key: str = ""

    @property
    def last(self) -> Verification | None:
        with self._lock:
            return self._last

    def verify(self, log: AuditLog, verifier: Verifier) -> Verification:
        """Re-hash the whole log and check its checkpoints; keep and return the outcome."""
        self.key = verifier.vkey()
        started = datetime.now(UTC)
        with self._lock:
            self._last = Verification(started)
        report: VerifyReport | None = None
        error = ""
        try:
            report = log.verify(verifier)
        except AuditError as exc:
            error = f"{exc} ({exc.code})"
        result = Verification(started, datetime.now(UTC), report, error)
        with self._lock:
            self._last = result
        return result

    def verify_in_background(self, log: AuditLog, verifier: Verifier) -> threading.Thread:
        thread = threading.Thread(
            target=self.verify, args=(log, verifier), name="policyengine-console-verify", daemon=True
        )
        thread.start()
        return thread

    def describe(self, log: AuditLog) -> dict[str, Any]:
        head = log.store.head()
        latest = log.store.latest_checkpoint()
        context: dict[str, Any] = {"size": head.size, "checkpoint": None, "verification": self.last}
        context["key"] = self.key
        if latest is not None:
            size, note = latest
            try:
                checkpoint = peek_checkpoint(note)
                _, signatures = split_note(note)
                signers = [f"{name}+{key_id.hex()}" for name, key_id, _ in signatures]
                context["checkpoint"] = {
                    "size": size,
                    "origin": checkpoint.origin,
                    "root": checkpoint.root.hex(),
                    "signers": signers,
                    "note": note,
                    "unsigned": max(0, head.size - size),
                }
            except AuditError as exc:
                context["checkpoint_error"] = f"the latest checkpoint cannot be read: {exc}"
        return context
