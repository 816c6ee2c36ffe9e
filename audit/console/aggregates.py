"""Summaries the console draws: denies and warnings per policy over time, and how exceptions were used.

Both read the newest entries of a time range, at most ``SUMMARY_BUDGET`` index positions, and say so
when the range held more: a summary over a million entries is a job for ``audit query``, not a page.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from audit.console.queries import EXCEPTION_KEY, scan
from audit.log import AuditLog
from audit.stores import Query

SUMMARY_BUDGET = 50_000  # entries a summary reads: about 5 s of parsing at most
EXPIRING_SOON = timedelta(days=14)


@dataclass(frozen=True)
class ExceptionInfo:
    """A PolicyException as the policy set declares it (the log records only its name)."""

    name: str
    policies: tuple[str, ...] = ()
    approved_by: str = ""
    expires: datetime | None = None
    reason: str = ""


@dataclass
class PolicySeries:
    policy: str
    denies: Counter[str] = field(default_factory=Counter)
    warnings: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class PolicySummary:
    buckets: list[str]
    series: list[PolicySeries]
    low: int  # the index range read: entries below low were not counted
    high: int
    bucket: str  # "hour", "day" or "week"


@dataclass
class ExceptionUse:
    name: str
    uses: int = 0
    last_used: str = ""
    users: Counter[str] = field(default_factory=Counter)
    policies: Counter[str] = field(default_factory=Counter)
    info: ExceptionInfo | None = None

    def status(self, now: datetime) -> str:
        if self.info is None:
            return "not in the policy set"
        if self.info.expires is None:
            return "no expiry"
        if self.info.expires <= now:
            return "expired"
        if self.info.expires - now <= EXPIRING_SOON:
            return "expiring soon"
        return "active"


def bucket_width(since: datetime, until: datetime) -> timedelta:
    span = until - since
    if span <= timedelta(days=2):
        return timedelta(hours=1)
    if span <= timedelta(days=92):
        return timedelta(days=1)
    return timedelta(days=7)


def bucket_labels(since: datetime, until: datetime) -> list[str]:
    width = bucket_width(since, until)
    labels: list[str] = []
    at = since
    while at < until and len(labels) < 500:
        labels.append(_label(at, width))
        at += width
    return labels


def policy_summary(log: AuditLog, since: datetime, until: datetime) -> PolicySummary:
    """Denying and warning results per policy and time bucket, over the newest entries of the range."""
    width = bucket_width(since, until)
    buckets = bucket_labels(since, until)
    series: dict[str, PolicySeries] = {}
    reader = scan(log, Query(since=_fmt(since), until=_fmt(until)), SUMMARY_BUDGET)
    for row in reader:
        if row.entry.get("verdict") == "allowed":
            continue
        label = _bucket_of(str(row.entry.get("time", "")), since, width)
        for result in _results(row.entry):
            kind = _counted(result)
            if kind is None:
                continue
            name = str(result.get("policy", ""))
            item = series.setdefault(name, PolicySeries(name))
            (item.denies if kind == "deny" else item.warnings)[label] += 1
    ordered = sorted(series.values(), key=lambda s: -(s.denies.total() + s.warnings.total()))
    name = {timedelta(hours=1): "hour", timedelta(days=1): "day"}.get(width, "week")
    return PolicySummary(buckets, ordered, reader.low if reader.more else 0, reader.high, name)


def exception_uses(
    log: AuditLog, since: datetime, until: datetime, known: tuple[ExceptionInfo, ...]
) -> tuple[list[ExceptionUse], int]:
    """Each exception used in the range (uses, last use, who, which policies) and each one the policy set
    declares, used or not; with the lowest index read (entries below it were not counted)."""
    uses: dict[str, ExceptionUse] = {info.name: ExceptionUse(info.name, info=info) for info in known}
    reader = scan(log, Query(since=_fmt(since), until=_fmt(until)), SUMMARY_BUDGET)
    for row in reader:
        if EXCEPTION_KEY.encode() not in row.data:
            continue
        user = row.entry.get("user")
        username = str(user.get("username", "")) if isinstance(user, dict) else ""
        for result in _results(row.entry):
            name = result.get("exception")
            if not isinstance(name, str) or not name:
                continue
            use = uses.setdefault(name, ExceptionUse(name))
            use.uses += 1
            use.last_used = max(use.last_used, str(row.entry.get("time", "")))
            use.users[username] += 1
            use.policies[str(result.get("policy", ""))] += 1
    ordered = sorted(uses.values(), key=lambda u: (-u.uses, u.name))
    return ordered, reader.low if reader.more else 0


def _counted(result: dict[str, Any]) -> str | None:
    action, outcome = result.get("action"), result.get("outcome")
    if outcome not in ("fail", "error"):
        return None
    if action == "deny":
        return "deny"
    if action == "warn":
        return "warn"
    return None


def _results(entry: dict[str, Any]) -> list[dict[str, Any]]:
    results = entry.get("results")
    return [r for r in results if isinstance(r, dict)] if isinstance(results, list) else []


def _fmt(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _label(at: datetime, width: timedelta) -> str:
    return at.strftime("%Y-%m-%d %H:00" if width < timedelta(days=1) else "%Y-%m-%d")


def _bucket_of(time: str, since: datetime, width: timedelta) -> str:
    try:
        when = datetime.fromisoformat(time.replace("Z", "+00:00"))
    except ValueError:
        return ""
    steps = int((when - since) / width)
    return _label(since + steps * width, width)
