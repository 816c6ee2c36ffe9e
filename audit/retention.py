"""What the live log knows of its archived prefix: where the live entries start, and the clear error a
read of a dropped entry gets, naming the archive that holds it."""

from __future__ import annotations

from audit.errors import EntriesArchived
from audit.stores import Archived, Query, Store, TreeHead


def latest_archive(store: Store) -> Archived | None:
    """The last prefix dropped after archiving, or None while every entry is live."""
    archived = store.archived()
    return archived[-1] if archived else None


def live_base(store: Store) -> TreeHead:
    """The tree head the live entries extend: the archived prefix's, or the empty tree."""
    latest = latest_archive(store)
    return latest.head() if latest is not None else TreeHead.empty()


def archived_error(store: Store, index: int, what: str) -> EntriesArchived:
    """The error for reading ``what`` that needs entry ``index``, which was archived and dropped."""
    for record in store.archived():
        if index < record.size:
            return EntriesArchived(
                f"{what} needs entry {index}, archived to {record.location} (entries [{record.first}, "
                f"{record.size}), before {record.before}) and dropped from the live log: use that archive"
            )
    return EntriesArchived(f"{what} needs entry {index}, which is archived")


def check_query(store: Store, query: Query) -> None:
    """Refuse a query that could match dropped entries, rather than answer it with part of the log.

    Every archived entry is older than its archive's ``before`` and below its size, so a query asking
    only for later indexes, or only for times from ``before`` on, cannot match one."""
    archived = store.archived()
    if not archived or query.after >= archived[-1].size - 1:
        return
    before = max(record.before for record in archived)
    if query.since is not None and query.since >= before:
        return
    latest = archived[-1]
    raise EntriesArchived(
        f"entries [0, {latest.size}) are archived (the last of them to {latest.location}) and dropped "
        f"from the live log: query the archive, or ask only for entries after index {latest.size - 1} "
        f"or since {before}",
    )
