"""The console's reads over a log: filtered pages walked by index (keyset), newest first, each bounded.

Every read examines at most a fixed number of index positions, in windows the store answers with its
primary key (``idx > ? AND idx < ?``): a page costs the same on a log of a thousand entries and of a
million, whatever the filter. A filter that matches nothing in the budget says how far it searched and
hands back the cursor to search further, instead of walking the whole log.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from audit.log import AuditLog, LoggedEntry
from audit.stores import Query

WINDOW = 4096  # index positions one store query covers
PAGE_BUDGET = 100_000  # index positions one page of results may examine
EXCEPTION_KEY = '"exception":'  # in canonical JSON a quote inside a string is escaped: this is a key


@dataclass(frozen=True)
class Filters:
    """What the auditor filters on; ``exception`` is an exception's name, or ``*`` for any exception."""

    query: Query
    exception: str | None = None

    def matches(self, row: LoggedEntry) -> bool:
        if self.exception is None:
            return True
        if self.exception == "*":
            return EXCEPTION_KEY.encode() in row.data
        return self.exception in _exceptions(row.entry)


@dataclass(frozen=True)
class Page:
    """Rows newest first; ``older``/``newer`` are the cursors of the next pages (None: nothing there);
    ``low``..``high`` is the index range this page examined."""

    rows: list[LoggedEntry]
    older: int | None
    newer: int | None
    low: int
    high: int


def log_size(log: AuditLog) -> int:
    return log.store.head().size


def page_before(log: AuditLog, filters: Filters, before: int | None, limit: int) -> Page:
    """Up to ``limit`` matching entries with index < ``before`` (default: the newest), newest first."""
    size = log_size(log)
    high = size if before is None else max(0, min(before, size))
    rows: list[LoggedEntry] = []
    low = high
    while low > 0 and len(rows) < limit and high - low < PAGE_BUDGET:
        start = max(0, low - WINDOW)
        found = _window(log, filters, start, low)
        rows.extend(reversed(found))
        low = start
    if len(rows) > limit:
        rows = rows[:limit]
        low = rows[-1].index
    older = low if low > 0 else None
    newer = high if high < size else None
    return Page(rows, older, newer, low, high)


def page_after(log: AuditLog, filters: Filters, after: int, limit: int) -> Page:
    """Up to ``limit`` matching entries with index > ``after``, nearest first, shown newest first."""
    size = log_size(log)
    low = max(-1, after) + 1
    rows: list[LoggedEntry] = []
    high = low
    while high < size and len(rows) < limit and high - low < PAGE_BUDGET:
        end = min(size, high + WINDOW)
        rows.extend(_window(log, filters, high, end))
        high = end
    if len(rows) > limit:
        rows = rows[:limit]
        high = rows[-1].index + 1
    rows.reverse()
    return Page(rows, low if low > 0 else None, high if high < size else None, low, high)


def walk(log: AuditLog, filters: Filters, budget: int, cap: int) -> tuple[list[LoggedEntry], int, bool]:
    """Matching entries newest first, examining at most ``budget`` positions and keeping at most ``cap``
    rows. Returns the rows, the lowest index examined, and whether more may match below it."""
    high = log_size(log)
    low = high
    rows: list[LoggedEntry] = []
    while low > 0 and high - low < budget:
        start = max(0, low - WINDOW)
        rows.extend(reversed(_window(log, filters, start, low)))
        low = start
        if len(rows) > cap:
            return rows[:cap], rows[cap - 1].index, True
    return rows, low, low > 0


class Scan:
    """Entries matching ``query``, newest first, examining at most ``budget`` positions; afterwards
    ``low`` is the lowest index examined (0: the whole log was read)."""

    def __init__(self, log: AuditLog, query: Query, budget: int) -> None:
        self.log, self.query, self.budget = log, query, budget
        self.high = log_size(log)
        self.low = self.high

    def __iter__(self) -> Iterator[LoggedEntry]:
        while self.low > 0 and self.high - self.low < self.budget:
            start = max(0, self.low - WINDOW)
            found = self.log.query(replace(self.query, after=start - 1, before=self.low, limit=None))
            self.low = start
            yield from reversed(found)


def one(log: AuditLog, index: int) -> LoggedEntry | None:
    if not 0 <= index < log_size(log):
        return None
    stored = log.store.entries(index, index + 1)
    if not stored:
        return None
    return LoggedEntry(index, _parse(stored[0].data), stored[0].data)


def _window(log: AuditLog, filters: Filters, start: int, end: int) -> list[LoggedEntry]:
    rows = log.query(replace(filters.query, after=start - 1, before=end, limit=None))
    return [row for row in rows if filters.matches(row)]


def _exceptions(entry: dict[str, Any]) -> set[str]:
    names = {str(name) for name in entry.get("exceptions") or () if isinstance(name, str)}
    for result in entry.get("results") or ():
        if isinstance(result, dict) and isinstance(result.get("exception"), str):
            names.add(result["exception"])
    return names


def _parse(data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
