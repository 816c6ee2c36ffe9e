"""serve --kube and ValidatingAdmissionPolicy params that live in the cluster: listed and watched as the
policy set's bindings say (paramKind, paramRef name/namespace/selector, parameterNotFoundAction), bounded."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.unit.webhook.builders import pod, review
from tests.unit.webhook.fake_apiserver import FakeAPIServer, kubeconfig
from webhook.app import create_app
from webhook.cluster import ClusterInventory, api_from_config
from webhook.paramrefs import param_kinds
from webhook.paramwatch import MAX_OBJECT_BYTES, ParamInventory, list_params
from webhook.server import services_from
from webhook.settings import Settings

POLICY = """
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: registry}
spec:
  failurePolicy: Fail
  paramKind: {apiVersion: v1, kind: ConfigMap}
  matchConstraints:
    resourceRules:
      - {apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [pods]}
  validations:
    - expression: "object.spec.containers.all(c, c.image.startsWith(params.data.registry))"
      messageExpression: "'images must come from ' + params.data.registry"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: registry}
spec:
  policyName: registry
  validationActions: [Deny]
  paramRef: {paramRef}
"""
BY_NAME = "{name: %s, namespace: policy-params, parameterNotFoundAction: %s}"
BY_SELECTOR = "{selector: {matchLabels: {policyengine.io/param: registry}}, parameterNotFoundAction: Deny}"


def _wait(predicate: Callable[[], bool], what: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, f"not reached in {seconds} s: {what}"
        time.sleep(0.05)


@pytest.fixture
def fake() -> Iterator[FakeAPIServer]:
    server = FakeAPIServer()
    server.start()
    server.put("namespaces", "apps")
    yield server
    server.stop()


def _write(directory: Path, param_ref: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "registry.yaml").write_text(POLICY.replace("{paramRef}", param_ref))


@pytest.fixture
def serve(tmp_path: Path, fake: FakeAPIServer) -> Iterator[Callable[[str], TestClient]]:
    """``serve --kube`` (in process) over the fake API server, with the registry policy bound as given."""
    clients: list[TestClient] = []

    def start(param_ref: str) -> TestClient:
        _write(tmp_path / "policies", param_ref)
        settings = Settings(
            policies=(str(tmp_path / "policies"),),
            include_bundled=False,
            kube=True,
            kubeconfig=str(kubeconfig(tmp_path / "kubeconfig", f"http://127.0.0.1:{fake.port}")),
            reservations="memory",
            reload_interval=0.05,
        )
        client = TestClient(create_app(services_from(settings, env={}, handle_sighup=False)))
        clients.append(client)
        client.__enter__()
        return client

    yield start
    for client in clients:
        client.__exit__(None, None, None)


def _allowed(client: TestClient, image: str) -> tuple[bool, str]:
    answer = client.post("/validate", json=review(pod(image=image)))
    assert answer.status_code == 200, f"the webhook did not decide: {answer.status_code} {answer.text}"
    response = answer.json()["response"]
    return bool(response["allowed"]), str((response.get("status") or {}).get("message", ""))


def _registry(
    fake: FakeAPIServer, name: str, registry: str, namespace: str = "policy-params", **meta: Any
) -> None:
    fake.put("configmaps", name, namespace, data={"registry": registry}, metadata=meta)


def test_a_param_that_lives_only_in_the_cluster_is_enforced(
    fake: FakeAPIServer, serve: Callable[[str], TestClient]
) -> None:
    _registry(fake, "registry", "registry.corp/")
    _registry(fake, "registry", "elsewhere.io/", namespace="apps")  # not the namespace the ref names
    client = serve(BY_NAME % ("registry", "Deny"))
    assert client.get("/readyz").json()["inventory"]["params"]["ConfigMap.v1"]["synced"] is True
    assert _allowed(client, "registry.corp/train:1") == (True, "")
    allowed, message = _allowed(client, "evil.io/miner:1")
    assert not allowed and "images must come from registry.corp/" in message


def test_a_missing_param_denies_or_allows_as_parameter_not_found_action_says(
    fake: FakeAPIServer, serve: Callable[[str], TestClient]
) -> None:
    _registry(fake, "registry", "registry.corp/")
    deny = serve(BY_NAME % ("registry", "Deny"))
    assert _allowed(deny, "registry.corp/train:1") == (True, "")
    fake.delete("configmaps", "registry", "policy-params")  # the watch brings the deletion
    _wait(lambda: not _allowed(deny, "registry.corp/train:1")[0], "the deleted param denies")
    assert (
        "no params found for policy binding with `Deny` parameterNotFoundAction"
        in _allowed(deny, "registry.corp/train:1")[1]
    )
    allow = serve(BY_NAME % ("registry", "Allow"))
    assert _allowed(allow, "evil.io/miner:1") == (True, "")  # no param: the binding is skipped
    _registry(fake, "registry", "registry.corp/")
    _wait(lambda: not _allowed(allow, "evil.io/miner:1")[0], "the param, once created, is enforced")


def test_a_changed_param_is_used_by_the_next_decision(
    fake: FakeAPIServer, serve: Callable[[str], TestClient]
) -> None:
    _registry(fake, "registry", "registry.corp/")
    client = serve(BY_NAME % ("registry", "Deny"))
    assert _allowed(client, "mirror.corp/train:1")[0] is False
    _registry(fake, "registry", "mirror.corp/")  # MODIFIED
    _wait(lambda: _allowed(client, "mirror.corp/train:1")[0], "the modified param allows")
    assert _allowed(client, "registry.corp/train:1")[0] is False


def test_a_selector_evaluates_the_policy_once_per_param_it_matches(
    fake: FakeAPIServer, serve: Callable[[str], TestClient]
) -> None:
    label = {"labels": {"policyengine.io/param": "registry"}}
    _registry(fake, "corp", "registry.corp/", namespace="apps", **label)
    _registry(fake, "team", "registry.corp/team/", namespace="apps", **label)
    _registry(fake, "unlabelled", "evil.io/", namespace="apps")
    _registry(fake, "other-ns", "other.io/", namespace="policy-params", **label)
    client = serve(BY_SELECTOR)
    # No namespace in the ref: the request's namespace (apps); each matched param must pass (AND).
    assert _allowed(client, "registry.corp/team/train:1") == (True, "")
    allowed, message = _allowed(client, "registry.corp/other:1")
    assert not allowed and "images must come from registry.corp/team/" in message
    # Held: the objects a ref can select (any namespace, with the label), not every ConfigMap.
    assert client.get("/readyz").json()["inventory"]["params"]["ConfigMap.v1"]["objects"] == 3


def test_the_kinds_watched_follow_the_policy_set(
    tmp_path: Path, fake: FakeAPIServer, serve: Callable[[str], TestClient]
) -> None:
    _registry(fake, "registry", "registry.corp/")
    _registry(fake, "registry-v2", "mirror.corp/")
    client = serve(BY_NAME % ("registry", "Deny"))
    assert _allowed(client, "mirror.corp/train:1")[0] is False
    _write(tmp_path / "policies", BY_NAME % ("registry-v2", "Deny"))  # a reload names another param
    _wait(lambda: _allowed(client, "mirror.corp/train:1")[0], "the reloaded binding's param is used")
    without_params = POLICY.replace("  paramKind: {apiVersion: v1, kind: ConfigMap}\n", "")
    without_params = without_params.replace("params.data.registry", "'registry.corp/'")
    (tmp_path / "policies" / "registry.yaml").write_text(
        without_params.replace("  paramRef: {paramRef}\n", "")
    )
    _wait(lambda: "params" not in client.get("/readyz").json()["inventory"], "no param kind is watched")


def _params_inventory(fake: FakeAPIServer, **bounds: int) -> ParamInventory:
    api = api_from_config(host=f"http://127.0.0.1:{fake.port}")
    base = ClusterInventory(api, watch_seconds=5, backoff=(0.05, 0.2))
    return ParamInventory(base, api.api_client, watch_seconds=5, **bounds)


def _selector_policies(tmp_path: Path) -> Any:
    from policyengine.policyset import load_policy_set

    _write(tmp_path / "p", BY_SELECTOR)
    return load_policy_set([str(tmp_path / "p")], include_bundled=False).policies


def test_hostile_param_objects_are_capped_with_a_finding(
    tmp_path: Path, fake: FakeAPIServer, caplog: pytest.LogCaptureFixture
) -> None:
    label = {"labels": {"policyengine.io/param": "registry"}}
    for i in range(100_000):
        _registry(fake, f"p{i:06d}", "x/", namespace="apps", **label)
    inventory = _params_inventory(fake, max_objects=200)
    inventory.follow(_selector_policies(tmp_path))
    with caplog.at_level(logging.WARNING, logger="policyengine.webhook"):
        inventory.start()
        try:
            _wait(lambda: inventory.status()["ready"], "the param list")
            held = inventory.status()["params"]["ConfigMap.v1"]
            assert held["objects"] == 200 and held["leftOut"] >= 1
            assert sum(o.get("kind") == "ConfigMap" for o in inventory.current().objects) == 200
            # The list stopped at the bound: it did not read the 2,000 pages of 50.
            assert fake.pages["configmaps"] <= 200 // 50 + 1
            _registry(fake, "late", "x/", namespace="apps", **label)  # a watch ADDED past the bound
            _wait(lambda: inventory.status()["params"]["ConfigMap.v1"]["leftOut"] > held["leftOut"], "late")
            assert inventory.status()["params"]["ConfigMap.v1"]["objects"] == 200
        finally:
            inventory.stop()
    assert any("param objects left out" in r.getMessage() for r in caplog.records)


def test_an_oversized_param_object_is_left_out(tmp_path: Path, fake: FakeAPIServer) -> None:
    label = {"labels": {"policyengine.io/param": "registry"}}
    _registry(fake, "small", "x/", namespace="apps", **label)
    _registry(fake, "huge", "x" * (MAX_OBJECT_BYTES + 1), namespace="apps", **label)
    inventory = _params_inventory(fake)
    inventory.follow(_selector_policies(tmp_path))
    inventory.start()
    try:
        _wait(lambda: inventory.status()["ready"], "the param list")
        names = [o["metadata"]["name"] for o in inventory.current().objects if o.get("kind") == "ConfigMap"]
        assert names == ["small"]
        assert inventory.status()["params"]["ConfigMap.v1"]["leftOut"] == 1
    finally:
        inventory.stop()


def test_param_kinds_come_from_the_bindings(tmp_path: Path) -> None:
    kinds = param_kinds(_selector_policies(tmp_path))
    assert list(kinds) == ["ConfigMap.v1"]
    kind = kinds["ConfigMap.v1"]
    labelled = {"metadata": {"name": "a", "namespace": "x", "labels": {"policyengine.io/param": "registry"}}}
    assert kind.wants(labelled) and not kind.wants({"metadata": {"name": "a", "namespace": "x"}})


def test_a_scan_reads_the_param_objects_once_within_the_bounds(tmp_path: Path, fake: FakeAPIServer) -> None:
    label = {"labels": {"policyengine.io/param": "registry"}}
    for i in range(120):
        _registry(fake, f"p{i:03d}", "x/", namespace="apps", **label)
    _registry(fake, "unlabelled", "x/", namespace="apps")
    api = api_from_config(host=f"http://127.0.0.1:{fake.port}")
    objects, left_out = list_params(api.api_client, _selector_policies(tmp_path))
    assert len(objects) == 120 and {o["kind"] for o in objects} == {"ConfigMap"}
    assert left_out == {} and fake.pages["configmaps"] == 3  # paged: 50 + 50 + 21
    objects, left_out = list_params(api.api_client, _selector_policies(tmp_path), max_objects=100)
    assert len(objects) == 100 and left_out == {"ConfigMap.v1": 20}  # the rest of the page read


def test_a_param_kind_the_cluster_does_not_serve_has_no_params(tmp_path: Path, fake: FakeAPIServer) -> None:
    from policyengine.policyset import load_policy_set

    custom = POLICY.replace(
        "{apiVersion: v1, kind: ConfigMap}", "{apiVersion: example.com/v1, kind: Registry}"
    )
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "registry.yaml").write_text(custom.replace("{paramRef}", BY_NAME % ("r", "Deny")))
    inventory = _params_inventory(fake)
    inventory.follow(load_policy_set([str(tmp_path / "p")], include_bundled=False).policies)
    inventory.start()
    try:
        _wait(lambda: inventory.status()["ready"], "the discovery answer")
        detail = inventory.status()["params"]["Registry.example.com/v1"]
        assert detail["objects"] == 0 and detail["lastError"] == "not served by the API server"
    finally:
        inventory.stop()
