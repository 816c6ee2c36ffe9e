"""Fixtures shared by the integration tests."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest


@pytest.fixture
def hang_guard() -> Iterator[None]:
    """Fails the test, instead of hanging it, if waiting for a worker process ever waits for good (a
    worker's end not noticed). A hang guard of 60 s, not a measure of time."""

    def expired(*_: object) -> None:
        raise AssertionError("the test waited 60 s: a worker's end was not noticed")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(60)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
