"""The meter that bounds one evaluation: abstract cost and a wall-clock deadline.

A meter lives in a context variable for the duration of one top-level evaluation, so library functions
that allocate in proportion to their input (``lists.range``, ``replace``, ``join``) can charge before
they build, and lazy variables evaluated on demand share the budget of the expression that used them.
Nothing here is shared between evaluations: each has its own Meter.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token

from policyengine.cel import Budget

# How many units of cost one element (character, byte, list item) of a built value costs.
ELEMENT_COST_DIVISOR = 16
# Check the clock every this many cost units (time.monotonic is cheap but not free).
_CLOCK_EVERY = 256


class BudgetExceeded(Exception):
    """The evaluation ran over its cost or time budget."""


class Meter:
    """Cost spent and time left in one evaluation."""

    __slots__ = ("checkpoint", "cost", "deadline", "max_cost")

    def __init__(self, budget: Budget) -> None:
        self.cost = 0
        self.max_cost = budget.max_cost
        self.deadline = time.monotonic() + budget.max_seconds
        # The next cost at which charge() has work to do (check the clock, or fail). Hot loops may add
        # to ``cost`` inline and call charge(0) only once ``cost >= checkpoint``.
        self.checkpoint = _CLOCK_EVERY if budget.max_cost >= _CLOCK_EVERY else budget.max_cost + 1

    def charge(self, units: int = 1) -> None:
        self.cost += units
        if self.cost >= self.checkpoint:
            if self.cost > self.max_cost:
                raise BudgetExceeded(f"cost budget of {self.max_cost} exceeded")
            self.checkpoint = min(self.cost + _CLOCK_EVERY, self.max_cost + 1)
            self.check_clock()

    def check_clock(self) -> None:
        if time.monotonic() > self.deadline:
            raise BudgetExceeded("time budget exceeded")


_CURRENT: ContextVar[Meter | None] = ContextVar("policyengine_cel_meter", default=None)


def current() -> Meter | None:
    return _CURRENT.get()


@contextmanager
def metered(budget: Budget) -> Iterator[Meter]:
    """The meter of the evaluation in progress, or a new one for a top-level evaluation."""
    meter = _CURRENT.get()
    if meter is not None:
        yield meter
        return
    meter = Meter(budget)
    token = _CURRENT.set(meter)
    try:
        yield meter
    finally:
        _CURRENT.reset(token)


def enter(meter: Meter) -> Token[Meter | None]:
    """Make ``meter`` the current one (for library calls made by a backend that keeps its own meter)."""
    return _CURRENT.set(meter)


def leave(token: Token[Meter | None]) -> None:
    _CURRENT.reset(token)


def charge_elements(count: int) -> None:
    """Charge for building a value of ``count`` elements (call before building it)."""
    meter = _CURRENT.get()
    if meter is not None:
        meter.charge(1 + count // ELEMENT_COST_DIVISOR)
