"""What the SQL adapters share: the schema and the WHERE clause of an entry query."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from audit.entry import IndexFields
from audit.stores import Archived, Query, Record, StoredEntry

PAGE = 10_000
# What entries() and find() read: the entry, its leaf hash and its query columns (for verification).
ARCHIVED_COLUMNS = "first_idx, size, range_blob, location, before_time"
ENTRY_COLUMNS = "idx, data, leaf_hash, time, source, verdict, namespace, username, kind, policies"


def schema(blob: str, bigint: str) -> list[str]:
    return [
        f"""CREATE TABLE IF NOT EXISTS entries (
            idx {bigint} PRIMARY KEY, data {blob} NOT NULL, leaf_hash {blob} NOT NULL,
            time TEXT NOT NULL, source TEXT NOT NULL, verdict TEXT NOT NULL, namespace TEXT NOT NULL,
            username TEXT NOT NULL, kind TEXT NOT NULL, policies TEXT NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS entries_time ON entries (time)",
        f"CREATE TABLE IF NOT EXISTS heads (size {bigint} PRIMARY KEY, root {blob} NOT NULL, "
        f"range_blob {blob} NOT NULL)",
        f"CREATE TABLE IF NOT EXISTS checkpoints (size {bigint} PRIMARY KEY, note TEXT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        f"CREATE TABLE IF NOT EXISTS archived (size {bigint} PRIMARY KEY, first_idx {bigint} NOT NULL, "
        f"range_blob {blob} NOT NULL, location TEXT NOT NULL, before_time TEXT NOT NULL)",
    ]


def policies_column(fields: IndexFields) -> str:
    return "\n" + "\n".join(fields.policies) + "\n" if fields.policies else ""


def stored_entry(row: Sequence[Any]) -> StoredEntry:
    """A row of ENTRY_COLUMNS -> StoredEntry with the columns as they are stored."""
    idx, data, leaf, time, source, verdict, namespace, username, kind, policies = row
    fields = IndexFields(
        time=str(time),
        source=str(source),
        verdict=str(verdict),
        namespace=str(namespace),
        user=str(username),
        kind=str(kind),
        policies=tuple(str(policies).strip("\n").split("\n")) if policies else (),
    )
    return StoredEntry(int(idx), bytes(data), bytes(leaf), fields)


def entry_rows(base: int, records: Sequence[Record]) -> list[tuple[object, ...]]:
    return [
        (
            base + offset,
            r.data,
            r.leaf_hash,
            r.fields.time,
            r.fields.source,
            r.fields.verdict,
            r.fields.namespace,
            r.fields.user,
            r.fields.kind,
            policies_column(r.fields),
        )
        for offset, r in enumerate(records)
    ]


def where(query: Query, mark: str, contains: str, before: int | None = None) -> tuple[str, list[object]]:
    """The WHERE/ORDER/LIMIT tail of an entry query with ``mark`` placeholders.

    ``contains`` is the SQL function giving the position of a substring (instr or strpos); ``before``
    bounds the indexes from above (exclusive), for reads made in windows.
    """
    clauses = ["idx > " + mark]
    # Indexes start at 0: a row filed below that is no entry of the log (verify never sees it either).
    params: list[object] = [max(query.after, -1)]
    bounds = [b for b in (before, query.before) if b is not None]
    if bounds:
        clauses.append("idx < " + mark)
        params.append(min(bounds))
    equal = {
        "verdict": query.verdict,
        "namespace": query.namespace,
        "username": query.user,
        "kind": query.kind,
        "source": query.source,
    }
    for column, value in equal.items():
        if value is not None:
            clauses.append(f"{column} = {mark}")
            params.append(value)
    if query.since is not None:
        clauses.append(f"time >= {mark}")
        params.append(query.since)
    if query.until is not None:
        clauses.append(f"time < {mark}")
        params.append(query.until)
    if query.policy is not None:
        clauses.append(f"{contains}(policies, {mark}) > 0")
        params.append("\n" + query.policy + "\n")
    tail = " WHERE " + " AND ".join(clauses) + " ORDER BY idx"
    if query.limit is not None:
        tail += f" LIMIT {mark}"
        params.append(query.limit)
    return tail, params


class SqlReads:
    """The read queries both SQL stores share, written once with ``?`` markers. A store sets ``marker``
    (its driver's parameter marker) and ``position`` (its substring-position function), and ``_rows``."""

    marker = "?"
    position = "instr"

    def _rows(self, sql: str, params: Sequence[object] = ()) -> list[Any]:
        raise NotImplementedError

    def _select(self, sql: str, params: Sequence[object] = ()) -> list[Any]:
        return self._rows(sql.replace("?", self.marker), params)

    def leaf_hashes(self, start: int, end: int) -> list[bytes]:
        rows = self._select(
            "SELECT leaf_hash FROM entries WHERE idx >= ? AND idx < ? ORDER BY idx", (start, end)
        )
        return [bytes(row[0]) for row in rows]

    def entries(self, start: int, end: int) -> list[StoredEntry]:
        rows = self._select(
            f"SELECT {ENTRY_COLUMNS} FROM entries WHERE idx >= ? AND idx < ? ORDER BY idx", (start, end)
        )
        return [stored_entry(row) for row in rows]

    def raw_entries(self, start: int, end: int) -> list[tuple[Any, ...]]:
        """Rows of ENTRY_COLUMNS as the driver gives them, for verification (``audit.scan``)."""
        return self._select(
            f"SELECT {ENTRY_COLUMNS} FROM entries WHERE idx >= ? AND idx < ? ORDER BY idx", (start, end)
        )

    def find(self, query: Query) -> list[StoredEntry]:
        tail, params = where(query, self.marker, self.position)
        return [
            stored_entry(row) for row in self._rows(f"SELECT {ENTRY_COLUMNS} FROM entries" + tail, params)
        ]

    def checkpoints(self) -> list[tuple[int, str]]:
        return [(int(s), str(n)) for s, n in self._select("SELECT size, note FROM checkpoints ORDER BY size")]

    def latest_checkpoint(self) -> tuple[int, str] | None:
        rows = self._select("SELECT size, note FROM checkpoints ORDER BY size DESC LIMIT 1")
        return (int(rows[0][0]), str(rows[0][1])) if rows else None

    def checkpoint_at(self, size: int) -> str | None:
        rows = self._select("SELECT note FROM checkpoints WHERE size = ?", (size,))
        return str(rows[0][0]) if rows else None

    def archived(self) -> list[Archived]:
        rows = self._select(f"SELECT {ARCHIVED_COLUMNS} FROM archived ORDER BY size")
        return [Archived(int(f), int(s), bytes(r), str(loc), str(b)) for f, s, r, loc, b in rows]
