"""Model provenance: verify OpenSSF model-signing (OMS) bundles and answer "is this model digest signed?".

An OMS signature is a Sigstore bundle (``application/vnd.dev.sigstore.bundle.v0.3+json``) whose
``dsseEnvelope`` carries an in-toto Statement v1 with predicate type ``https://model_signing/signature/v1.0``.
The statement has one subject, the model, whose ``sha256`` digest is the SHA-256 of the concatenated raw
bytes of every resource digest listed in ``predicate.resources`` (in manifest order); each resource is one
file (or shard) of the model with its own digest. ``verify_bundle`` checks, in order: the bundle parses;
the DSSE signature over the PAE encoding (``DSSEv1 <len> <type> <len> <payload>``) verifies under a
trusted public key (ECDSA P-256/P-384/P-521 with SHA-256/384/512 by curve, Ed25519, RSA PKCS#1 v1.5 or
PSS), or under the leaf of an ``x509CertificateChain`` that chains to a configured CA certificate; the
statement type and predicate type are the OMS ones; and the subject digest equals the digest recomputed
from the resources (a bundle whose listed files do not add up to its model digest is not trusted).

Digest coverage rule, used by ``AttestationStore.lookup(sha256_hex)``: a model reference pinned by
``@sha256:<hex>`` is covered when a verified bundle's subject ``sha256`` (the model-level digest) equals
it; or when the bundle lists exactly one resource, hashed with ``sha256``, whose digest equals it (a
single-file model, where the file's digest identifies the whole signed model). A per-file digest of a
multi-file model does not cover a reference: it would vouch for one file, not for the model.

Certificate chains are checked at the leaf's ``notBefore`` unless the caller passes ``at``, as model-signing
does: without a trusted timestamp the signing time is unknown, and a leaf that expired after signing must
not void a good signature. Out of scope: keyless Sigstore (Fulcio certificates, Rekor transparency-log
entries and RFC 3161 timestamps are not checked, so such bundles come back unverified with that reason),
the pre-1.0 ``https://model_signing/Digests/v0.1`` predicate, and the v0.2 library's buggy PAE.

Everything here is pure except ``AttestationStore.from_directory``, which reads the bundle files of one
directory given by the caller.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

__all__ = [
    "IN_TOTO_PAYLOAD_TYPE",
    "OMS_PREDICATE_TYPE",
    "AttestationStore",
    "BundleVerdict",
    "TrustedKey",
    "load_ca_certificates",
    "pae",
    "trusted_keys_from_config",
    "verify_bundle",
]

BUNDLE_MEDIA_TYPES = frozenset(
    {"application/vnd.dev.sigstore.bundle.v0.3+json", "application/vnd.dev.sigstore.bundle+json;version=0.3"}
)
IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
IN_TOTO_STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
OMS_PREDICATE_TYPE = "https://model_signing/signature/v1.0"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_URLSAFE_B64 = re.compile(r"^[A-Za-z0-9_-]*={0,2}$")

PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey


@dataclass(frozen=True)
class TrustedKey:
    """A named public key the operator trusts to sign models."""

    name: str
    key: PublicKey

    @classmethod
    def from_pem(cls, name: str, pem: str | bytes) -> TrustedKey:
        data = pem.encode() if isinstance(pem, str) else pem
        key = serialization.load_pem_public_key(data)
        if not isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey):
            raise ValueError(f"trusted key {name!r}: unsupported key type {type(key).__name__}")
        if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name not in _EC_HASHES:
            raise ValueError(f"trusted key {name!r}: unsupported curve {key.curve.name}")
        return cls(name, key)

    @property
    def hint(self) -> str:
        """model-signing's key hint: SHA-256 hex of the PEM SubjectPublicKeyInfo."""
        pem = self.key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return hashlib.sha256(pem).hexdigest()


def trusted_keys_from_config(entries: Iterable[Any]) -> list[TrustedKey]:
    """Keys from ``spec.models.trustedKeys`` entries ``{name, publicKey: PEM}``. Entries given as file
    paths must be read by the loader first; a bad entry raises ValueError naming it."""
    keys = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, Mapping) or not isinstance(entry.get("publicKey"), str):
            raise ValueError(f"trustedKeys[{i}]: expected {{name, publicKey}} with a PEM public key")
        name = str(entry.get("name") or f"trustedKeys[{i}]")
        try:
            keys.append(TrustedKey.from_pem(name, entry["publicKey"]))
        except (ValueError, UnsupportedAlgorithm) as e:
            raise ValueError(f"trustedKeys[{i}] ({name}): {e}") from e
    return keys


def load_ca_certificates(pem: bytes) -> list[x509.Certificate]:
    """Every certificate in a PEM bundle (raises ValueError on malformed PEM)."""
    return x509.load_pem_x509_certificates(pem)


@dataclass(frozen=True)
class BundleVerdict:
    verified: bool
    signer: str  # the trusted key's name, or the certificate subject
    reason: str  # why not verified; "" when verified
    subject_digests: tuple[str, ...] = ()  # statement subject sha256 hex (read even when unverified)
    single_file_digest: str = ""  # the one resource's sha256 hex, for a single-file model
    model_name: str = ""

    def covers(self, sha256_hex: str) -> bool:
        """The digest coverage rule of the module docstring (ignores ``verified``)."""
        digest = sha256_hex.lower()
        return digest in self.subject_digests or (bool(digest) and digest == self.single_file_digest)

    def as_lookup(self) -> dict[str, Any]:
        return {"verified": self.verified, "signer": self.signer, "reason": self.reason}


class _Unverified(Exception):
    """Internal: a reason the bundle is not verified (never escapes this module)."""


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE pre-authentication encoding: lengths are byte lengths in ASCII decimal."""
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


_EC_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "secp256r1": hashes.SHA256,
    "secp384r1": hashes.SHA384,
    "secp521r1": hashes.SHA512,
}


def _signature_ok(key: PublicKey, signature: bytes, message: bytes) -> bool:
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, message)
            return True
        if isinstance(key, ec.EllipticCurvePublicKey):
            algorithm = _EC_HASHES.get(key.curve.name)
            if algorithm is None:
                return False
            key.verify(signature, message, ec.ECDSA(algorithm()))
            return True
    except InvalidSignature:
        return False
    # RSA: the bundle does not say which padding or hash was used, so try what Sigstore allows.
    for algorithm in (hashes.SHA256, hashes.SHA384, hashes.SHA512):
        paddings: tuple[padding.AsymmetricPadding, ...] = (
            padding.PKCS1v15(),
            padding.PSS(mgf=padding.MGF1(algorithm()), salt_length=padding.PSS.AUTO),
        )
        for pad in paddings:
            try:
                key.verify(signature, message, pad, algorithm())
                return True
            except InvalidSignature:
                continue
    return False


def _b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise _Unverified(f"malformed bundle: {what} is not a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        pass
    # DSSE allows URL-safe base64 too; the decoder would silently drop foreign characters, so check first.
    if _URLSAFE_B64.match(value):
        try:
            return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        except (binascii.Error, ValueError):
            pass
    raise _Unverified(f"malformed bundle: {what} is not valid base64")


def _valid_at(cert: x509.Certificate, when: datetime) -> bool:
    return cert.not_valid_before_utc <= when <= cert.not_valid_after_utc


def _chain_signer(
    chain: Sequence[x509.Certificate], cas: Sequence[x509.Certificate], at: datetime | None
) -> tuple[PublicKey, str]:
    """The leaf's key and subject once the chain (leaf first, then intermediates) reaches a trusted CA."""
    leaf = chain[0]
    when = at or leaf.not_valid_before_utc
    if not _valid_at(leaf, when):
        raise _Unverified(f"signing certificate is not valid at {when.isoformat()}")
    if not _can_sign(leaf):
        raise _Unverified("signing certificate allows neither digitalSignature nor codeSigning")
    current, pool = leaf, list(chain[1:])
    for _ in range(len(chain) + 1):
        for ca in cas:
            if _issued_by(current, ca) and _valid_at(ca, when):
                return _leaf_key(leaf), leaf.subject.rfc4514_string()
        issuer = next((c for c in pool if _issued_by(current, c) and _is_ca(c) and _valid_at(c, when)), None)
        if issuer is None:
            break
        pool.remove(issuer)
        current = issuer
    raise _Unverified("certificate chain does not lead to a configured CA certificate")


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    if cert == issuer:
        return True  # the configured CA is itself the signing certificate
    try:
        cert.verify_directly_issued_by(issuer)
        return True
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _can_sign(cert: x509.Certificate) -> bool:
    try:
        if cert.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature:
            return True
    except x509.ExtensionNotFound:
        pass
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        return ExtendedKeyUsageOID.CODE_SIGNING in eku
    except x509.ExtensionNotFound:
        return False


def _leaf_key(cert: x509.Certificate) -> PublicKey:
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey):
        raise _Unverified(f"signing certificate has an unsupported key type {type(key).__name__}")
    return key


def _certificates(material: Mapping[str, Any]) -> list[x509.Certificate]:
    """The bundle's certificates, signing certificate first."""
    entries = material["x509CertificateChain"].get("certificates")
    raw = [
        c.get("rawBytes") if isinstance(c, Mapping) else None
        for c in (entries if isinstance(entries, list) else [])
    ]
    if not raw:
        raise _Unverified("malformed bundle: empty certificate chain")
    try:
        return [x509.load_der_x509_certificate(_b64(r, "certificate rawBytes")) for r in raw]
    except ValueError as e:
        raise _Unverified(f"malformed bundle: certificate does not parse ({e})") from e


def _statement(payload: bytes) -> tuple[tuple[str, ...], str, str]:
    """(subject sha256 digests, single-file digest, model name) of a valid OMS v1.0 statement."""
    try:
        statement = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as e:
        raise _Unverified("malformed statement: the DSSE payload is not JSON") from e
    if not isinstance(statement, Mapping):
        raise _Unverified("malformed statement: the DSSE payload is not a JSON object")
    if statement.get("_type") != IN_TOTO_STATEMENT_TYPE:
        raise _Unverified(f"statement type {statement.get('_type')!r} is not {IN_TOTO_STATEMENT_TYPE}")
    if statement.get("predicateType") != OMS_PREDICATE_TYPE:
        raise _Unverified(f"predicate type {statement.get('predicateType')!r} is not {OMS_PREDICATE_TYPE}")
    subjects = statement.get("subject")
    if not isinstance(subjects, list) or len(subjects) != 1 or not isinstance(subjects[0], Mapping):
        raise _Unverified("malformed statement: an OMS statement has exactly one subject, the model")
    digest = subjects[0].get("digest")
    root = digest.get("sha256") if isinstance(digest, Mapping) else None
    if not isinstance(root, str) or not _HEX64.match(root.lower()):
        raise _Unverified("malformed statement: the subject has no sha256 digest")
    predicate = statement.get("predicate")
    resources = predicate.get("resources") if isinstance(predicate, Mapping) else None
    if not isinstance(resources, list) or not resources:
        raise _Unverified("malformed statement: predicate.resources lists no model files")
    hasher = hashlib.sha256()
    for i, r in enumerate(resources):
        value = r.get("digest") if isinstance(r, Mapping) else None
        try:
            hasher.update(bytes.fromhex(value if isinstance(value, str) else ""))
        except ValueError as e:
            raise _Unverified(f"malformed statement: predicate.resources[{i}].digest is not hex") from e
        if not value:
            raise _Unverified(f"malformed statement: predicate.resources[{i}] has no digest")
    if hasher.hexdigest() != root.lower():
        raise _Unverified(
            f"digest mismatch: the subject digest {root.lower()} is not the digest of the listed files "
            f"({hasher.hexdigest()})"
        )
    single = ""
    if len(resources) == 1 and resources[0].get("algorithm") == "sha256":
        single = str(resources[0]["digest"]).lower()
    return (root.lower(),), single, str(subjects[0].get("name", ""))


def _peek_subjects(payload: bytes) -> tuple[str, ...]:
    """Subject digests of a payload that failed verification, only to say which model a failure is for."""
    try:
        statement = json.loads(payload)
        found = [
            s["digest"]["sha256"].lower()
            for s in statement.get("subject", [])
            if isinstance(s.get("digest", {}).get("sha256"), str)
        ]
    except (ValueError, UnicodeDecodeError, AttributeError, TypeError):
        return ()
    return tuple(d for d in found if _HEX64.match(d))


def verify_bundle(
    bundle_bytes: bytes,
    trusted_keys: Sequence[TrustedKey],
    ca_certs: Sequence[x509.Certificate] = (),
    *,
    at: datetime | None = None,
) -> BundleVerdict:
    """Verify one OMS bundle. Never raises: every failure is an unverified verdict with a reason."""
    payload = b""
    try:
        try:
            bundle = json.loads(bundle_bytes)
        except (ValueError, UnicodeDecodeError) as e:
            raise _Unverified("malformed bundle: not JSON") from e
        if not isinstance(bundle, Mapping):
            raise _Unverified("malformed bundle: not a JSON object")
        if bundle.get("mediaType") not in BUNDLE_MEDIA_TYPES:
            raise _Unverified(f"unsupported bundle media type {bundle.get('mediaType')!r}")
        envelope = bundle.get("dsseEnvelope")
        material = bundle.get("verificationMaterial")
        if not isinstance(envelope, Mapping) or not isinstance(material, Mapping):
            raise _Unverified("malformed bundle: dsseEnvelope or verificationMaterial missing")
        if envelope.get("payloadType") != IN_TOTO_PAYLOAD_TYPE:
            raise _Unverified(
                f"DSSE payload type {envelope.get('payloadType')!r} is not {IN_TOTO_PAYLOAD_TYPE}"
            )
        payload = _b64(envelope.get("payload"), "dsseEnvelope.payload")
        sigs = envelope.get("signatures")
        if not isinstance(sigs, list) or not sigs:
            raise _Unverified("malformed bundle: the DSSE envelope has no signature")
        signatures = [_b64(s.get("sig") if isinstance(s, Mapping) else None, "signature") for s in sigs]
        signer = _verify_signature(
            material, pae(IN_TOTO_PAYLOAD_TYPE, payload), signatures, trusted_keys, ca_certs, at
        )
        subjects, single, name = _statement(payload)
        return BundleVerdict(True, signer, "", subjects, single, name)
    except _Unverified as e:
        return BundleVerdict(False, "", str(e), _peek_subjects(payload))


def _verify_signature(
    material: Mapping[str, Any],
    message: bytes,
    signatures: Sequence[bytes],
    trusted_keys: Sequence[TrustedKey],
    ca_certs: Sequence[x509.Certificate],
    at: datetime | None,
) -> str:
    if isinstance(material.get("publicKey"), Mapping):
        # The hint only orders the search: the signature, not the hint, decides.
        hint = material["publicKey"].get("hint")
        keys = sorted(trusted_keys, key=lambda k: k.hint != hint)
        for key in keys:
            if any(_signature_ok(key.key, sig, message) for sig in signatures):
                return key.name
        if not trusted_keys:
            raise _Unverified("no trusted keys are configured")
        raise _Unverified("signature does not verify under any trusted key")
    if isinstance(material.get("certificate"), Mapping):
        # The v0.3 single-certificate form is what keyless Sigstore signing (Fulcio + Rekor) produces.
        raise _Unverified(
            "keyless Sigstore bundles (Fulcio certificate, Rekor entry) are not supported; "
            "sign with a key or a CA-issued certificate chain"
        )
    if isinstance(material.get("x509CertificateChain"), Mapping):
        if not ca_certs:
            raise _Unverified("certificate-signed bundle but no CA certificates are configured")
        leaf_key, subject = _chain_signer(_certificates(material), ca_certs, at)
        if any(_signature_ok(leaf_key, sig, message) for sig in signatures):
            return subject
        raise _Unverified("signature does not verify under the signing certificate's key")
    raise _Unverified("malformed bundle: verificationMaterial has no publicKey or certificate")


@dataclass(frozen=True)
class AttestationStore:
    """Verified and unverified bundles, looked up by the model digest they cover."""

    verdicts: tuple[tuple[str, BundleVerdict], ...] = ()  # (source name, verdict)
    problems: tuple[str, ...] = field(default=())  # files that could not be read

    @classmethod
    def from_bundles(
        cls,
        bundles: Iterable[tuple[str, bytes]],
        trusted_keys: Sequence[TrustedKey],
        ca_certs: Sequence[x509.Certificate] = (),
        *,
        at: datetime | None = None,
    ) -> AttestationStore:
        return cls(
            tuple((name, verify_bundle(data, trusted_keys, ca_certs, at=at)) for name, data in bundles)
        )

    @classmethod
    def from_directory(
        cls,
        path: Path,
        trusted_keys: Sequence[TrustedKey],
        ca_certs: Sequence[x509.Certificate] = (),
        *,
        at: datetime | None = None,
    ) -> AttestationStore:
        """Read every ``*.sig`` and ``*.json`` file under ``path`` (recursively, in name order)."""
        bundles: list[tuple[str, bytes]] = []
        problems: list[str] = []
        if not path.is_dir():
            return cls((), (f"{path}: attestation directory not found",))
        for file in sorted(p for p in path.rglob("*") if p.suffix in (".sig", ".json") and p.is_file()):
            try:
                bundles.append((str(file), file.read_bytes()))
            except OSError as e:
                problems.append(f"{file}: {e.strerror or e}")
        store = cls.from_bundles(bundles, trusted_keys, ca_certs, at=at)
        return cls(store.verdicts, tuple(problems))

    def lookup(self, sha256_hex: str) -> dict[str, Any]:
        """``{"verified", "signer", "reason"}`` for a model digest: a verified covering bundle if any, else
        the reason the first covering bundle failed, else that no bundle covers it."""
        digest = sha256_hex.lower().removeprefix("sha256:")
        covering = [v for _, v in self.verdicts if v.covers(digest)]
        for verdict in covering:
            if verdict.verified:
                return verdict.as_lookup()
        if covering:
            return covering[0].as_lookup()
        return {
            "verified": False,
            "signer": "",
            "reason": f"no model-signing bundle in the attestation store covers sha256:{digest}",
        }
