"""Lease-based leader election against the fake API server's coordination.k8s.io Leases."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.unit.webhook.fake_apiserver import FakeAPIServer
from webhook.cluster import api_client_from_config
from webhook.leader import LEASE_NAME, KubernetesLeaseAPI, LeaderElector

NS = "policyengine"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fake() -> Iterator[FakeAPIServer]:
    server = FakeAPIServer()
    server.start()
    yield server
    server.stop()


def _elector(
    fake: FakeAPIServer, identity: str, clock: Callable[[], float] = time.monotonic, **kw: Any
) -> LeaderElector:
    api = KubernetesLeaseAPI(api_client_from_config(host=f"http://127.0.0.1:{fake.port}"), NS)
    return LeaderElector(api, identity, clock=clock, **kw)


def _wait(predicate: Callable[[], bool], what: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, f"hang guard: {what} did not happen within {seconds}s"
        time.sleep(0.05)


def test_one_leads_and_the_other_takes_over_once_the_first_stops_renewing(fake: FakeAPIServer) -> None:
    clock = Clock()
    a, b = _elector(fake, "a", clock), _elector(fake, "b", clock)
    assert a.step() is True  # no Lease: a creates it
    assert b.step() is False  # a holds it and it is fresh
    assert fake.leases.holder(NS, LEASE_NAME) == "a"
    clock.now += 5
    assert a.step() is True and b.step() is False  # a renews: b sees the Lease change
    clock.now += 14  # a has stopped stepping; b has seen no change for 14s < 15s
    assert b.step() is False
    assert a.is_leader is False  # a's own renew deadline (10s) has passed: it no longer acts as leader
    clock.now += 2  # 16s without a change: expired
    assert b.step() is True
    lease = fake.leases.objects[(NS, LEASE_NAME)]
    assert lease["spec"]["holderIdentity"] == "b" and lease["spec"]["leaseTransitions"] == 1
    assert a.step() is False  # a comes back: b holds a fresh Lease


def test_a_released_lease_is_taken_over_at_the_next_step(fake: FakeAPIServer) -> None:
    clock = Clock()
    a, b = _elector(fake, "a", clock), _elector(fake, "b", clock)
    assert a.step() and not b.step()
    a.release()
    assert a.is_leader is False and fake.leases.holder(NS, LEASE_NAME) == ""
    assert b.step() is True  # no waiting for expiry


def test_of_two_replicas_racing_for_a_lease_the_conflicting_write_loses(fake: FakeAPIServer) -> None:
    clock = Clock()
    a, b = _elector(fake, "a", clock), _elector(fake, "b", clock)
    assert a.step()
    assert not b.step()
    clock.now += 20  # a stopped: b may take over, but c writes the Lease between b's read and b's write
    fake.leases.race_update = lambda lease: {**lease, "spec": {**lease["spec"], "holderIdentity": "c"}}
    assert b.step() is False
    assert fake.leases.conflicts_sent == 1 and fake.leases.holder(NS, LEASE_NAME) == "c"


def test_a_create_race_is_lost_by_the_second_creator(fake: FakeAPIServer) -> None:
    a = _elector(fake, "a", Clock())
    b = _elector(fake, "b", Clock())
    real_get = b.api.get
    b.api.get = lambda: None  # type: ignore[method-assign]  # b read before a created the Lease
    assert a.step() is True
    assert b.step() is False  # its create is answered 409 AlreadyExists
    b.api.get = real_get  # type: ignore[method-assign]
    assert fake.leases.holder(NS, LEASE_NAME) == "a"


def test_electors_threads_hand_over_when_the_leader_shuts_down(fake: FakeAPIServer) -> None:
    changes: list[tuple[str, bool]] = []
    a = _elector(fake, "a", retry_period=0.05, on_change=lambda v: changes.append(("a", v)))
    a.start()
    _wait(lambda: a.is_leader, "a leading")
    b = _elector(fake, "b", retry_period=0.05, on_change=lambda v: changes.append(("b", v)))
    b.start()
    try:
        a.stop()  # releases the Lease on shutdown
        _wait(lambda: b.is_leader, "b taking over")
        assert fake.leases.holder(NS, LEASE_NAME) == "b"
        assert ("a", True) in changes and ("a", False) in changes and ("b", True) in changes
    finally:
        b.stop()


def test_a_replica_that_dies_is_replaced_once_its_lease_expires(fake: FakeAPIServer) -> None:
    a = _elector(fake, "a", lease_seconds=1, renew_deadline=0.5, retry_period=0.05)
    b = _elector(fake, "b", lease_seconds=1, renew_deadline=0.5, retry_period=0.05)
    a.start()
    _wait(lambda: a.is_leader, "a leading")
    b.start()
    try:
        a.stop(release=False)  # no release: the Lease must expire first
        _wait(lambda: b.is_leader, "b taking over an expired Lease")
        assert a.is_leader is False and fake.leases.holder(NS, LEASE_NAME) == "b"
    finally:
        b.stop()


def test_renew_deadline_must_be_shorter_than_the_lease(fake: FakeAPIServer) -> None:
    with pytest.raises(ValueError, match="renew_deadline"):
        _elector(fake, "a", lease_seconds=5, renew_deadline=5)
