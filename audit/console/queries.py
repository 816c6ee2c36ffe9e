"""The console's reads over a log: filtered pages walked by index (keyset), newest first, each bounded.

Every read examines at most a fixed number of index positions, in windows the store answers with its
primary key (``idx > ? AND idx < ?``): a page costs the same on a log of a thousand entries and of a
million, whatever the filter. A time range is first turned into an index range by a binary search. A filter that matches nothing in the budget says how far it searched and
hands back the cursor to search further, instead of walking the whole log.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from audit.entry import TIME_FORMAT, format_time
from audit.log import AuditLog, LoggedEntry
from audit.retention import live_base
from audit.stores import Query, StoredEntry

WINDOW = 4096  # index positions one store query covers, at most
TIME_MARGIN = timedelta(hours=1)  # how far out of time order an entry may have been appended
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


def live_start(log: AuditLog) -> int:
    """The first entry the live log holds: those below were archived and dropped (``audit archive``)."""
    return live_base(log.store).size


def span(log: AuditLog, query: Query) -> tuple[int, int]:
    """The index range [floor, ceiling) that can hold entries of the query's time range.

    Entries are appended in the order they are decided, give or take the seconds batching and
    replicas reorder them, so the entry times are sorted by index but for that jitter: a binary search
    over the index (a primary-key read per step) finds the range, widened by ``TIME_MARGIN`` each
    side. The time filter itself still applies to every entry read.
    """
    size, start = log_size(log), live_start(log)
    floor = start if query.since is None else _first_at(log, _shift(query.since, -TIME_MARGIN), start, size)
    ceiling = size if query.until is None else _first_at(log, _shift(query.until, TIME_MARGIN), start, size)
    return floor, max(floor, ceiling)


class Walk:
    """Reads matching entries of [floor, high) newest first, in windows that start small (a page of
    the newest entries parses about a page) and grow while the filter matches little, never reading
    more than ``budget`` positions. ``low`` is the lowest index read so far."""

    def __init__(
        self, log: AuditLog, filters: Filters, floor: int, high: int, budget: int, width: int = WINDOW
    ) -> None:
        self.log, self.filters, self.floor, self.high, self.budget = log, filters, floor, high, budget
        self.low = high
        self.width = max(1, min(WINDOW, width))

    def __iter__(self) -> Iterator[LoggedEntry]:
        while self.low > self.floor and self.high - self.low < self.budget:
            start = max(self.floor, self.low - self.width, self.high - self.budget)
            found = _window(self.log, self.filters, start, self.low)
            self.low = start
            self.width = min(WINDOW, self.width * 4)
            yield from reversed(found)

    @property
    def more(self) -> bool:
        return self.low > self.floor


def page_before(log: AuditLog, filters: Filters, before: int | None, limit: int) -> Page:
    """Up to ``limit`` matching entries with index < ``before`` (default: the newest), newest first."""
    floor, ceiling = span(log, filters.query)
    high = ceiling if before is None else max(floor, min(before, ceiling))
    walk = Walk(log, filters, floor, high, PAGE_BUDGET, width=2 * limit)
    rows: list[LoggedEntry] = []
    for row in walk:
        rows.append(row)
        if len(rows) == limit:
            break
    low = rows[-1].index if len(rows) == limit else walk.low
    older = low if low > floor else None
    return Page(rows, older, high if high < ceiling else None, low, high)


def page_after(log: AuditLog, filters: Filters, after: int, limit: int) -> Page:
    """Up to ``limit`` matching entries with index > ``after``, nearest first, shown newest first."""
    floor, ceiling = span(log, filters.query)
    low = max(floor, after + 1)
    rows: list[LoggedEntry] = []
    high, width = low, 2 * limit
    while high < ceiling and len(rows) < limit and high - low < PAGE_BUDGET:
        end = min(ceiling, high + width, low + PAGE_BUDGET)
        rows.extend(_window(log, filters, high, end))
        high, width = end, min(WINDOW, width * 4)
    if len(rows) > limit:
        rows = rows[:limit]
        high = rows[-1].index + 1
    rows.reverse()
    return Page(rows, low if low > floor else None, high if high < ceiling else None, low, high)


def walk(log: AuditLog, filters: Filters, budget: int, cap: int) -> tuple[list[LoggedEntry], int, bool]:
    """Matching entries newest first, examining at most ``budget`` positions and keeping at most ``cap``
    rows. Returns the rows, the lowest index examined, and whether more may match below it."""
    floor, ceiling = span(log, filters.query)
    reader = Walk(log, filters, floor, ceiling, budget)
    rows: list[LoggedEntry] = []
    for row in reader:
        if len(rows) == cap:
            return rows, rows[-1].index, True
        rows.append(row)
    return rows, reader.low, reader.more


def scan(log: AuditLog, query: Query, budget: int) -> Walk:
    """The entries of ``query`` newest first, reading at most ``budget`` positions (for summaries)."""
    floor, ceiling = span(log, query)
    return Walk(log, Filters(query), floor, ceiling, budget)


def one(log: AuditLog, index: int) -> LoggedEntry | None:
    if not live_start(log) <= index < log_size(log):
        return None
    stored = log.store.entries(index, index + 1)
    if not stored:
        return None
    return LoggedEntry(index, _parse(stored[0].data), stored[0].data)


def _first_at(log: AuditLog, time: str, start: int, size: int) -> int:
    """The lowest index in [start, size] whose entry time is >= ``time``, were times sorted by index
    (binary search)."""
    low, high = start, size
    while low < high:
        middle = (low + high) // 2
        stored = log.store.entries(middle, middle + 1)
        if stored and _time_of(stored[0]) < time:
            low = middle + 1
        else:
            high = middle
    return low


def _time_of(stored: StoredEntry) -> str:
    if stored.fields is not None:
        return stored.fields.time
    return str(_parse(stored.data).get("time", ""))


def _shift(time: str, by: timedelta) -> str:
    when = datetime.strptime(time, TIME_FORMAT).replace(tzinfo=UTC)
    try:
        return format_time(when + by)
    except OverflowError:
        return time


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
