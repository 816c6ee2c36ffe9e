"""The signed content of an OMS bundle: the in-toto Statement v1 with the model-signing v1.0 predicate,
and the rules that make it a correct OMS statement.

The statement has one subject, the model, whose ``sha256`` digest is the SHA-256 of the concatenated raw
bytes of every resource digest listed in ``predicate.resources`` (in manifest order). A statement is
refused, even under a trusted key, when it cannot be a correct OMS statement: no ``serialization``
description (or one with a method or hash type outside the specification), an empty resource list,
duplicate resource names, a resource hash algorithm outside the specification's list, or a digest whose
length is not that algorithm's.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from policyengine.signing import Unverified

__all__ = ["IN_TOTO_STATEMENT_TYPE", "OMS_PREDICATE_TYPE", "SignedModel", "peek_subjects", "signed_model"]

IN_TOTO_STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
OMS_PREDICATE_TYPE = "https://model_signing/signature/v1.0"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
# The resource hash algorithms of the OMS specification, with their digest lengths in bytes.
RESOURCE_ALGORITHMS = {"sha256": 32, "blake2b": 64, "blake3": 32}
SERIALIZATION_METHODS = frozenset({"files", "shards"})
SERIALIZATION_HASHES = frozenset({"sha256", "blake2", "blake2b", "blake3"})


@dataclass(frozen=True)
class SignedModel:
    subject_digests: tuple[str, ...]  # the model-level sha256 hex
    single_file_digest: str  # the one resource's sha256 hex, for a single-file model
    name: str


def _object(statement: Any) -> Mapping[str, Any]:
    if not isinstance(statement, Mapping):
        raise Unverified("malformed statement: the DSSE payload is not a JSON object")
    if statement.get("_type") != IN_TOTO_STATEMENT_TYPE:
        raise Unverified(f"statement type {statement.get('_type')!r} is not {IN_TOTO_STATEMENT_TYPE}")
    if statement.get("predicateType") != OMS_PREDICATE_TYPE:
        raise Unverified(f"predicate type {statement.get('predicateType')!r} is not {OMS_PREDICATE_TYPE}")
    return statement


def _serialization(predicate: Mapping[str, Any]) -> None:
    serialization = predicate.get("serialization")
    if not isinstance(serialization, Mapping):
        raise Unverified("malformed statement: predicate.serialization is missing")
    method = serialization.get("method")
    if method not in SERIALIZATION_METHODS:
        raise Unverified(
            f"malformed statement: predicate.serialization.method {method!r} is not an OMS method"
        )
    hash_type = serialization.get("hash_type")
    if hash_type not in SERIALIZATION_HASHES:
        raise Unverified(
            f"malformed statement: predicate.serialization.hash_type {hash_type!r} is not an OMS hash"
        )


def _resource_digests(resources: Sequence[Any]) -> list[bytes]:
    digests, names = [], set()
    for i, r in enumerate(resources):
        if not isinstance(r, Mapping):
            raise Unverified(f"malformed statement: predicate.resources[{i}] is not an object")
        name, algorithm, value = r.get("name"), r.get("algorithm"), r.get("digest")
        if not isinstance(name, str) or not name:
            raise Unverified(f"malformed statement: predicate.resources[{i}] has no name")
        if name in names:
            raise Unverified(f"malformed statement: predicate.resources lists {name!r} twice")
        names.add(name)
        if algorithm not in RESOURCE_ALGORITHMS:
            raise Unverified(
                f"malformed statement: predicate.resources[{i}].algorithm {algorithm!r} is not one of "
                f"{', '.join(sorted(RESOURCE_ALGORITHMS))}"
            )
        if not isinstance(value, str) or not value:
            raise Unverified(f"malformed statement: predicate.resources[{i}] has no digest")
        try:
            digest = bytes.fromhex(value)
        except ValueError as e:
            raise Unverified(f"malformed statement: predicate.resources[{i}].digest is not hex") from e
        if len(digest) != RESOURCE_ALGORITHMS[algorithm]:
            raise Unverified(
                f"malformed statement: predicate.resources[{i}].digest is not a {algorithm} digest"
            )
        digests.append(digest)
    return digests


def signed_model(payload: bytes) -> SignedModel:
    """The model a valid OMS v1.0 statement signs; raises Unverified saying what is wrong."""
    try:
        statement = _object(json.loads(payload))
    except (ValueError, UnicodeDecodeError) as e:
        raise Unverified("malformed statement: the DSSE payload is not JSON") from e
    subjects = statement.get("subject")
    if not isinstance(subjects, list) or len(subjects) != 1 or not isinstance(subjects[0], Mapping):
        raise Unverified("malformed statement: an OMS statement has exactly one subject, the model")
    digest = subjects[0].get("digest")
    root = digest.get("sha256") if isinstance(digest, Mapping) else None
    if not isinstance(root, str) or not _HEX64.match(root.lower()):
        raise Unverified("malformed statement: the subject has no sha256 digest")
    predicate = statement.get("predicate")
    resources = predicate.get("resources") if isinstance(predicate, Mapping) else None
    if not isinstance(predicate, Mapping) or not isinstance(resources, list) or not resources:
        raise Unverified("malformed statement: predicate.resources lists no model files")
    _serialization(predicate)
    hasher = hashlib.sha256()
    for value in _resource_digests(resources):
        hasher.update(value)
    if hasher.hexdigest() != root.lower():
        raise Unverified(
            f"digest mismatch: the subject digest {root.lower()} is not the digest of the listed files "
            f"({hasher.hexdigest()})"
        )
    single = ""
    if len(resources) == 1 and resources[0].get("algorithm") == "sha256":
        single = str(resources[0]["digest"]).lower()
    return SignedModel((root.lower(),), single, str(subjects[0].get("name", "")))


def peek_subjects(payload: bytes) -> tuple[tuple[str, ...], str]:
    """Subject digests and single-file digest of a payload that failed verification, only to say which
    model a failure is for."""
    try:
        statement = json.loads(payload)
        found = [
            s["digest"]["sha256"].lower()
            for s in statement.get("subject", [])
            if isinstance(s.get("digest", {}).get("sha256"), str)
        ]
        resources = statement.get("predicate", {}).get("resources")
        single = ""
        if isinstance(resources, list) and len(resources) == 1 and resources[0].get("algorithm") == "sha256":
            single = str(resources[0].get("digest", "")).lower()
    except (ValueError, UnicodeDecodeError, AttributeError, TypeError):
        return (), ""
    return tuple(d for d in found if _HEX64.match(d)), single if _HEX64.match(single) else ""
