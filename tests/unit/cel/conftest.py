"""Fixtures shared by the CEL tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from policyengine.cel import budget


@pytest.fixture
def ticking_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The meter's clock, advanced 1 ms each time it is read; yields the count of readings."""
    readings = [0]

    def tick() -> float:
        readings[0] += 1
        return readings[0] / 1000

    monkeypatch.setattr(budget, "clock", tick)
    yield readings
