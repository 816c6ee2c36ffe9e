"""The background scan's CPU rate limit: the pauses it computes, never wall time."""

from __future__ import annotations

import pytest

from webhook.cpulimit import CpuLimiter


def test_work_at_a_quarter_of_a_core_is_followed_by_three_times_as_much_pause() -> None:
    pauses: list[float] = []
    limiter = CpuLimiter(0.25, sleep=pauses.append)
    assert limiter.charge(0.030) == pytest.approx(0.090)
    assert pauses == pytest.approx([0.090]) and limiter.paused == pytest.approx(0.090)


def test_small_debts_are_carried_until_they_make_one_pause() -> None:
    pauses: list[float] = []
    limiter = CpuLimiter(0.5, min_pause=0.01, sleep=pauses.append)
    assert [limiter.charge(0.004) for _ in range(3)] == [0.0, 0.0, pytest.approx(0.012)]
    assert pauses == pytest.approx([0.012])


def test_a_whole_core_never_pauses() -> None:
    pauses: list[float] = []
    limiter = CpuLimiter(1.0, sleep=pauses.append)
    limiter.charge(5.0)
    assert pauses == []


def test_the_measured_block_is_charged_its_thread_cpu_time() -> None:
    ticks = iter([1.0, 1.2])
    pauses: list[float] = []
    limiter = CpuLimiter(0.1, sleep=pauses.append, cpu_clock=lambda: next(ticks))
    with limiter.measured():
        pass
    assert pauses == pytest.approx([1.8])  # 0.2 s of work at 10 %


@pytest.mark.parametrize("share", [0.0, -0.5, 1.5])
def test_a_share_outside_zero_to_one_is_refused(share: float) -> None:
    with pytest.raises(ValueError, match="CPU share"):
        CpuLimiter(share)
