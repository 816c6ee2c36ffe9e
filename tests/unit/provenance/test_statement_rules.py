"""Signed content that cannot be a correct OMS statement is refused even under a trusted key, and a
model's finding says why each bundle that names it was refused."""

from __future__ import annotations

import copy
import hashlib
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from policyengine.provenance import AttestationStore, verify_bundle
from tests.unit.provenance.test_provenance import FILES, bundle, sign_with, statement, trusted

NOW = datetime(2026, 1, 1, tzinfo=UTC)
KEY = ec.generate_private_key(ec.SECP256R1())


def with_root(stmt: dict[str, Any]) -> dict[str, Any]:
    """The statement with its subject digest recomputed, so only the rule under test is broken."""
    digests = [bytes.fromhex(r["digest"]) for r in stmt["predicate"]["resources"]]
    stmt["subject"][0]["digest"]["sha256"] = hashlib.sha256(b"".join(digests)).hexdigest()
    return stmt


def broken(change: str) -> dict[str, Any]:
    stmt = copy.deepcopy(statement(FILES))
    predicate = stmt["predicate"]
    if change == "md5":
        predicate["resources"][0]["algorithm"] = "md5"
    elif change == "short-digest":
        predicate["resources"][0]["digest"] = "ab" * 16
    elif change == "no-serialization":
        del predicate["serialization"]
    elif change == "unknown-method":
        predicate["serialization"]["method"] = "tarball"
    elif change == "unknown-hash-type":
        predicate["serialization"]["hash_type"] = "md5"
    elif change == "empty":
        predicate["resources"] = []
    elif change == "duplicate":
        predicate["resources"].append(dict(predicate["resources"][0]))
    elif change == "unnamed":
        del predicate["resources"][0]["name"]
    return with_root(stmt) if predicate["resources"] else stmt


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("md5", "predicate.resources[0].algorithm 'md5' is not one of blake2b, blake3, sha256"),
        ("short-digest", "predicate.resources[0].digest is not a sha256 digest"),
        ("no-serialization", "predicate.serialization is missing"),
        ("unknown-method", "predicate.serialization.method 'tarball' is not an OMS method"),
        ("unknown-hash-type", "predicate.serialization.hash_type 'md5' is not an OMS hash"),
        ("empty", "predicate.resources lists no model files"),
        ("duplicate", "predicate.resources lists 'config.json' twice"),
        ("unnamed", "predicate.resources[0] has no name"),
    ],
)
def test_an_incorrect_statement_is_refused_under_a_trusted_key(change: str, reason: str) -> None:
    verdict = verify_bundle(bundle(broken(change), sign_with(KEY)), [trusted("release", KEY)], at=NOW)
    assert (verdict.verified, verdict.reason) == (False, f"malformed statement: {reason}")


def test_the_finding_says_why_each_covering_bundle_was_refused() -> None:
    stmt = statement(FILES)
    root = stmt["subject"][0]["digest"]["sha256"]
    forged = ("a.sig", bundle(stmt, sign_with(ec.generate_private_key(ec.SECP256R1()))))
    mismatched = copy.deepcopy(stmt)
    mismatched["predicate"]["resources"][0]["digest"] = "00" * 32
    store = AttestationStore.from_bundles(
        [forged, ("b.sig", bundle(mismatched, sign_with(KEY)))], [trusted("release", KEY)]
    )
    reason = store.lookup(root, NOW)["reason"]
    assert reason.startswith("2 bundles refused: a.sig: signature does not verify under any trusted key; ")
    assert "b.sig: digest mismatch: the subject digest" in reason


def test_a_bundle_whose_model_cannot_be_read_is_named_when_nothing_covers_the_digest() -> None:
    store = AttestationStore.from_bundles([("legacy.sig", b'{"mediaType": "application/json"}')], [])
    assert store.lookup("00" * 32, NOW)["reason"] == (
        f"no model-signing bundle in the attestation store covers sha256:{'00' * 32} (refused without a "
        "readable model digest: legacy.sig: unsupported bundle media type 'application/json')"
    )
