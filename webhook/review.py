"""The AdmissionReview codec: ``admission.k8s.io/v1`` and ``v1beta1`` JSON <-> the core's Request and
Decision. Pure functions, no I/O, so every rule of the wire format is tested without a server. The
envelope is read here; the AdmissionRequest inside it by the core's ``policyengine.codec`` (the reading
``policyengine test`` shares), and which results deny by the core's ``Result.denies``.

Kubernetes rules kept here:
- the response has the request's ``apiVersion``, ``kind: AdmissionReview`` and ``response.uid`` equal
  to ``request.uid``;
- a denial is ``allowed: false`` with ``status.code`` 403 and a message naming each failed policy;
- ``warnings`` are short: each at most 256 characters and all of them at most 4096, cut with an
  ellipsis (kube-apiserver drops longer ones);
- kube-apiserver prefixes each ``auditAnnotations`` key with the webhook's name and accepts only a
  ``prefix/name`` qualified name, so keys sent here never contain ``/`` (see ``annotation_key``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from policyengine.codec import request_from_admission
from policyengine.errors import RequestError
from policyengine.model import Decision, Outcome, Request
from webhook.errors import MissingRequest, NotAdmissionReview

V1 = "admission.k8s.io/v1"
V1BETA1 = "admission.k8s.io/v1beta1"
VERSIONS = (V1, V1BETA1)

MAX_WARNING = 256
MAX_WARNINGS_TOTAL = 4096
MAX_STATUS_MESSAGE = 16 * 1024
MAX_LINE = 1024
ELLIPSIS = "…"
# The audit log index of the decision; kube-apiserver records it as "<webhook name>/audit-index".
AUDIT_INDEX_KEY = "audit-index"

_NOT_QUALIFIED = re.compile(r"[^-A-Za-z0-9_.]")
_MAX_KEY = 63


@dataclass(frozen=True)
class Review:
    """A decoded AdmissionReview: the version to answer in and the core's request."""

    api_version: str
    request: Request
    size: int = 0  # bytes of the body it was read from (0: not known)


def parse_review(data: Any) -> Review:
    """AdmissionReview JSON (already parsed) -> Review. Raises NotAdmissionReview or MissingRequest."""
    if not isinstance(data, dict):
        raise NotAdmissionReview("body is not a JSON object")
    if data.get("kind") != "AdmissionReview":
        raise NotAdmissionReview(f"{_field(data, 'kind')}, expected AdmissionReview")
    api_version = data.get("apiVersion")
    if api_version not in VERSIONS:
        raise NotAdmissionReview(f"{_field(data, 'apiVersion')}, expected one of {', '.join(VERSIONS)}")
    req = data.get("request")
    if req is None:
        raise MissingRequest("AdmissionReview has no request")
    if not isinstance(req, dict):
        raise NotAdmissionReview("request is not an object")
    try:
        request = request_from_admission(req)
    except RequestError as err:
        raise NotAdmissionReview(str(err)) from None
    return Review(api_version=str(api_version), request=request)


def _field(data: dict[str, Any], key: str) -> str:
    """``kind is missing`` for an absent field (not ``kind is None``), else the value quoted back."""
    return f"{key} is missing" if key not in data else f"{key} is {_show(data[key])}"


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:79] + ELLIPSIS


# -- the answer -------------------------------------------------------------------------------------------


def review_response(
    api_version: str,
    decision: Decision,
    *,
    audit_index: int | None = None,
) -> dict[str, Any]:
    """The AdmissionReview answering ``decision``, in the version it was asked in."""
    response: dict[str, Any] = {"uid": decision.request.uid, "allowed": decision.allowed}
    if not decision.allowed:
        response["status"] = {
            "code": 403,
            "reason": "Forbidden",
            "message": status_message(decision),
        }
    warnings = bound_warnings(decision.warnings)
    if warnings:
        response["warnings"] = warnings
    annotations = audit_annotations(decision.audit_annotations, audit_index)
    if annotations:
        response["auditAnnotations"] = annotations
    return {"apiVersion": api_version, "kind": "AdmissionReview", "response": response}


def status_message(decision: Decision) -> str:
    """One line per denying result: ``[policy] message`` (evaluation errors say so)."""
    failed = decision.denials
    policies = sorted({r.policy for r in failed})
    head = (
        f"policyengine denied the request: {len(policies)} polic{'y' if len(policies) == 1 else 'ies'} failed"
    )
    lines = [head]
    for r in failed:
        what = "evaluation error: " if r.outcome is Outcome.ERROR else ""
        lines.append(_cut(f"[{r.policy}] {what}{_one_line(r.message)}", MAX_LINE))
    return _cut("\n".join(lines), MAX_STATUS_MESSAGE)


def bound_warnings(warnings: tuple[str, ...] | list[str]) -> list[str]:
    """Each warning at most MAX_WARNING characters, all of them at most MAX_WARNINGS_TOTAL."""
    out: list[str] = []
    room = MAX_WARNINGS_TOTAL
    for raw in warnings:
        text = _cut(_one_line(raw), MAX_WARNING)
        if len(text) > room:
            if room > len(ELLIPSIS):
                out.append(_cut(text, room))
            break
        out.append(text)
        room -= len(text)
    return out


def audit_annotations(annotations: Mapping[str, str], audit_index: int | None) -> dict[str, str]:
    out = {annotation_key(k): str(v) for k, v in annotations.items()}
    if audit_index is not None:
        out[AUDIT_INDEX_KEY] = str(audit_index)
    return out


def annotation_key(key: str) -> str:
    """A key kube-apiserver accepts after prefixing the webhook name: a qualified-name part of at most
    63 characters, alphanumeric at both ends. ``policy/key`` becomes ``policy.key``; longer keys keep a
    hash of the original so distinct keys stay distinct."""
    text = _NOT_QUALIFIED.sub("_", key.replace("/", ".")).strip("-_.") or "annotation"
    if len(text) > _MAX_KEY:
        digest = hashlib.sha256(key.encode()).hexdigest()[:8]
        text = text[: _MAX_KEY - 9].rstrip("-_.") + "-" + digest
    return text


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - len(ELLIPSIS)] + ELLIPSIS
