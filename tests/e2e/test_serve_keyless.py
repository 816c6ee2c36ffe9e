"""A model signed keyless with Sigstore (the upstream model-signing-spec bundle) passes
model-signature-verified through ``serve``'s /validate over TLS once its signer is a trusted identity, and
/readyz lists a bundle that does not verify with its reason (``check`` is in
tests/unit/provenance/test_keyless.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from policyengine.policyset import bundled_policies_dir
from tests.e2e.test_serve import Server, _start, _stop, certs  # noqa: F401  (certs is a fixture)
from tests.unit.provenance.test_keyless import configure, service
from tests.unit.webhook.builders import review


@pytest.fixture
def keyless_server(tmp_path: Path, shared: Path, certs: Path) -> Iterator[Server]:  # noqa: F811
    config = configure(tmp_path, shared)
    running = _start(
        tmp_path,
        certs,
        "--policies", str(bundled_policies_dir() / "model-provenance"),
        "--config", str(config),
    )  # fmt: skip
    yield running
    _stop(running)


@pytest.mark.e2e
def test_validate_admits_the_keyless_signed_model_and_readyz_lists_the_refused_bundle(
    keyless_server: Server, tmp_path: Path
) -> None:
    inference = {"group": "serving.kserve.io", "version": "v1beta1", "kind": "InferenceService"}

    def admit(obj: dict[str, Any], uid: str) -> dict[str, Any]:
        body = review(obj, uid=uid, kind="InferenceService", resource="inferenceservices", namespace="ml")
        body["request"]["kind"] = body["request"]["requestKind"] = inference
        with keyless_server.client() as client:
            response: dict[str, Any] = client.post("/validate", json=body).json()["response"]
        return response

    signed = admit(service(), "keyless-1")
    assert signed["allowed"] is True, signed
    unsigned = admit(service("ab" * 32), "keyless-2")
    assert unsigned["allowed"] is False
    assert "model-signature-verified" in unsigned["status"]["message"]

    with keyless_server.client() as client:
        ready = client.get("/readyz").json()
    assert ready["attestations"] == {
        "bundles": 2,
        "verified": 1,
        "unverified": [
            {
                "bundle": str(tmp_path / "attestations" / "churn-tampered.sig"),
                "reason": "keyless signature does not verify under the production Sigstore trust root: "
                "DSSE: invalid signature",
            }
        ],
        "unverifiedCount": 1,
        "problems": [],
    }
