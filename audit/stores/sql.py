"""What the SQL adapters share: the schema and the WHERE clause of an entry query."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from audit.entry import IndexFields
from audit.stores import Query, Record, StoredEntry

PAGE = 10_000
# What entries() and find() read: the entry, its leaf hash and its query columns (for verification).
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


def where(query: Query, mark: str, contains: str) -> tuple[str, list[object]]:
    """The WHERE/ORDER/LIMIT tail of an entry query with ``mark`` placeholders.

    ``contains`` is the SQL function giving the position of a substring (instr or strpos).
    """
    clauses = ["idx > " + mark]
    # Indexes start at 0: a row filed below that is no entry of the log (verify never sees it either).
    params: list[object] = [max(query.after, -1)]
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
