"""Dropping the entry bodies of an archived prefix from a SQL store: the checks and statements both SQL
adapters run inside their own write transactions.

The prefix is recorded first, in one transaction with its checks; from then on every read starts at its
end, so the rows below it are invisible. They are then deleted a chunk per transaction: a million rows
in one would hold the log's write lock for many seconds, and admission waits on that lock. A drop cut
short leaves invisible rows that the next drop of any archive deletes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from audit import errors
from audit.errors import ExportError, StoreCorrupt
from audit.stores import Archived

DROP_CHUNK = 2_000  # rows deleted per transaction: tens of milliseconds of the write lock

# Runs one statement written with ``?`` markers in the open transaction and returns its rows ([] if none).
Execute = Callable[[str, Sequence[object]], list[Any]]


def record_prefix(execute: Execute, record: Archived) -> None:
    """Record ``record`` after checking that it follows the prefix already archived, ends on a signed
    size, and keeps the compact range the stored head has; nothing when it is recorded already."""
    done = execute("SELECT first_idx, range_blob FROM archived WHERE size = ?", (record.size,))
    if done and int(done[0][0]) == record.first and bytes(done[0][1]) == record.range_blob:
        return  # dropped already (a retry after a lost connection, or the same archive run twice)
    previous = int(execute("SELECT COALESCE(MAX(size), 0) FROM archived", ())[0][0])
    if record.first != previous:
        raise ExportError(
            f"entries [0, {previous}) are archived already: the next archive starts at {previous}, "
            f"not {record.first}",
            code=errors.ARCHIVE_INVALID,
        )
    if record.size <= record.first:
        raise ExportError(f"an archive of no entries ({record.size})", code=errors.ARCHIVE_EMPTY)
    if not execute("SELECT 1 FROM checkpoints WHERE size = ?", (record.size,)):
        raise ExportError(f"no checkpoint signs size {record.size}", code=errors.ARCHIVE_INVALID)
    rows = execute("SELECT range_blob FROM heads WHERE size = ?", (record.size,))
    if not rows or bytes(rows[0][0]) != record.range_blob:
        # Appends build on the kept range: one that is not the stored head's would fork the tree.
        raise StoreCorrupt(
            f"the compact range kept for size {record.size} is not the stored head's",
            code=errors.RANGE_MISMATCH,
        )
    execute(
        "INSERT INTO archived (size, first_idx, range_blob, location, before_time) VALUES (?, ?, ?, ?, ?)",
        (record.size, record.first, record.range_blob, record.location, record.before),
    )


def delete_chunk(execute: Execute, below: int) -> bool:
    """Delete up to DROP_CHUNK of the lowest rows under index ``below``; False once there are none."""
    low = execute("SELECT MIN(idx) FROM entries", ())[0][0]
    if low is None or int(low) >= below:
        return False
    execute("DELETE FROM entries WHERE idx >= ? AND idx < ?", (int(low), min(int(low) + DROP_CHUNK, below)))
    return True
