"""Core decisions -> audit entries: the one place that knows both the engine's Decision and the entry."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from audit.entry import encode_entry
from policyengine.model import Decision


def entry_for(
    decision: Decision, *, source: str, time: datetime, commit: str | None = None
) -> dict[str, Any]:
    """The entry recording ``decision`` (every policy result, passes and skips included)."""
    return encoded_entry_for(decision, source=source, time=time, commit=commit)[0]


def encoded_entry_for(
    decision: Decision, *, source: str, time: datetime, commit: str | None = None
) -> tuple[dict[str, Any], bytes]:
    """``entry_for`` and the entry's canonical bytes, for ``AuditLog.submit_encoded``."""
    request = decision.request
    obj = request.object if request.object is not None else request.old_object
    api_version = str(obj.get("apiVersion", "")) if isinstance(obj, dict) else ""
    if not api_version:
        gvk = request.kind
        api_version = f"{gvk.group}/{gvk.version}" if gvk.group else gvk.version
    results = [
        {
            "policy": r.policy,
            "action": str(r.action),
            "outcome": str(r.outcome),
            "message": r.message,
            **({"exception": r.exception} if r.exception else {}),
        }
        for r in decision.results
    ]
    exceptions = sorted({r.exception for r in decision.results if r.exception})
    return encode_entry(
        time=time,
        source=source,
        uid=request.uid,
        operation=request.operation,
        resource={
            "apiVersion": api_version,
            "kind": request.kind.kind,
            "namespace": request.namespace,
            "name": request.name,
        },
        verdict=decision.verdict,
        user=request.user_info.username,
        groups=request.user_info.groups,
        policy_set_digest=decision.policy_set_digest,
        results=results,
        exceptions=exceptions,
        dry_run=request.dry_run,
        commit=commit,
    )
