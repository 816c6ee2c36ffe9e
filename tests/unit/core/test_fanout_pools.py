"""What ``check --jobs`` keeps of each decision's pools: one set for every decision that met the same
pools (written once to a spool file, read back once), within a bound whatever the pools are called."""

from __future__ import annotations

from policyengine import fanout


def test_decisions_that_met_the_same_pools_share_one_set() -> None:
    pooled: dict[frozenset[str], frozenset[str]] = {}
    first, again = fanout._pools({"a100", "h100"}, pooled), fanout._pools({"h100", "a100"}, pooled)
    assert first == {"a100", "h100"} and again is first
    assert fanout._pools(set(), pooled) is fanout._pools(set(), {}) == frozenset()


def test_a_stream_of_distinct_pools_does_not_grow_what_is_shared() -> None:
    """Hostile: every request names a pool of its own."""
    pooled: dict[frozenset[str], frozenset[str]] = {}
    for i in range(3 * fanout._POOLED):
        assert fanout._pools({f"pool-{i}", "x" * 1000}, pooled) == {f"pool-{i}", "x" * 1000}
        assert len(pooled) <= fanout._POOLED
