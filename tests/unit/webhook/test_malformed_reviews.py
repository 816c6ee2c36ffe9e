"""A malformed AdmissionReview is answered 400 with a message that names the missing or wrong field
(``request.uid is missing``, never ``kind is None``), and the server goes on answering."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.unit.webhook.builders import pod, review


def _drop(*path: str) -> Callable[[dict[str, Any]], None]:
    def edit(body: dict[str, Any]) -> None:
        target = body
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return edit


@pytest.mark.parametrize(
    ("edit", "code", "message"),
    [
        (_drop("kind"), "not_admission_review", "kind is missing, expected AdmissionReview"),
        (_drop("apiVersion"), "not_admission_review", "apiVersion is missing, expected one of"),
        (_drop("request"), "missing_request", "AdmissionReview has no request"),
        (
            _drop("request", "uid"),
            "not_admission_review",
            "request.uid is missing; it must be a non-empty string",
        ),
        (_drop("request", "operation"), "not_admission_review", "request.operation is missing"),
        (_drop("request", "kind"), "not_admission_review", "request.kind is missing; it must be an object"),
        (_drop("request", "kind", "kind"), "not_admission_review", "request.kind.kind is missing"),
        (_drop("request", "resource"), "not_admission_review", "request.resource is missing"),
        (
            _drop("request", "object"),
            "not_admission_review",
            "request.object is missing; an object is required for CREATE",
        ),
    ],
)
def test_a_missing_field_is_named_and_the_server_goes_on(
    client: TestClient, edit: Callable[[dict[str, Any]], None], code: str, message: str
) -> None:
    body = review(pod())
    edit(body)
    response = client.post("/validate", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"].startswith(message), error["message"]
    assert "None" not in error["message"]
    after = client.post("/validate", json=review(pod()))
    assert after.status_code == 200 and after.json()["response"]["allowed"] is True


def test_a_wrong_value_is_quoted_back_with_its_field(client: TestClient) -> None:
    body = review(pod())
    body["request"]["uid"] = 7
    response = client.post("/validate", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "request.uid must be a non-empty string, got 7"
