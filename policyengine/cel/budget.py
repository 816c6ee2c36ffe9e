"""The meter that bounds one evaluation: abstract cost and a wall-clock deadline.

A meter lives in a context variable for the duration of one top-level evaluation, so library functions
that allocate in proportion to their input (``lists.range``, ``replace``, ``join``, ``+`` on strings and
lists) can charge before they build, and lazy variables evaluated on demand share the budget of the expression that used them.
Nothing here is shared between evaluations: each has its own Meter.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import Any

from policyengine.cel.port import Budget

# How many units of cost one element (character, byte, list item) of a built value costs.
ELEMENT_COST_DIVISOR = 16
# Check the clock every this many cost units (time.monotonic is cheap but not free).
_CLOCK_EVERY = 256


class BudgetExceeded(Exception):
    """The evaluation ran over its cost or time budget; ``cost`` is what it had been charged by then."""

    def __init__(self, message: str, cost: int) -> None:
        super().__init__(message)
        self.cost = cost


# The clock deadlines are read from. A module attribute so a test can run the time budget on a clock it
# controls, instead of on how fast the machine happens to be.
clock: Callable[[], float] = time.monotonic


class Meter:
    """Cost spent and time left in one evaluation."""

    __slots__ = ("budget", "checkpoint", "clock", "cost", "deadline", "escape", "max_cost", "opening")

    def __init__(self, budget: Budget) -> None:
        self.arm(budget)

    def arm(self, budget: Budget) -> Meter:
        """Start an evaluation under ``budget`` on this meter: nothing of an earlier one carries over (cost
        back to zero, the deadline counted from now, the budget's limits and escape). A backend may keep
        meters between evaluations and re-arm one per evaluation instead of making one."""
        now = clock  # locals, not repeated attribute reads: this runs once per evaluation
        max_cost = budget.max_cost
        self.budget = budget  # with ``clock``: what a re-arm under the same budget may keep (``rearm``)
        self.cost = 0
        self.max_cost = max_cost
        self.clock = now
        self.deadline = now() + budget.max_seconds
        self.escape = budget.escape
        # The next cost at which charge() has work to do (check the clock, or fail). Hot loops may add
        # to ``cost`` inline and call charge(0) only once ``cost >= checkpoint``.
        self.opening = self.checkpoint = _CLOCK_EVERY if max_cost >= _CLOCK_EVERY else max_cost + 1
        return self

    def rearm(self, budget: Budget) -> Meter:
        """``arm``, keeping what the last evaluation's budget already set when it is the same (frozen)
        budget on the same clock. Backends inline this test (``budget is meter.budget and clock is
        meter.clock``) and its three assignments; it is here as their definition."""
        now = clock
        if budget is not self.budget or now is not self.clock:
            return self.arm(budget)
        self.cost = 0
        self.checkpoint = self.opening
        self.deadline = now() + budget.max_seconds
        return self

    def charge(self, units: int = 1) -> None:
        self.cost += units
        if self.cost >= self.checkpoint:
            if self.cost > self.max_cost:
                raise BudgetExceeded(f"cost budget of {self.max_cost} exceeded", self.cost)
            self.checkpoint = min(self.cost + _CLOCK_EVERY, self.max_cost + 1)
            self.check_clock()

    def check_clock(self) -> None:
        if self.clock() > self.deadline:
            if self.escape is not None:
                raise self.escape("time budget exceeded")
            raise BudgetExceeded("time budget exceeded", self.cost)


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


_SIZED = (str, bytes, list, tuple)
_SIZED_ARGS = (str, bytes, list, tuple, dict)
_END: Any = object()


def concat_cost(left: Any, right: Any) -> int:
    """What building ``left + right`` costs when both are strings, bytes or lists (0 otherwise). Both
    backends charge it before concatenating, so a concatenation over budget never allocates: without
    it, ``lists.range(100000).map(i, s + s)`` or variables that each double the previous one build
    gigabytes inside a budget meant for a few milliseconds."""
    if isinstance(left, _SIZED) and isinstance(right, _SIZED):
        return (len(left) + len(right)) // ELEMENT_COST_DIVISOR
    return 0


def sized_cost(value: Any, limit: int) -> int:
    """The cost of copying ``value`` (its list/map elements and string characters, nested), counted
    without allocating and no further than ``limit`` units: the price of converting a value between
    backends, charged before the copy is made."""
    total, most = 0, limit * ELEMENT_COST_DIVISOR
    stack: list[Iterator[Any]] = [iter((value,))]
    while stack and total <= most:
        item = next(stack[-1], _END)
        if item is _END:
            stack.pop()
        elif isinstance(item, str | bytes):
            total += len(item)
        elif isinstance(item, list | tuple):
            total += len(item)
            stack.append(iter(item))
        elif isinstance(item, dict):
            total += len(item)
            stack.extend((iter(item.keys()), iter(item.values())))
    return total // ELEMENT_COST_DIVISOR


def argument_cost(args: tuple[Any, ...]) -> int:
    """What a library call costs before it runs, from the sizes of its string, bytes, list and map
    arguments (not nested: Kubernetes' cost model charges a string or list function by its receiver's
    size). It pays for a result up to that size -- a case change, a trim, a slice, a parse -- so such
    a call repeated in a comprehension cannot pile up copies the budget never saw; a function building
    more than its arguments (join, replace, format, json.marshal...) charges the rest itself."""
    total = 0
    for arg in args:
        if isinstance(arg, _SIZED_ARGS):
            total += len(arg)
    return total // ELEMENT_COST_DIVISOR


def charge(units: int) -> None:
    """Charge ``units`` to the evaluation in progress (call before building what they pay for)."""
    meter = _CURRENT.get()
    if meter is not None and units:
        meter.charge(units)


def charge_sized(value: Any) -> None:
    """Charge building a value the size of ``value`` nested (a rendering or serialisation of it), counted
    without copying and no further than what is left of the budget."""
    meter = _CURRENT.get()
    if meter is not None:
        meter.charge(sized_cost(value, meter.max_cost - meter.cost + 1))


def charge_elements(count: int) -> None:
    """Charge for building a value of ``count`` elements (call before building it)."""
    meter = _CURRENT.get()
    if meter is not None:
        meter.charge(1 + count // ELEMENT_COST_DIVISOR)
