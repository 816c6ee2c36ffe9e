"""GPU reservations at admission: what the quota rule sees, what is reserved and when it ends
(policyengine.charging over policyengine.reservations), on the gpu-quotas pack, with an injected clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from policyengine import Engine
from policyengine.charging import Ledger, pod_identities
from policyengine.codec import request_from_manifest
from policyengine.inventory import from_documents
from policyengine.model import Decision, Inventory, Request
from policyengine.policyset import bundled_policies_dir, load_policy_set
from policyengine.reservations import MAX_PER_POOL, MemoryReservations, PoolFull, Reservation, StoreError

NOW = datetime(2026, 1, 1, tzinfo=UTC)
CONFIG = """
apiVersion: policyengine.io/v1
kind: GovernanceConfig
metadata: {name: c}
spec:
  gpu:
    COUNT_SUSPENDED
    teams:
      ml: {quota: QUOTA}
"""
NAMESPACE = {
    "apiVersion": "v1",
    "kind": "Namespace",
    "metadata": {"name": "train", "labels": {"policyengine.io/team": "ml"}},
}
EMPTY = from_documents([NAMESPACE])


def job(name: str, pods: int, gpus: int = 8, **spec: Any) -> dict[str, Any]:
    container = {"name": "c", "image": "x", "resources": {"limits": {"nvidia.com/gpu": gpus}}}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": "train", "uid": f"uid-{name}"},
        "spec": {
            "parallelism": pods,
            "completions": pods,
            **spec,
            "template": {"spec": {"restartPolicy": "Never", "containers": [container]}},
        },
    }


def pod(
    name: str, job_name: str, gpus: int = 8, created: datetime = NOW + timedelta(seconds=10)
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "train",
            "labels": {"batch.kubernetes.io/job-name": job_name},
            "creationTimestamp": created.isoformat().replace("+00:00", "Z"),
        },
        "spec": {
            "containers": [{"name": "c", "image": "x", "resources": {"limits": {"nvidia.com/gpu": gpus}}}]
        },
        "status": {"phase": "Running"},
    }


def create(obj: dict[str, Any]) -> Request:
    return request_from_manifest(obj, operation="CREATE", uid="u-" + obj["metadata"]["name"])


def make_engine(
    tmp_path_factory: pytest.TempPathFactory, count_suspended: str = "", quota: int = 32
) -> Engine:
    config = tmp_path_factory.mktemp("resv") / "config.yaml"
    config.write_text(CONFIG.replace("COUNT_SUSPENDED", count_suspended).replace("QUOTA", str(quota)))
    policies = [str(bundled_policies_dir() / "gpu-quotas")]
    return Engine(load_policy_set(policies, config_paths=[str(config)], include_bundled=False))


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    return make_engine(tmp_path_factory)


def admit(
    engine: Engine, ledger: Ledger, request: Request, inventory: Inventory = EMPTY, now: datetime = NOW
) -> Decision:
    return engine.evaluate(request, inventory=inventory, now=now, ledger=ledger)


def quota(decision: Decision) -> tuple[str, str]:
    results = [r for r in decision.results if r.policy == "gpu-team-quota"]
    bad = [r for r in results if r.outcome.value != "pass"]
    return (bad[0].outcome.value, bad[0].message) if bad else ("pass", "")


def held(store: MemoryReservations, now: datetime = NOW) -> dict[str, int]:
    return {r.key: r.gpus for r in store.held("ml", now)}


def test_reservations_add_to_the_usage_the_quota_rule_sees(engine: Engine) -> None:
    store = MemoryReservations()
    ledger = Ledger(store)
    assert admit(engine, ledger, create(job("a", 3))).allowed
    assert held(store) == {"train/batch/Job/a": 24}
    decision = admit(engine, ledger, create(job("b", 2)))
    assert not decision.allowed
    assert quota(decision) == (
        "fail",
        "team ml uses 24 GPUs and Job b adds 16: 40 is over the quota of 32 "
        "(reservations counted: 24 reserved by train/batch/Job/a (24))",
    )
    assert held(store) == {"train/batch/Job/a": 24}  # a denied request reserves nothing


class RacingStore(MemoryReservations):
    """Lets another admission in between a request's view and its reservation (two replicas)."""

    def __init__(self) -> None:
        super().__init__()
        self.between: Callable[[], None] | None = None

    def held(self, pool: str, now: datetime) -> list[Reservation]:
        seen = super().held(pool, now)
        if self.between is not None:
            step, self.between = self.between, None
            step()
        return seen


def test_a_concurrent_admission_that_took_the_last_gpus_first_makes_the_other_a_denial(
    engine: Engine,
) -> None:
    store = RacingStore()
    first, second = Ledger(store), Ledger(store)  # two replicas sharing one store
    outcomes: list[bool] = []
    store.between = lambda: outcomes.append(admit(engine, second, create(job("b", 3))).allowed)
    decision = admit(engine, first, create(job("a", 2)))  # saw 0 in use: its rule passed
    assert outcomes == [True]
    assert not decision.allowed
    outcome, message = quota(decision)
    assert outcome == "fail"
    assert message == (
        "pool ml: 24 GPUs in use or reserved (0 by running pods, 24 reserved by train/batch/Job/b (24)) "
        "+ 16 this workload adds = 40 > quota 32; another admission took them first"
    )
    assert held(store) == {"train/batch/Job/b": 24}


def test_a_dry_run_is_never_reserved(engine: Engine) -> None:
    store = MemoryReservations()
    assert admit(engine, Ledger(store), replace(create(job("a", 4)), dry_run=True)).allowed
    assert held(store) == {}


def test_an_update_reserves_only_its_growth_on_top_of_what_is_still_pending(engine: Engine) -> None:
    store = MemoryReservations()
    ledger = Ledger(store)
    assert admit(engine, ledger, create(job("a", 1))).allowed
    grown = replace(request_from_manifest(job("a", 3), operation="UPDATE"), old_object=job("a", 1))
    assert admit(engine, ledger, grown).allowed
    assert held(store) == {"train/batch/Job/a": 24}
    # Once a's pods run, growing it again reserves the growth alone.
    running = from_documents([NAMESPACE, *(pod(f"a-{i}", "a") for i in range(3))])
    store2 = MemoryReservations()
    again = replace(request_from_manifest(job("a", 4), operation="UPDATE"), old_object=job("a", 3))
    assert admit(engine, Ledger(store2), again, running).allowed
    assert held(store2) == {"train/batch/Job/a": 8}


def test_delete_releases_the_workloads_reservation(engine: Engine) -> None:
    store = MemoryReservations()
    ledger = Ledger(store)
    assert admit(engine, ledger, create(job("a", 3))).allowed
    gone = replace(
        request_from_manifest(job("a", 3), operation="DELETE"), object=None, old_object=job("a", 3)
    )
    assert admit(engine, ledger, replace(gone, dry_run=True)).allowed
    assert held(store) == {"train/batch/Job/a": 24}  # a dry-run delete releases nothing
    assert admit(engine, ledger, gone).allowed
    assert held(store) == {}


def test_pods_take_over_the_reservation_so_no_gpu_is_counted_twice(engine: Engine) -> None:
    store = MemoryReservations()
    ledger = Ledger(store)
    assert admit(engine, ledger, create(job("a", 3))).allowed
    # Two of a's three pods are observed: 16 run, 8 remain reserved; b (8) fits in 32 exactly.
    two = from_documents([NAMESPACE, pod("a-0", "a"), pod("a-1", "a")])
    assert admit(engine, ledger, create(job("b", 1)), two).allowed
    # All three: a's reservation is spent; c (8) still fits beside a (24, running) -- not 48.
    three = from_documents([NAMESPACE, *(pod(f"a-{i}", "a") for i in range(3))])
    store3 = MemoryReservations()
    ledger3 = Ledger(store3)
    assert admit(engine, ledger3, create(job("a", 3))).allowed
    assert admit(engine, ledger3, create(job("c", 1)), three).allowed
    # Pods created before the reservation belong to an earlier workload of the same name: no hand-over.
    old = from_documents(
        [NAMESPACE, *(pod(f"a-{i}", "a", created=NOW - timedelta(hours=1)) for i in range(3))]
    )
    assert not admit(engine, ledger3, create(job("d", 1)), old).allowed


def test_pod_identities_name_the_workload_from_the_pod_alone() -> None:
    from_rs = {
        "metadata": {
            "namespace": "train",
            "labels": {"pod-template-hash": "7d4b9c"},
            "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "serve-7d4b9c", "uid": "rs1"}
            ],
        }
    }
    assert {"train/apps/Deployment/serve", "train/apps/ReplicaSet/serve-7d4b9c", "uid:rs1"} <= pod_identities(
        from_rs
    )
    hostile = {"metadata": {"namespace": "t", "ownerReferences": [{"uid": str(i)} for i in range(10_000)]}}
    assert len(pod_identities(hostile)) <= 16 * 2 + 1  # bounded: MAX_OWNERS references are read


def test_a_reservation_whose_workload_never_appears_expires_after_the_ttl(engine: Engine) -> None:
    store = MemoryReservations()
    ledger = Ledger(store, ttl=timedelta(minutes=2))
    assert admit(engine, ledger, create(job("a", 3))).allowed
    assert not admit(engine, ledger, create(job("b", 2)), now=NOW + timedelta(minutes=1)).allowed
    later = NOW + timedelta(minutes=2, seconds=1)
    assert held(store, later) == {}
    assert admit(engine, ledger, create(job("b", 2)), now=later).allowed


class BrokenStore(MemoryReservations):
    def __init__(self, broken: str) -> None:
        super().__init__()
        self.broken = broken

    def held(self, pool: str, now: datetime) -> list[Reservation]:
        if self.broken == "held":
            raise StoreError("the API server answered 503")
        return super().held(pool, now)

    def reserve(self, reservation: Reservation, limit: int, observed: int, now: datetime) -> bool:
        raise StoreError("conflicts: 5 retries spent")


@pytest.mark.parametrize("broken", ["held", "reserve"])
def test_a_store_that_cannot_decide_is_an_error_never_an_unreserved_allow(
    engine: Engine, broken: str
) -> None:
    decision = admit(engine, Ledger(BrokenStore(broken)), create(job("a", 1)))
    assert not decision.allowed
    (result,) = [r for r in decision.results if r.policy == "gpu-team-quota" and r.outcome.value == "error"]
    assert result.code == "reservation_unavailable"
    assert "the GPU reservation store cannot decide" in result.message


def test_suspended_workloads_hold_their_reservation_unless_count_suspended_is_false(
    engine: Engine, tmp_path_factory: pytest.TempPathFactory
) -> None:
    store = MemoryReservations()
    assert admit(engine, Ledger(store), create(job("a", 3, suspend=True))).allowed
    assert held(store) == {"train/batch/Job/a": 24}
    assert not admit(engine, Ledger(store), create(job("b", 2, suspend=True))).allowed

    lenient = make_engine(tmp_path_factory, "countSuspended: false")
    store = MemoryReservations()
    ledger = Ledger(store)
    assert admit(lenient, ledger, create(job("a", 5, suspend=True))).allowed  # 40 > 32, but charged 0
    assert held(store) == {}
    unsuspend = replace(
        request_from_manifest(job("a", 5), operation="UPDATE"), old_object=job("a", 5, suspend=True)
    )
    outcome, message = quota(admit(lenient, ledger, unsuspend))
    assert outcome == "fail" and "adds 40" in message


def test_a_flood_of_distinct_workloads_is_bounded_per_pool(tmp_path_factory: pytest.TempPathFactory) -> None:
    store = MemoryReservations()
    refused = 0
    for i in range(10_000):
        r = Reservation(key=f"train/batch/Job/j{i}", pool="ml", gpus=1, expires=NOW + timedelta(minutes=2))
        try:
            assert store.reserve(r, limit=10**9, observed=0, now=NOW)
        except PoolFull:
            refused += 1
    assert len(store.held("ml", NOW)) == MAX_PER_POOL
    assert refused == 10_000 - MAX_PER_POOL
    big = make_engine(tmp_path_factory, quota=10**9)  # the cap refuses, not the quota
    decision = admit(big, Ledger(store), create(job("one-more", 1)))
    assert not decision.allowed
    outcome, message = quota(decision)
    assert outcome == "fail"
    assert f"already holds {MAX_PER_POOL} reservations (at most {MAX_PER_POOL})" in message
