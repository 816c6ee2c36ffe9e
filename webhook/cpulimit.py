"""A CPU rate limit for one background thread: at most a share of one core, the rest given back as pauses.

After ``cpu`` seconds of work at share ``s`` the thread owes ``cpu * (1 - s) / s`` seconds of pause (so that
work / (work + pause) = s). The debt is paid in pauses of at least ``min_pause``: fewer, longer sleeps, each
of which hands the interpreter lock and the core to admission. The pause is taken through ``sleep``, which
a stopping thread makes return at once (an Event's ``wait``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

DEFAULT_SHARE = 0.25  # of one core
MIN_PAUSE = 0.01  # seconds: debt below this is carried to the next charge


class CpuLimiter:
    """Keeps the calling thread's CPU use at ``share`` of one core (``charge`` after each piece of work)."""

    def __init__(
        self,
        share: float = DEFAULT_SHARE,
        *,
        min_pause: float = MIN_PAUSE,
        sleep: Callable[[float], object] = time.sleep,
        cpu_clock: Callable[[], float] = time.thread_time,
    ) -> None:
        if not 0 < share <= 1:
            raise ValueError(f"the CPU share must be in (0, 1], not {share!r}")
        self.share = share
        self.min_pause = min_pause
        self._sleep = sleep
        self._cpu_clock = cpu_clock
        self._debt = 0.0
        self.paused = 0.0  # seconds of pause taken since start (for the scan's log and the benchmark)

    def pause_for(self, cpu_seconds: float) -> float:
        """The pause that ``cpu_seconds`` of work adds to the debt (0 at a share of 1)."""
        return max(0.0, cpu_seconds) * (1 - self.share) / self.share

    def charge(self, cpu_seconds: float) -> float:
        """Add the work's pause to the debt; sleep it off once it reaches ``min_pause``. Returns the
        pause taken now (0 when the debt is carried)."""
        self._debt += self.pause_for(cpu_seconds)
        if self._debt < self.min_pause:
            return 0.0
        pause, self._debt = self._debt, 0.0
        self.paused += pause
        self._sleep(pause)
        return pause

    def mark(self) -> float:
        """The thread's CPU clock now: ``charge_since`` charges the work done after it."""
        return self._cpu_clock()

    def charge_since(self, mark: float) -> float:
        """Charge the CPU time used since ``mark`` (pausing if due); returns the next mark."""
        self.charge(self._cpu_clock() - mark)
        return self._cpu_clock()

    @contextmanager
    def measured(self) -> Iterator[None]:
        """Charge the CPU time the block's thread used."""
        started = self._cpu_clock()
        try:
            yield
        finally:
            self.charge(self._cpu_clock() - started)
