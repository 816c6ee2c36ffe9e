"""The parent lookup of scale requests over the Kubernetes API (``webhook.parents.KubeParents``): one
GET by name, bounded in size, and every failure a ParentUnavailable that says why."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from policyengine.scale import ParentUnavailable
from tests.unit.webhook.fake_apiserver import FakeAPIServer
from webhook.cluster import api_client_from_config
from webhook.parents import KubeParents


@pytest.fixture
def fake() -> Iterator[FakeAPIServer]:
    server = FakeAPIServer()
    server.start()
    yield server
    server.stop()


def _lookup(url: str, max_bytes: int = 1 << 20) -> KubeParents:
    return KubeParents(api_client_from_config(host=url), timeout=30.0, max_bytes=max_bytes)


def _workload(api_version: str, kind: str, padding: int = 0) -> dict[str, Any]:
    meta = {"name": "w", "namespace": "ns", "annotations": {"pad": "x" * padding}}
    return {"apiVersion": api_version, "kind": kind, "metadata": meta, "spec": {"replicas": 2}}


def test_a_parent_is_read_by_group_version_resource_and_name(fake: FakeAPIServer) -> None:
    lookup = _lookup(f"http://127.0.0.1:{fake.port}")
    lws = _workload("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet")
    rc = _workload("v1", "ReplicationController")
    fake.put_workload("leaderworkersets", lws)
    fake.put_workload("replicationcontrollers", rc)
    assert lookup.get("leaderworkerset.x-k8s.io", "v1", "leaderworkersets", "ns", "w") == lws
    assert lookup.get("", "v1", "replicationcontrollers", "ns", "w") == rc
    assert fake.gets == [
        "/apis/leaderworkerset.x-k8s.io/v1/namespaces/ns/leaderworkersets/w",
        "/api/v1/namespaces/ns/replicationcontrollers/w",
    ]


def test_a_missing_parent_is_none(fake: FakeAPIServer) -> None:
    assert _lookup(f"http://127.0.0.1:{fake.port}").get("apps", "v1", "deployments", "ns", "w") is None


def test_a_parent_over_the_size_limit_is_refused(fake: FakeAPIServer) -> None:
    fake.put_workload("deployments", _workload("apps/v1", "Deployment", padding=10_000))
    lookup = _lookup(f"http://127.0.0.1:{fake.port}", max_bytes=4096)
    with pytest.raises(ParentUnavailable, match="larger than 4096 bytes"):
        lookup.get("apps", "v1", "deployments", "ns", "w")


def test_an_unreachable_api_server_says_so() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there
    with pytest.raises(ParentUnavailable, match="GET apps/v1 deployments ns/w: "):
        _lookup(f"http://127.0.0.1:{port}").get("apps", "v1", "deployments", "ns", "w")


@pytest.mark.parametrize(
    ("group", "version", "resource", "namespace", "name"),
    [
        ("", "v1", "pods", "ns", "w"),
        ("apps", "v1", "deployments", "", "w"),
        ("apps", "v1", "deployments", "ns", ""),
    ],
)
def test_what_is_not_a_namespaced_workload_is_not_asked_for(
    fake: FakeAPIServer, group: str, version: str, resource: str, namespace: str, name: str
) -> None:
    with pytest.raises(ParentUnavailable):
        _lookup(f"http://127.0.0.1:{fake.port}").get(group, version, resource, namespace, name)
    assert fake.gets == []
