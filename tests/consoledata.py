"""A log of realistic decisions for the console's tests: teams, GPU policies, warnings, exceptions.

Entry ``i`` is fully determined by ``i`` (tests compute what a filter must return from ``decision(i)``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from audit import AuditLog, make_entry

T0 = datetime(2026, 9, 1, tzinfo=UTC)
STEP = timedelta(minutes=7)
TEAMS = ("team-a", "team-b", "team-c", "ml-research")
KINDS = ("Pod", "Job", "Deployment", "RayCluster")
EXCEPTION = "gpu-quota-waiver-q3"


def decision(i: int) -> dict[str, Any]:
    team = TEAMS[i % len(TEAMS)]
    kind = KINDS[(i // 4) % len(KINDS)]
    deny = i % 5 == 0
    warn = not deny and i % 3 == 0
    excepted = not deny and i % 11 == 0
    results: list[dict[str, str]] = [
        {
            "policy": "gpu-team-quota",
            "action": "deny",
            "outcome": "fail" if deny else ("excepted" if excepted else "pass"),
            "message": f"team {team} asks for 8 GPUs over its quota of 4" if deny else "",
            **({"exception": EXCEPTION} if excepted else {}),
        },
        {
            "policy": "model-approved-source",
            "action": "warn",
            "outcome": "fail" if warn else "pass",
            "message": "model from an unapproved registry: hf.co/unknown/llm" if warn else "",
        },
    ]
    return make_entry(
        time=T0 + i * STEP,
        source=("admission", "admission", "ci", "background")[i % 4],
        uid=f"req-{i:06d}",
        operation="CREATE",
        resource={
            "apiVersion": "batch/v1" if kind == "Job" else "v1",
            "kind": kind,
            "namespace": team,
            "name": f"train-{i}",
        },
        verdict="denied" if deny else ("warned" if warn else "allowed"),
        user=f"alice@{team}" if i % 2 else f"bob@{team}",
        groups=["system:authenticated", team],
        policy_set_digest="sha256:" + "cd" * 32,
        results=results,
        exceptions=[EXCEPTION] if excepted else [],
    )


def fill(log: AuditLog, count: int) -> None:
    futures = [log.submit(decision(i)) for i in range(count)]
    for future in futures:
        future.result()
    log.sign_pending()
