"""The app through Starlette's TestClient: answers, hostile input, time budget, recording, operations."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.testclient import TestClient

import webhook.admission
from policyengine.errors import LoadError, Problem
from tests.unit.webhook.builders import pod, review
from webhook.app import WebhookServices, create_app
from webhook.logs import LOGGER, JSONFormatter
from webhook.policies import LivePolicies
from webhook.prometheus import parse_samples
from webhook.recorder import MemoryRecorder
from webhook.review import AUDIT_INDEX_KEY

V1 = "admission.k8s.io/v1"


def _post(client: TestClient, body: Any) -> Any:
    response = client.post("/validate", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_denied_pod_gets_403_warnings_and_the_audit_index(
    client: TestClient, recorder: MemoryRecorder
) -> None:
    out = _post(client, review(pod(image="nginx:latest")))
    resp = out["response"]
    assert out["apiVersion"] == V1 and out["kind"] == "AdmissionReview"
    assert resp["uid"] == "11111111-2222-3333-4444-555555555555"
    assert resp["allowed"] is False
    assert resp["status"]["code"] == 403
    assert "[no-latest-tag] images must not use the :latest tag" in resp["status"]["message"]
    assert resp["warnings"] == ["team-label: pods should carry a team label"]
    assert resp["auditAnnotations"] == {"no-latest-tag.containers": "1", AUDIT_INDEX_KEY: "0"}
    decision, source = recorder.entries[0]
    assert source == "admission" and decision.verdict == "denied"


def test_an_allowed_pod_is_allowed_in_the_version_it_was_asked_in(client: TestClient) -> None:
    out = _post(client, review(pod(labels={"team": "a"}), version="admission.k8s.io/v1beta1", uid="u-2"))
    assert out["apiVersion"] == "admission.k8s.io/v1beta1"
    assert out["response"]["uid"] == "u-2" and out["response"]["allowed"] is True
    assert "status" not in out["response"] and "warnings" not in out["response"]


def test_dry_run_is_decided_and_recorded_as_dry_run(client: TestClient, recorder: MemoryRecorder) -> None:
    out = _post(client, review(pod(image="x:latest"), dry_run=True))
    assert out["response"]["allowed"] is False
    assert recorder.decisions[-1].request.dry_run is True


def test_delete_with_a_null_object_and_update_with_old_object(
    client: TestClient, recorder: MemoryRecorder
) -> None:
    out = _post(client, review(None, operation="DELETE", old=pod(image="x:latest")))
    assert out["response"]["allowed"] is True  # the policies match CREATE and UPDATE only
    out = _post(client, review(pod(image="x:latest"), operation="UPDATE", old=pod()))
    assert out["response"]["allowed"] is False
    assert [d.request.operation for d in recorder.decisions] == ["DELETE", "UPDATE"]


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"{not json", "invalid_json"),
        (b"\xff\xfe\x00", "invalid_json"),
        (b'{"kind": "Pod", "apiVersion": "v1"}', "not_admission_review"),
        (b'{"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1"}', "missing_request"),
        (b"[" * 100_000 + b"]" * 100_000, "nesting_too_deep"),
        (b'{"a":' * 5000 + b"1" + b"}" * 5000, "nesting_too_deep"),
    ],
)
def test_hostile_bodies_are_400_with_a_reason_and_the_server_goes_on(
    client: TestClient, content: bytes, code: str
) -> None:
    response = client.post("/validate", content=content, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code
    assert _post(client, review(pod()))["response"]["allowed"] is True


def test_a_body_over_the_limit_is_413_by_content_length(services: WebhookServices) -> None:
    services.max_body = 1000
    with TestClient(create_app(services)) as client:
        response = client.post("/validate", content=b"x" * 5000, headers={"content-type": "application/json"})
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "body_too_large"


def test_a_streamed_body_over_the_limit_is_413_without_reading_it_all(services: WebhookServices) -> None:
    services.max_body = 1000

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is counted while streaming
        for _ in range(100):
            yield b"x" * 100

    with TestClient(create_app(services)) as client:
        response = client.post("/validate", content=chunks(), headers={"content-type": "application/json"})
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "body_too_large"


def test_a_non_json_content_type_is_415(client: TestClient) -> None:
    response = client.post(
        "/validate", content=b"a=b", headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 415


def _slow(seconds: float) -> Any:
    real = webhook.admission.evaluate

    def slow(*args: Any) -> Any:
        time.sleep(seconds)
        return real(*args)

    return slow


def _over_budget(services: WebhookServices, monkeypatch: pytest.MonkeyPatch) -> None:
    """An evaluation that outlasts its share of the budget by seconds, and a whole second left for
    recording: a loaded CI machine must not turn the recording into the thing that runs out."""
    monkeypatch.setattr(webhook.admission, "RECORD_SHARE", 0.5)
    monkeypatch.setattr(webhook.admission, "evaluate", _slow(4.0))
    services.timeout = 2.0
    # An evaluation that blocks for seconds can be cut at its deadline only in the pool; one on the event
    # loop is cut at policy boundaries (tests/unit/webhook/test_onloop.py).
    services.inline_eval = False


def test_over_budget_is_denied_when_a_matched_policy_fails_closed(
    services: WebhookServices, recorder: MemoryRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    _over_budget(services, monkeypatch)
    with TestClient(create_app(services)) as client:
        resp = _post(client, review(pod(labels={"team": "a"})))["response"]
    assert resp["allowed"] is False
    assert "did not finish within" in resp["status"]["message"]
    decision = recorder.decisions[-1]
    assert {r.code for r in decision.results} == {"budget_exceeded"}
    assert {r.policy for r in decision.results} == {"no-latest-tag", "team-label"}


def test_over_budget_is_allowed_when_every_matched_policy_is_ignore(
    services: WebhookServices, recorder: MemoryRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    _over_budget(services, monkeypatch)
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "apps"}, "data": {}}
    with TestClient(create_app(services)) as client:
        resp = _post(client, review(cm, kind="ConfigMap", resource="configmaps"))["response"]
    assert resp["allowed"] is True
    (result,) = recorder.decisions[-1].results
    assert (result.policy, str(result.action), str(result.outcome)) == ("lenient-check", "audit", "error")


class _BrokenRecorder:
    def record(self, decision: Any, *, source: str) -> int | None:
        raise OSError("disk full")


def test_a_decision_that_cannot_be_recorded_is_not_answered_as_decided(services: WebhookServices) -> None:
    services.recorder = _BrokenRecorder()
    with TestClient(create_app(services)) as client:
        response = client.post("/validate", json=review(pod()))
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "record_failed"


def test_health_readiness_and_its_detail(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert body["ready"] is True and body["policies"]["policies"] == 3
    assert body["policies"]["digest"].startswith("sha256:")


def test_not_ready_until_a_policy_set_is_loaded() -> None:
    def broken() -> Any:
        raise LoadError([Problem("p.yaml", 3, "cel_compile", "bad expression")])

    services = WebhookServices(policies=LivePolicies(broken), reload_interval=None)
    with TestClient(create_app(services)) as client:
        deadline = time.monotonic() + 5
        while (
            "lastReloadError" not in client.get("/readyz").json()["policies"] and time.monotonic() < deadline
        ):
            time.sleep(0.02)
        ready = client.get("/readyz")
        assert ready.status_code == 503
        detail = ready.json()["policies"]
        assert detail["ready"] is False
        assert detail["lastReloadError"]["problems"] == ["p.yaml:3: cel_compile: bad expression"]
        response = client.post("/validate", json=review(pod()))
        assert response.status_code == 503 and response.json()["error"]["code"] == "not_ready"


def _samples(client: TestClient) -> list[tuple[str, dict[str, str], float]]:
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return list(parse_samples(response.text))


def test_metrics_count_decisions_by_policy_action_and_outcome(client: TestClient) -> None:
    _post(client, review(pod(image="x:latest")))
    client.post("/validate", content=b"{", headers={"content-type": "application/json"})
    samples = _samples(client)

    def value(name: str, **labels: str) -> float:
        return sum(v for n, ls, v in samples if n == name and labels.items() <= ls.items())

    assert value("policyengine_decisions_total", policy="no-latest-tag", action="deny", outcome="fail") == 1
    assert value("policyengine_decisions_total", policy="team-label", action="warn", outcome="fail") == 1
    assert value("policyengine_admission_requests_total", verdict="denied") == 1
    assert value("policyengine_bad_requests_total", code="invalid_json") == 1
    assert value("policyengine_request_duration_seconds_count") == 1
    assert value("policyengine_evaluation_duration_seconds_count") == 1
    assert value("policyengine_audit_append_duration_seconds_count") == 1
    digest = client.get("/readyz").json()["policies"]["digest"]
    assert value("policyengine_policy_set_info", digest=digest) == 1


def test_a_trace_per_request_with_the_policy_outcomes_and_the_audit_append(
    client: TestClient, spans: InMemorySpanExporter
) -> None:
    _post(client, review(pod(image="x:latest")))
    finished = {s.name: s for s in spans.get_finished_spans()}
    root = finished["admission"]
    assert root.attributes is not None and root.attributes["policyengine.verdict"] == "denied"
    audit = finished["audit.append"]
    assert audit.parent is not None and audit.parent.span_id == root.context.span_id
    assert audit.context.trace_id == root.context.trace_id
    assert (
        root.start_time is not None and audit.start_time is not None and audit.start_time >= root.start_time
    )
    # One span per admission: the policies' outcomes are on it, not in a span each.
    assert set(finished) == {"admission", "audit.append"}
    assert list(root.attributes["policyengine.policies_failed"]) == ["no-latest-tag", "team-label"]
    assert list(root.attributes["policyengine.policies_errored"]) == []
    assert root.attributes["policyengine.policies_evaluated"] == 2
    events = {e.name: e for e in root.events}
    assert set(events) == {"policy no-latest-tag", "policy team-label"}
    event = events["policy no-latest-tag"]
    assert event.attributes is not None and list(event.attributes["policyengine.outcomes"]) == ["fail"]
    assert event.attributes["policyengine.policy"] == "no-latest-tag"
    assert root.start_time <= event.timestamp


def test_one_json_log_line_per_request_without_the_body(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger=LOGGER):
        _post(client, review(pod(image="secret-registry.example/x:latest")))
    records = [r for r in caplog.records if r.name == LOGGER and r.getMessage() == "admission"]
    assert len(records) == 1
    line = json.loads(JSONFormatter().format(records[0]))
    assert line["uid"] == "11111111-2222-3333-4444-555555555555"
    assert line["resource"] == {"kind": "Pod", "namespace": "apps", "name": "web"}
    assert line["verdict"] == "denied"
    assert line["latency_ms"] > 0 and line["audit_index"] == 0
    assert "secret-registry" not in json.dumps(line)


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


def test_arbitrary_json_in_any_field_never_makes_a_500(services: WebhookServices) -> None:
    fields = ["uid", "kind", "resource", "name", "namespace", "operation", "userInfo", "object", "oldObject"]
    with TestClient(create_app(services)) as client:

        @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(field=st.sampled_from(fields), value=_JSON, spec=_JSON)
        def check(field: str, value: Any, spec: Any) -> None:
            body = review(pod())
            body["request"]["object"]["spec"] = spec
            body["request"][field] = value
            response = client.post("/validate", json=body)
            assert response.status_code in (200, 400), response.text

        check()


class _Unsynced:
    def current(self) -> Any:
        from policyengine.model import Inventory

        return Inventory()

    def status(self) -> dict[str, Any]:
        return {"ready": False, "reason": "waiting for the first list of pods"}

    def start(self) -> None:
        return None

    def stop(self) -> None:
        return None


def test_no_decision_before_the_cluster_inventory_has_synced(services: WebhookServices) -> None:
    services.inventory = _Unsynced()
    services.startup_wait = 0.0
    with TestClient(create_app(services)) as client:
        response = client.post("/validate", json=review(pod()))
        assert response.status_code == 503
        assert response.json()["error"] == {
            "code": "not_ready",
            "message": "the cluster inventory has not synced yet",
        }
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["inventory"]["reason"].startswith("waiting")


@pytest.mark.parametrize(
    ("where", "raw"),
    [("uid", '"u-\\udc00"'), ("user", '"al\\ud800ice"'), ("option", "NaN"), ("option", "1e400")],
    ids=["uid-lone-surrogate", "user-lone-surrogate", "nan", "float-overflow"],
)
def test_json_no_audit_entry_can_hold_is_400_before_deciding(
    client: TestClient, recorder: MemoryRecorder, where: str, raw: str
) -> None:
    # Python's decoder takes these; kube-apiserver never sends them, and the audit log cannot store
    # them (they used to be a 500 record_failed that also marked the audit log unhealthy).
    body = review(pod())
    if where == "uid":
        body["request"]["uid"] = "MARKER"
    elif where == "user":
        body["request"]["userInfo"]["username"] = "MARKER"
    else:
        body["request"]["options"] = {"gpus": "MARKER"}
    text = json.dumps(body).replace('"MARKER"', raw)
    response = client.post("/validate", content=text, headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_json"
    assert recorder.entries == []
    assert _post(client, review(pod()))["response"]["allowed"] is True


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/validate", 405, "method_not_allowed"),
        ("PUT", "/validate", 405, "method_not_allowed"),
        ("POST", "/healthz", 405, "method_not_allowed"),
        ("GET", "/nope", 404, "not_found"),
        ("POST", "/mutate", 404, "not_found"),
    ],
)
def test_unknown_routes_and_methods_are_answered_in_json(
    client: TestClient, method: str, path: str, status: int, code: str
) -> None:
    response = client.request(method, path)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"]["code"] == code
    if status == 405:
        assert "POST" in response.headers["allow"] or "GET" in response.headers["allow"]


def _raw_asgi(services: WebhookServices, messages: list[dict[str, Any]]) -> tuple[int, Any]:
    """POST /validate straight through ASGI with the given receive() messages; after them, silence."""
    import asyncio

    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await asyncio.sleep(3600)  # a client that stops sending
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "https",
        "path": "/validate",
        "raw_path": b"/validate",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"1000")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 8443),
    }
    asyncio.run(asyncio.wait_for(create_app(services)(scope, receive, send), 10))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(body)


def test_a_body_that_stops_arriving_is_408_not_a_request_held_forever(services: WebhookServices) -> None:
    services.body_timeout = 0.1
    status, body = _raw_asgi(services, [{"type": "http.request", "body": b'{"a":', "more_body": True}])
    assert status == 408 and body["error"]["code"] == "body_timeout"


def test_a_client_gone_mid_body_is_a_bad_request_not_an_internal_error(
    services: WebhookServices, caplog: pytest.LogCaptureFixture
) -> None:
    messages = [{"type": "http.request", "body": b'{"a":', "more_body": True}, {"type": "http.disconnect"}]
    with caplog.at_level(logging.INFO, logger=LOGGER):
        status, body = _raw_asgi(services, messages)
    assert status == 400 and body["error"]["code"] == "client_disconnected"
    assert not any(r.exc_info for r in caplog.records), "no traceback for a client that went away"
