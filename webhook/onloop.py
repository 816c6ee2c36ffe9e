"""Evaluating a small review on the event loop, within a slice of time, instead of in the thread pool.

Handing a review to a thread and its decision back costs more than evaluating a small one: the
hand-off wakes the loop through its self-pipe, and the evaluation thread and the loop then take turns
at the GIL, the loop waiting up to the interpreter's switch interval for each of its reads and writes.
So a review whose body is at most ``INLINE_BYTES`` is evaluated on the loop, policy by policy, while
``SLICE`` seconds have not passed; at the first policy that would start after them the attempt is
abandoned (nothing of it is kept) and the review is evaluated in the pool under its deadline, as a
large one is, where failurePolicy answers it if it runs over. On the loop each expression gets
``SLICE / MAX_EXPRESSIONS`` seconds (``loop_budget``): one that runs out abandons the attempt the same
way, instead of being an error result. Only policy sets whose every policy has at most
``MAX_EXPRESSIONS`` expressions are evaluated here at all (the bundled packs have at most 17), so the
loop is held for at most twice the slice: the slice, then the policy under way.

Reviews that may wait on I/O while being evaluated never run here: a scale request (its workload is
read through the API) and any request while GPU reservations are kept in a shared store (Kubernetes or
PostgreSQL); the in-process store answers from memory.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from policyengine.cel import Budget
from policyengine.charging import Ledger
from policyengine.model import Policy, Request
from policyengine.reservations import MemoryReservations
from policyengine.scale import is_scale

INLINE_BYTES = 64 * 1024  # bodies up to this size are first evaluated on the event loop
SLICE = 0.025  # seconds of the loop an evaluation may take before it is moved to the pool
MAX_EXPRESSIONS = 32  # per policy, for a policy set to be evaluated on the loop
# The clock the slice is read from. A module attribute so a test can end a slice where it chooses,
# instead of where the machine's speed happens to put it.
clock: Callable[[], float] = time.perf_counter


def light(policies: Iterable[Policy]) -> bool:
    """Whether every policy is small enough for the loop: at most ``MAX_EXPRESSIONS`` expressions."""
    return all(expressions(p) <= MAX_EXPRESSIONS for p in policies)


def expressions(policy: Policy) -> int:
    validations = sum(
        1 + (v.message_expression is not None) + (v.field_path_expression is not None)
        for v in policy.validations
    )
    named = len(policy.match_conditions) + len(policy.variables) + len(policy.audit_annotations)
    return validations + named


def loop_budget(budget: Budget) -> Budget:
    """The engine's ``budget`` for an expression on the loop: the same cost, a share of the slice, and
    the attempt abandoned (``OutOfSlice``) rather than decided when that share runs out."""
    return Budget(max_cost=budget.max_cost, max_seconds=SLICE / MAX_EXPRESSIONS, escape=OutOfSlice)


def may_wait(request: Request, ledger: Ledger | None) -> bool:
    """Whether evaluating ``request`` may wait on I/O (then it is never evaluated on the loop)."""
    if is_scale(request):
        return True
    if ledger is None:
        return False
    store = getattr(ledger.store, "store", ledger.store)  # the metered store's own
    return not (isinstance(store, MemoryReservations) or getattr(store, "blocking", True) is False)


class OutOfSlice(BaseException):
    """Ends an evaluation on the loop whose slice is spent. A BaseException, so that the engine's
    per-policy error handling (which turns an ``Exception`` into that policy's error result) lets it
    through and no decision is made of a half-run evaluation."""


class Timings:
    """The engine's ``observe`` hook: each policy's evaluation timed into ``spans`` (policy, start ns,
    end ns), for the per-policy histogram and spans. ``observe(policy)`` is entered for every policy
    of every request, one after another, so the hook is its own context manager (no object per policy)."""

    __slots__ = ("policy", "spans", "start")

    def __init__(self) -> None:
        self.spans: list[tuple[Policy, int, int]] = []
        self.policy: Policy | None = None
        self.start = 0

    def __call__(self, policy: Policy) -> Timings:
        self.policy = policy
        return self

    def __enter__(self) -> None:
        self.start = time.time_ns()

    def __exit__(self, *exc: object) -> None:
        assert self.policy is not None
        self.spans.append((self.policy, self.start, time.time_ns()))


class SlicedTimings(Timings):
    """The hook for an evaluation on the loop: times each policy, as the pool's does, and refuses to
    start one once ``slice`` seconds have passed since it was made."""

    __slots__ = ("ends",)

    def __init__(self, slice_seconds: float = SLICE) -> None:
        super().__init__()
        self.ends = clock() + slice_seconds

    def __call__(self, policy: Policy) -> Timings:
        if clock() > self.ends:
            raise OutOfSlice(policy.name)
        self.policy = policy
        return self
