"""The API-server reservation store against the fake API server: compare-and-swap on resourceVersion,
conflicts retried a bounded number of times, the AlreadyExists race, expiry, hostile pools and data."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from policyengine.reservations import MemoryReservations, PoolFull, Reservation, StoreError
from tests.unit.webhook.fake_apiserver import DNS1123_SUBDOMAIN, FakeAPIServer
from webhook.cluster import api_client_from_config, api_from_config
from webhook.reservations import KubeReservations, configmap_name, encode, open_store

NS = "policyengine"
NOW = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=2)


@pytest.fixture
def fake() -> Iterator[FakeAPIServer]:
    server = FakeAPIServer()
    server.start()
    yield server
    server.stop()


def store(fake: FakeAPIServer, **kwargs: Any) -> KubeReservations:
    client = api_client_from_config(host=f"http://127.0.0.1:{fake.port}")
    kwargs.setdefault("sleep", lambda _: None)
    return KubeReservations(client, namespace=NS, **kwargs)


def res(key: str, gpus: int = 8, pool: str = "vision", expires: datetime = LATER) -> Reservation:
    return Reservation(key=key, pool=pool, gpus=gpus, expires=expires, owner_uids=(f"uid-{key}",))


def stored(fake: FakeAPIServer, pool: str = "vision") -> list[dict[str, Any]]:
    obj = fake.configmaps[(NS, configmap_name(pool))]
    rows: list[dict[str, Any]] = json.loads(obj["data"]["reservations"])
    return rows


def test_reserve_up_to_the_limit_then_refuse_and_store_nothing(fake: FakeAPIServer) -> None:
    s = store(fake)
    assert s.reserve(res("ml/batch/Job/a"), limit=64, observed=48, now=NOW)
    assert s.reserve(res("ml/batch/Job/b"), limit=64, observed=48, now=NOW)
    assert not s.reserve(res("ml/batch/Job/c"), limit=64, observed=48, now=NOW)  # 48 + 16 + 8 > 64
    assert [r["key"] for r in stored(fake)] == ["ml/batch/Job/a", "ml/batch/Job/b"]
    assert stored(fake)[0] == {
        "key": "ml/batch/Job/a",
        "gpus": 8,
        "expires": LATER.isoformat(),
        "ownerUids": ["uid-ml/batch/Job/a"],
    }
    # The same key is replaced, not added: a workload's UPDATE reserves its new total, not twice.
    renewed = res("ml/batch/Job/a", expires=LATER + timedelta(minutes=1))
    assert s.reserve(renewed, limit=64, observed=48, now=NOW)
    assert s.held("vision", NOW) == [renewed, res("ml/batch/Job/b")]
    s.release("vision", "ml/batch/Job/a")
    assert [r.key for r in s.held("vision", NOW)] == ["ml/batch/Job/b"]
    s.release("vision", "ml/batch/Job/absent")  # nothing to release: no write
    writes = [r for r in fake.configmap_requests if not r.startswith("GET")]
    assert writes == [f"POST {configmap_name('vision')}"] + [f"PUT {configmap_name('vision')}"] * 3
    assert fake.configmaps[(NS, configmap_name("vision"))]["metadata"]["labels"]["app.kubernetes.io/name"]


def test_two_conflicts_are_reread_and_retried(fake: FakeAPIServer) -> None:
    s = store(fake)
    assert s.reserve(res("a"), limit=64, observed=0, now=NOW)  # creates the ConfigMap
    fake.conflicts = 2
    assert s.reserve(res("b"), limit=64, observed=0, now=NOW)
    assert fake.conflicts_sent == 2
    assert (s.conflicts, s.retry_count, s.errors) == (2, 2, 0)
    assert [r["key"] for r in stored(fake)] == ["a", "b"]
    # every retry read the object again before writing: GET, PUT (409) x 2, then GET, PUT
    name = configmap_name("vision")
    assert fake.configmap_requests[-6:] == [f"GET {name}", f"PUT {name}"] * 3


def test_a_conflict_is_rechecked_against_what_the_other_replica_wrote(fake: FakeAPIServer) -> None:
    mine, other = store(fake), store(fake)
    assert mine.reserve(res("a", gpus=48), limit=64, observed=0, now=NOW)
    real_read = mine._read

    def read_then_other_replica_writes(pool: str) -> Any:
        current = real_read(pool)
        if not fake.conflicts_sent:  # the other replica takes the last 16 between our read and write
            assert other.reserve(res("b", gpus=16), limit=64, observed=0, now=NOW)
        return current

    mine._read = read_then_other_replica_writes  # type: ignore[method-assign]
    assert not mine.reserve(res("c", gpus=8), limit=64, observed=0, now=NOW)
    assert fake.conflicts_sent == 1 and mine.conflicts == 1
    assert [r["key"] for r in stored(fake)] == ["a", "b"]


def test_conflicts_forever_are_a_store_error_after_the_bound(fake: FakeAPIServer) -> None:
    s = store(fake, retries=4)
    assert s.reserve(res("a"), limit=64, observed=0, now=NOW)
    fake.conflicts = 1000
    with pytest.raises(StoreError, match="4 retries spent"):
        s.reserve(res("b"), limit=64, observed=0, now=NOW)
    assert fake.conflicts_sent == 5  # the first write and four retries, then no more
    assert (s.conflicts, s.retry_count, s.errors) == (5, 4, 1)
    assert "retries spent" in s.status()["lastError"]
    assert [r["key"] for r in stored(fake)] == ["a"]


def test_backoff_is_jittered_and_capped(fake: FakeAPIServer) -> None:
    delays: list[float] = []
    client = api_client_from_config(host=f"http://127.0.0.1:{fake.port}")
    s = KubeReservations(client, namespace=NS, retries=8, backoff=(0.01, 0.04), sleep=delays.append)
    fake.conflicts = 1000
    s.reserve(res("a"), limit=64, observed=0, now=NOW)  # creates: a create is never a Conflict here
    with pytest.raises(StoreError):
        s.reserve(res("b"), limit=64, observed=0, now=NOW)
    assert len(delays) == 8
    ceilings = [min(0.04, 0.01 * 2**i) for i in range(8)]
    assert all(0 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert len(set(delays)) > 1  # drawn, not fixed: replicas that collided do not collide again


def test_already_exists_race_rereads_and_rechecks(fake: FakeAPIServer) -> None:
    name = configmap_name("vision")
    other = {
        "metadata": {"name": name},
        "data": {"pool": "vision", "reservations": encode({"x": res("x", 60)})},
    }
    fake.race_create = other
    s = store(fake)
    # Another replica created the pool's object with 60 GPUs between our GET (404) and POST.
    assert not s.reserve(res("a"), limit=64, observed=0, now=NOW)
    assert s.conflicts == 1 and [r["key"] for r in stored(fake)] == ["x"]
    fake.configmaps.clear()
    fake.race_create = {**other, "data": {"pool": "vision", "reservations": encode({"x": res("x", 8)})}}
    assert s.reserve(res("a"), limit=64, observed=0, now=NOW)
    assert [r["key"] for r in stored(fake)] == ["a", "x"]  # theirs kept, ours added by replace


def test_expired_entries_are_dropped(fake: FakeAPIServer) -> None:
    s = store(fake)
    assert s.reserve(res("old", gpus=56, expires=NOW + timedelta(seconds=30)), limit=64, observed=0, now=NOW)
    assert not s.reserve(res("new"), limit=64, observed=8, now=NOW)
    after = NOW + timedelta(seconds=31)
    assert s.held("vision", after) == []
    assert s.reserve(res("new"), limit=64, observed=8, now=after)
    assert [r["key"] for r in stored(fake)] == ["new"]  # the expired entry left with the write


def test_fifty_concurrent_reservers_get_exactly_the_limit(fake: FakeAPIServer) -> None:
    replicas = [store(fake, sleep=time.sleep) for _ in range(5)]
    start = threading.Barrier(50)

    def one(i: int) -> bool:
        start.wait(timeout=60)
        return replicas[i % 5].reserve(res(f"team/batch/Job/j{i}"), limit=64, observed=0, now=NOW)

    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(one, range(50)))
    assert sum(results) == 8
    assert len(stored(fake)) == 8 and sum(r["gpus"] for r in stored(fake)) == 64
    assert sum(r.errors for r in replicas) == 0


@pytest.mark.parametrize(
    "pool",
    [
        "vision",
        "Vision",
        "team/a",
        "a" * 300,
        "",
        "-",
        "..",
        "ünïcødé",
        "\x00\n\t",
        "x" * 38,
        "x" * 37,
    ],
)
def test_hostile_pool_names_map_to_valid_distinct_configmaps(fake: FakeAPIServer, pool: str) -> None:
    name = configmap_name(pool)
    assert len(name) <= 63 and DNS1123_SUBDOMAIN.match(name)
    s = store(fake)
    assert s.reserve(res("k", pool=pool), limit=8, observed=0, now=NOW)
    assert [r.key for r in s.held(pool, NOW)] == ["k"]
    assert fake.configmaps[(NS, name)]["data"]["pool"] == pool


def test_distinct_pools_never_share_an_object() -> None:
    pools = ["vision", "Vision", "vision.", "h-vision", "a" * 300, "a" * 301, "", "-", "x" * 37, "x" * 38]
    assert len({configmap_name(p) for p in pools}) == len(pools)


def test_an_object_of_another_pool_is_refused(fake: FakeAPIServer) -> None:
    fake.configmaps[(NS, configmap_name("vision"))] = {
        "metadata": {"name": configmap_name("vision"), "resourceVersion": "5"},
        "data": {"pool": "speech", "reservations": "[]"},
    }
    with pytest.raises(StoreError, match=r"data\.pool is not 'vision'"):
        store(fake).reserve(res("a"), limit=64, observed=0, now=NOW)


@pytest.mark.parametrize(
    ("reservations", "message"),
    [
        ("not json", "not a JSON list"),
        ('{"a": 1}', "not a JSON list"),
        ('[{"key": "a"}]', r"reservations\[0\]: needs key, gpus"),
        ('[{"key": "a", "gpus": -1, "expires": "2026-12-05T09:00:00+00:00"}]', r"\[0\]\.gpus"),
        ('[{"key": "a", "gpus": true, "expires": "2026-12-05T09:00:00+00:00"}]', r"\[0\]\.gpus"),
        ('[{"key": "a", "gpus": 1, "expires": "2026-12-05T09:00:00"}]', "carry a zone"),
        ('[{"key": "", "gpus": 1, "expires": "2026-12-05T09:00:00+00:00"}]', "key must be"),
        ('[{"key": "a", "gpus": 1, "expires": "2026-12-05T09:00:00Z", "ownerUids": [1]}]', "ownerUids"),
        (
            json.dumps([{"key": f"k{i}", "gpus": 0, "expires": "2026-12-05T09:00:00Z"} for i in range(11)]),
            "over 10",
        ),
    ],
)
def test_hostile_data_is_a_store_error_naming_the_field(
    fake: FakeAPIServer, reservations: str, message: str
) -> None:
    fake.configmaps[(NS, configmap_name("vision"))] = {
        "metadata": {"name": configmap_name("vision"), "resourceVersion": "5"},
        "data": {"pool": "vision", "reservations": reservations},
    }
    with pytest.raises(StoreError, match=message) as err:
        store(fake, max_entries=10).reserve(res("a"), limit=64, observed=0, now=NOW)
    assert f"ConfigMap {NS}/{configmap_name('vision')}" in str(err.value)


def test_the_entry_cap_refuses_the_workload_as_pool_full(fake: FakeAPIServer) -> None:
    s = store(fake, max_entries=3)
    for key in "abc":
        assert s.reserve(res(key, gpus=1), limit=64, observed=0, now=NOW)
    with pytest.raises(PoolFull, match="already holds 3 reservations"):
        s.reserve(res("d", gpus=1), limit=64, observed=0, now=NOW)
    assert s.reserve(res("a", gpus=2), limit=64, observed=0, now=NOW)  # replacing is not adding


def test_api_failures_are_store_errors(fake: FakeAPIServer) -> None:
    fake.configmap_failure = 500
    s = store(fake)
    with pytest.raises(StoreError, match="HTTP 500"):
        s.reserve(res("a"), limit=64, observed=0, now=NOW)
    with pytest.raises(StoreError, match="HTTP 500"):
        s.held("vision", NOW)
    unreachable = KubeReservations(api_client_from_config(host="http://127.0.0.1:9"), namespace=NS)
    with pytest.raises(StoreError, match="reservations in policyengine"):
        unreachable.reserve(res("a"), limit=64, observed=0, now=NOW)
    assert unreachable.status()["errors"] == 1


def test_open_store(fake: FakeAPIServer, monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(open_store("memory", None), MemoryReservations)
    monkeypatch.setenv("POD_NAMESPACE", "governance")
    kube = open_store("kube", api_from_config(host=f"http://127.0.0.1:{fake.port}"))
    assert isinstance(kube, KubeReservations) and kube.namespace == "governance"
    assert kube.reserve(res("a"), limit=8, observed=0, now=NOW)
    assert ("governance", configmap_name("vision")) in fake.configmaps
    with pytest.raises(ValueError, match="needs the Kubernetes API"):
        open_store("kube", None)
    for bad in ("", "etcd", "mysql://x", "Memory"):
        with pytest.raises(ValueError, match="expected memory, kube or a postgresql:// DSN"):
            open_store(bad, None)
    monkeypatch.delenv("POD_NAMESPACE")
    monkeypatch.setattr("webhook.reservations.SA_NAMESPACE", Path("/nonexistent/namespace"))
    with pytest.raises(ValueError, match="POD_NAMESPACE"):
        open_store("kube", api_from_config(host=f"http://127.0.0.1:{fake.port}"))


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ({"metadata": {}, "data": {"pool": "vision"}}, "no metadata.resourceVersion"),
        ({"metadata": {"resourceVersion": "5"}, "data": ["pool"]}, r"data\.pool is not"),
        (
            {"metadata": {"resourceVersion": "5"}, "data": {"pool": "v" * (2 << 20)}},
            "larger than a ConfigMap",
        ),
    ],
)
def test_hostile_objects_are_store_errors(fake: FakeAPIServer, obj: dict[str, Any], message: str) -> None:
    fake.configmaps[(NS, configmap_name("vision"))] = obj
    s = store(fake)
    with pytest.raises(StoreError, match=message):
        s.held("vision", NOW)
    assert s.status()["errors"] == 1
