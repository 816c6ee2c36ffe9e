"""Where verification reads its entries from a store: in this process, or split over worker processes.

Each worker opens the log itself (its path or URL), checks a contiguous range of entries with
``audit.scan`` and returns one ``Scan`` per page; the caller replays them in index order. Workers are
spawned, not forked: the parent may hold threads and open connections that a fork would copy.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import closing

from audit.scan import Scan, as_row, scan_rows
from audit.stores import Store, open_store
from audit.stores.sql import PAGE

MIN_RANGE = 50_000  # entries below which a worker's start-up costs more than the work it takes
RANGES_PER_JOB = 4  # more ranges than workers, so that the replay can start on the first early


def store_scans(store: Store, begin: int, end: int, limit: int | None) -> Iterator[Scan]:
    """Entries [begin, end) of ``store`` (up to ``limit``) checked page by page in this process
    (``begin``: the first entry kept after an archived prefix)."""
    stop = end if limit is None else min(end, limit)
    for start in range(begin, stop, PAGE):
        yield _scan_page(store, start, min(start + PAGE, stop))


def parallel_scans(target: str, begin: int, end: int, jobs: int, limit: int | None) -> Iterator[Scan]:
    """The same runs as ``store_scans``, checked by ``jobs`` processes that each open ``target``."""
    ranges = split(begin, end if limit is None else min(end, limit), jobs)
    if len(ranges) < 2:
        with closing(open_store(target)) as store:
            yield from store_scans(store, begin, end, limit)
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(jobs, len(ranges)), mp_context=context) as pool:
        futures: list[Future[list[Scan]]] = [
            pool.submit(scan_range, target, low, high) for low, high in ranges
        ]
        try:
            for future in futures:
                yield from future.result()
        finally:
            for future in futures:
                future.cancel()  # the verdict is known: ranges not yet started are not checked


def split(begin: int, stop: int, jobs: int) -> list[tuple[int, int]]:
    """[begin, stop) as consecutive ranges for ``jobs`` workers, none narrower than MIN_RANGE but the last."""
    width = max(MIN_RANGE, -(-(stop - begin) // (jobs * RANGES_PER_JOB)))
    return [(low, min(low + width, stop)) for low in range(begin, stop, width)]


def scan_range(target: str, low: int, high: int) -> list[Scan]:
    """A worker's share: pages of [low, high), up to the first page that stops with a problem."""
    out: list[Scan] = []
    with closing(open_store(target)) as store:
        for start in range(low, high, PAGE):
            scan = _scan_page(store, start, min(start + PAGE, high))
            out.append(scan)
            if scan.stop is not None:
                break
    return out


def _scan_page(store: Store, start: int, end: int) -> Scan:
    raw = getattr(store, "raw_entries", None)
    rows = raw(start, end) if callable(raw) else [as_row(item) for item in store.entries(start, end)]
    return scan_rows(rows, start)
