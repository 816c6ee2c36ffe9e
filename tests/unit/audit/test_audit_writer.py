"""Group commit: batching by size and time, errors reach every caller, close drains the queue."""

from __future__ import annotations

import threading
import time

import pytest

from audit.errors import LogClosed
from audit.writer import GroupCommit


def test_waiting_items_are_written_in_one_batch() -> None:
    gate = threading.Event()
    batches: list[list[int]] = []

    def commit(items: list[int]) -> list[int]:
        gate.wait(5)
        batches.append(items)
        return [i * 10 for i in items]

    writer: GroupCommit[int, int] = GroupCommit(commit, max_batch=50, max_delay=0.0)
    first = writer.submit(0)
    time.sleep(0.05)  # the writer now holds item 0 and waits at the gate
    rest = [writer.submit(i) for i in range(1, 120)]
    gate.set()
    assert [f.result(5) for f in [first, *rest]] == [i * 10 for i in range(120)]
    writer.close()
    assert batches[0] == [0]
    assert [len(b) for b in batches[1:]] == [50, 50, 19]


def test_max_delay_gathers_items_that_arrive_soon_after() -> None:
    batches: list[list[int]] = []

    def commit(items: list[int]) -> list[int]:
        batches.append(items)
        return items

    writer: GroupCommit[int, int] = GroupCommit(commit, max_batch=100, max_delay=0.5)
    futures = [writer.submit(0)]
    time.sleep(0.05)
    futures.append(writer.submit(1))
    assert [f.result(5) for f in futures] == [0, 1]
    writer.close()
    assert batches == [[0, 1]]


def test_a_failed_commit_fails_every_caller_of_the_batch() -> None:
    def commit(items: list[int]) -> list[int]:
        raise OSError("disk full")

    writer: GroupCommit[int, int] = GroupCommit(commit)
    with pytest.raises(OSError, match="disk full"):
        writer.submit(1).result(5)
    writer.close()


def test_a_failure_after_a_batch_stops_later_writes() -> None:
    def after() -> None:
        raise RuntimeError("cannot sign")

    writer: GroupCommit[int, int] = GroupCommit(lambda items: items, after=after)
    assert writer.submit(1).result(5) == 1  # durable before the failure
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            writer.submit(2).result(5)
        except RuntimeError:
            break
    else:
        raise AssertionError("writes continued after the failure")
    writer.close()


def test_submit_after_close_is_refused() -> None:
    writer: GroupCommit[int, int] = GroupCommit(lambda items: items)
    writer.close()
    with pytest.raises(LogClosed):
        writer.submit(1)
