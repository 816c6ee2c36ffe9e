"""The webhook with the real audit log: every answer carries the index of a durable, signed entry; a log
that cannot record fails closed (or open, when asked) and shows in readiness and metrics."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from audit import AuditLog, Query, keygen, load_verifier
from audit.errors import AuditError
from tests.unit.webhook.builders import engine_for, pod, review
from webhook.app import WebhookServices, create_app
from webhook.audit_recorder import AuditRecorder
from webhook.policies import LivePolicies
from webhook.review import AUDIT_INDEX_KEY
from webhook.telemetry import build_telemetry


def make_client(policy_dir: Path, recorder: object) -> TestClient:
    policies = LivePolicies(lambda: engine_for(policy_dir), [str(policy_dir)])
    policies.serve(engine_for(policy_dir))
    services = WebhookServices(policies=policies, recorder=recorder, telemetry=build_telemetry({}))  # type: ignore[arg-type]
    return TestClient(create_app(services))


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    keygen("webhook.example/audit", tmp_path / "keys")
    return tmp_path / "keys"


@pytest.fixture
def audited(policy_dir: Path, keys: Path, tmp_path: Path) -> Iterator[tuple[TestClient, AuditRecorder]]:
    recorder = AuditRecorder.open(str(tmp_path / "audit.db"), str(keys / "audit.key"))
    with make_client(policy_dir, recorder) as client:
        yield client, recorder
    recorder.close()


def test_each_answer_carries_the_index_of_a_verified_entry(
    audited: tuple[TestClient, AuditRecorder], keys: Path, tmp_path: Path
) -> None:
    client, _ = audited
    indexes = []
    for image in ("nginx:latest", "nginx:1.27", "busybox:latest"):
        body = client.post("/validate", json=review(pod(image=image))).json()
        indexes.append(body["response"]["auditAnnotations"][AUDIT_INDEX_KEY])
    assert indexes == ["0", "1", "2"]
    log = AuditLog.open(str(tmp_path / "audit.db"))
    entries = [e.entry for e in log.query(Query())]
    report = log.verify(load_verifier(keys / "audit.vkey"))
    log.close()
    assert report.ok and report.entries == 3
    assert [e["verdict"] for e in entries] == ["denied", "warned", "denied"]  # the team-label rule warns
    assert {e["source"] for e in entries} == {"admission"}
    ready = client.get("/readyz").json()
    assert ready["audit"] == {"healthy": True, "failures": 0, "failureMode": "deny"}


class BrokenLog:
    queue_depth = 0

    def append(self, entry: object) -> int:
        raise AuditError("disk full")

    def close(self) -> None:
        pass


def test_a_failing_log_denies_by_default_and_takes_the_replica_out(policy_dir: Path) -> None:
    recorder = AuditRecorder(BrokenLog(), failure="deny")  # type: ignore[arg-type]
    with make_client(policy_dir, recorder) as client:
        response = client.post("/validate", json=review(pod()))
        assert response.status_code == 500
        assert response.json()["error"]["code"] == "record_failed"
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["audit"]["healthy"] is False
        assert "policyengine_audit_failures 1" in client.get("/metrics").text


def test_allow_mode_answers_without_an_index(policy_dir: Path) -> None:
    recorder = AuditRecorder(BrokenLog(), failure="allow")  # type: ignore[arg-type]
    with make_client(policy_dir, recorder) as client:
        body = client.post("/validate", json=review(pod())).json()
        assert body["response"]["allowed"] is True
        assert AUDIT_INDEX_KEY not in body["response"].get("auditAnnotations", {})
        assert client.get("/readyz").status_code == 200
        assert recorder.failures == 1


def test_dry_run_decisions_are_recorded_and_flagged(audited: tuple[TestClient, AuditRecorder]) -> None:
    client, recorder = audited
    client.post("/validate", json=review(pod(image="x:latest"), dry_run=True))
    (entry,) = recorder.log.query(Query())
    assert entry.entry["source"] == "admission" and entry.entry["dryRun"] is True


def test_a_serving_replica_signs_with_the_next_key_once_the_log_is_handed_over(
    policy_dir: Path, keys: Path, tmp_path: Path
) -> None:
    from audit import load_signer
    from audit.keychain import handover_meta
    from audit.note import split_note

    keygen("webhook.example/audit", tmp_path / "next")
    db = str(tmp_path / "audit.db")
    recorder = AuditRecorder.open(db, str(keys / "audit.key"), next_key=str(tmp_path / "next" / "audit.key"))
    with make_client(policy_dir, recorder) as client:
        assert client.post("/validate", json=review(pod(image="nginx:1.27"))).status_code == 200
        with AuditLog.open(db, signer=load_signer(keys / "audit.key")) as operator:  # `audit rotate-key`
            operator.rotate_key(load_signer(tmp_path / "next" / "audit.key"))
        body = client.post("/validate", json=review(pod(image="nginx:1.28"))).json()
        assert body["response"]["auditAnnotations"][AUDIT_INDEX_KEY] == "1"
    recorder.close()
    new = load_verifier(tmp_path / "next" / "audit.vkey")
    with AuditLog.open(db) as log:
        assert log.store.meta(handover_meta(1)) is not None
        size, note = log.store.checkpoints()[-1]
        assert size == 2 and [kid for _, kid, _ in split_note(note)[1]] == [new.key_id]
        assert log.verify(load_verifier(keys / "audit.vkey")).ok
