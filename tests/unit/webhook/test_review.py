"""The AdmissionReview codec: wire format in, core Request out; Decision in, AdmissionReview out."""

from __future__ import annotations

from typing import Any

import pytest

from policyengine.model import Action, Decision, Outcome, Result
from tests.unit.webhook.builders import pod, review
from webhook.errors import MissingRequest, NotAdmissionReview
from webhook.review import (
    AUDIT_INDEX_KEY,
    MAX_WARNING,
    MAX_WARNINGS_TOTAL,
    V1BETA1,
    annotation_key,
    bound_warnings,
    parse_review,
    review_response,
)


def test_v1_request_becomes_the_core_request() -> None:
    parsed = parse_review(review(pod(), dry_run=True))
    req = parsed.request
    assert parsed.api_version == "admission.k8s.io/v1"
    assert (req.uid, req.operation, req.name, req.namespace) == (
        "11111111-2222-3333-4444-555555555555",
        "CREATE",
        "web",
        "apps",
    )
    assert (req.kind.kind, req.resource.resource) == ("Pod", "pods")
    assert req.user_info.username == "alice" and req.user_info.groups == ("devs", "system:authenticated")
    assert req.dry_run is True
    assert req.object["spec"]["containers"][0]["image"] == "nginx:1.27"


def test_v1beta1_is_answered_in_v1beta1() -> None:
    parsed = parse_review(review(pod(), version=V1BETA1))
    out = review_response(parsed.api_version, Decision(request=parsed.request, results=(), allowed=True))
    assert out["apiVersion"] == V1BETA1 and out["kind"] == "AdmissionReview"
    assert out["response"] == {"uid": parsed.request.uid, "allowed": True}


def test_delete_has_a_null_object_and_the_old_object() -> None:
    req = parse_review(review(None, operation="DELETE", old=pod())).request
    assert req.object is None and req.old_object["metadata"]["name"] == "web"
    assert req.name == "web"


def test_update_and_connect_carry_their_objects() -> None:
    upd = parse_review(review(pod(image="a:2"), operation="UPDATE", old=pod(image="a:1"))).request
    assert upd.old_object["spec"]["containers"][0]["image"] == "a:1"
    conn = parse_review(review({"kind": "PodExecOptions"}, operation="CONNECT")).request
    assert conn.operation == "CONNECT"


@pytest.mark.parametrize(
    ("body", "error", "match"),
    [
        ([], NotAdmissionReview, "not a JSON object"),
        ({"kind": "Pod", "apiVersion": "v1"}, NotAdmissionReview, "expected AdmissionReview"),
        ({"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v2"}, NotAdmissionReview, "apiVersion"),
        ({"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1"}, MissingRequest, "no request"),
        (
            {"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1", "request": 3},
            NotAdmissionReview,
            "not an object",
        ),
    ],
)
def test_what_is_not_an_admission_review_is_refused(body: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match) as info:
        parse_review(body)
    assert info.value.status == 400  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("uid", "", "uid"),
        ("operation", "PATCH", "operation"),
        ("kind", "Pod", "request.kind"),
        ("object", None, "object is required"),
        ("object", "a string", "must be an object or null"),
        ("oldObject", [1], "must be an object or null"),
    ],
)
def test_malformed_requests_are_refused(field: str, value: Any, match: str) -> None:
    body = review(pod())
    body["request"][field] = value
    with pytest.raises(NotAdmissionReview, match=match):
        parse_review(body)


def _decision(results: list[Result], warnings: tuple[str, ...] = ()) -> Decision:
    req = parse_review(review(pod())).request
    allowed = not any(r.action is Action.DENY and r.outcome in (Outcome.FAIL, Outcome.ERROR) for r in results)
    return Decision(request=req, results=tuple(results), allowed=allowed, warnings=warnings)


def test_a_denial_is_403_listing_every_failed_policy() -> None:
    decision = _decision(
        [
            Result("a", Action.DENY, Outcome.FAIL, "first problem"),
            Result("b", Action.DENY, Outcome.ERROR, "no such key: x", code="eval_error"),
            Result("c", Action.WARN, Outcome.FAIL, "just a warning"),
            Result("d", Action.DENY, Outcome.EXCEPTED, "excepted", exception="e"),
        ]
    )
    resp = review_response("admission.k8s.io/v1", decision)["response"]
    assert resp["allowed"] is False and resp["status"]["code"] == 403
    message = resp["status"]["message"]
    assert "2 policies failed" in message
    assert "[a] first problem" in message and "[b] evaluation error: no such key: x" in message
    assert "[c]" not in message and "[d]" not in message


def test_warnings_are_cut_to_kubernetes_limits_with_an_ellipsis() -> None:
    out = bound_warnings(["x" * 1000] * 40)
    assert all(len(w) <= MAX_WARNING for w in out)
    assert out[0].endswith("…")
    assert sum(len(w) for w in out) <= MAX_WARNINGS_TOTAL
    assert out[-1].endswith("…")
    assert bound_warnings(["two\nlines"]) == ["two lines"]


def test_audit_annotations_carry_the_audit_index_with_keys_kube_apiserver_accepts() -> None:
    decision = _decision([])
    decision = Decision(
        request=decision.request, results=(), allowed=True, audit_annotations={"gpu-quota/team": "ml"}
    )
    resp = review_response("admission.k8s.io/v1", decision, audit_index=42)["response"]
    assert resp["auditAnnotations"] == {"gpu-quota.team": "ml", AUDIT_INDEX_KEY: "42"}
    assert "auditAnnotations" not in review_response("admission.k8s.io/v1", _decision([]))["response"]


def test_long_or_odd_annotation_keys_stay_valid_and_distinct() -> None:
    a, b = annotation_key("p" * 80 + "/one"), annotation_key("p" * 80 + "/two")
    assert a != b and len(a) <= 63 and len(b) <= 63
    assert annotation_key("weird key!/x") == "weird_key_.x"
    assert annotation_key("///") == "annotation"
