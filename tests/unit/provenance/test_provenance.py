"""OMS bundle verification: bundles made by hand and by the reference model_signing package, plus the
upstream model-signing-spec test vectors, each verified (or refused with a reason) by our own code."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from policyengine.provenance import (
    IN_TOTO_PAYLOAD_TYPE,
    OMS_PREDICATE_TYPE,
    AttestationStore,
    TrustedKey,
    load_ca_certificates,
    pae,
    trusted_keys_from_config,
    verify_bundle,
)

MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey


def pem_of(key: PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def trusted(name: str, key: PrivateKey) -> TrustedKey:
    return TrustedKey.from_pem(name, pem_of(key))


def statement(files: dict[str, bytes], *, predicate_type: str = OMS_PREDICATE_TYPE) -> dict[str, Any]:
    """An OMS v1.0 statement as model_signing writes it: resources sorted by name, subject digest = sha256
    over the concatenated resource digests."""
    resources = [
        {"name": n, "algorithm": "sha256", "digest": hashlib.sha256(files[n]).hexdigest()}
        for n in sorted(files)
    ]
    root = hashlib.sha256(b"".join(bytes.fromhex(r["digest"]) for r in resources)).hexdigest()
    return {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "model", "digest": {"sha256": root}}],
        "predicateType": predicate_type,
        "predicate": {
            "resources": resources,
            "serialization": {"method": "files", "hash_type": "sha256", "allow_symlinks": False},
        },
    }


def sign_with(key: PrivateKey) -> Callable[[bytes], bytes]:
    def sign(message: bytes) -> bytes:
        if isinstance(key, ed25519.Ed25519PrivateKey):
            return key.sign(message)
        if isinstance(key, ec.EllipticCurvePrivateKey):
            algorithm = {256: hashes.SHA256(), 384: hashes.SHA384()}[key.curve.key_size]
            return key.sign(message, ec.ECDSA(algorithm))
        return key.sign(message, padding.PKCS1v15(), hashes.SHA256())

    return sign


def bundle(
    stmt: dict[str, Any] | bytes, sign: Callable[[bytes], bytes], material: dict[str, Any] | None = None
) -> bytes:
    payload = stmt if isinstance(stmt, bytes) else json.dumps(stmt).encode()
    sig = sign(pae(IN_TOTO_PAYLOAD_TYPE, payload))
    return json.dumps(
        {
            "mediaType": MEDIA_TYPE,
            "verificationMaterial": material or {"publicKey": {"hint": ""}, "tlogEntries": []},
            "dsseEnvelope": {
                "payload": base64.b64encode(payload).decode(),
                "payloadType": IN_TOTO_PAYLOAD_TYPE,
                "signatures": [{"sig": base64.b64encode(sig).decode(), "keyid": ""}],
            },
        }
    ).encode()


FILES = {"config.json": b"{}", "weights.safetensors": b"\x00" * 64}


def test_pae_is_the_dsse_v1_encoding() -> None:
    assert pae("application/example", b"hello world") == b"DSSEv1 19 application/example 11 hello world"
    assert pae("t", "é".encode()) == "DSSEv1 1 t 2 é".encode()  # lengths are byte lengths


@pytest.mark.parametrize(
    "key",
    [
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP384R1()),
        ed25519.Ed25519PrivateKey.generate(),
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
    ],
    ids=["ecdsa-p256", "ecdsa-p384", "ed25519", "rsa-pkcs1v15"],
)
def test_a_bundle_signed_by_a_trusted_key_verifies(key: PrivateKey) -> None:
    stmt = statement(FILES)
    verdict = verify_bundle(bundle(stmt, sign_with(key)), [trusted("release", key)], at=NOW)
    assert (verdict.verified, verdict.signer, verdict.reason) == (True, "release", "")
    assert verdict.subject_digests == (stmt["subject"][0]["digest"]["sha256"],)


def test_rsa_pss_signatures_verify() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def sign(message: bytes) -> bytes:
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)
        return key.sign(message, pss, hashes.SHA256())

    assert verify_bundle(bundle(statement(FILES), sign), [trusted("rsa", key)], at=NOW).verified


def test_the_signer_is_the_key_that_verifies_not_the_hint() -> None:
    good, other = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    hint = trusted("other", other).hint  # a misleading hint only orders the search
    data = bundle(statement(FILES), sign_with(good), {"publicKey": {"hint": hint}})
    verdict = verify_bundle(data, [trusted("other", other), trusted("good", good)], at=NOW)
    assert (verdict.verified, verdict.signer) == (True, "good")


def test_a_tampered_payload_is_not_verified() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    data = json.loads(bundle(statement(FILES), sign_with(key)))
    forged = statement({"weights.safetensors": b"evil"})
    data["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(forged).encode()).decode()
    verdict = verify_bundle(json.dumps(data).encode(), [trusted("k", key)], at=NOW)
    assert not verdict.verified
    assert verdict.reason == "signature does not verify under any trusted key"


def test_a_wrong_key_is_not_verified() -> None:
    signer, trusted_one = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    verdict = verify_bundle(bundle(statement(FILES), sign_with(signer)), [trusted("k", trusted_one)], at=NOW)
    assert not verdict.verified
    assert "does not verify under any trusted key" in verdict.reason


def test_no_trusted_key_means_unverified() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    assert (
        verify_bundle(bundle(statement(FILES), sign_with(key)), [], at=NOW).reason
        == "no trusted keys are configured"
    )


def test_a_subject_digest_that_is_not_the_files_digest_is_refused_even_when_signed() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    stmt = statement(FILES)
    stmt["subject"][0]["digest"]["sha256"] = "ab" * 32
    verdict = verify_bundle(bundle(stmt, sign_with(key)), [trusted("k", key)], at=NOW)
    assert not verdict.verified
    assert verdict.reason.startswith("digest mismatch: the subject digest abab")


def test_a_signed_statement_with_another_predicate_type_is_refused() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    stmt = statement(FILES, predicate_type="https://example.com/wrong-predicate/v1.0")
    verdict = verify_bundle(bundle(stmt, sign_with(key)), [trusted("k", key)], at=NOW)
    assert not verdict.verified
    assert "predicate type 'https://example.com/wrong-predicate/v1.0' is not" in verdict.reason


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"not json", "malformed bundle: not JSON"),
        (b"[]", "malformed bundle: not a JSON object"),
        (b"{}", "unsupported bundle media type None"),
        (
            json.dumps({"mediaType": MEDIA_TYPE}).encode(),
            "malformed bundle: dsseEnvelope or verificationMaterial",
        ),
        (
            json.dumps(
                {
                    "mediaType": MEDIA_TYPE,
                    "verificationMaterial": {"publicKey": {}},
                    "dsseEnvelope": {"payloadType": IN_TOTO_PAYLOAD_TYPE, "payload": "@@@", "signatures": []},
                }
            ).encode(),
            "malformed bundle: dsseEnvelope.payload is not valid base64",
        ),
        (
            json.dumps(
                {
                    "mediaType": MEDIA_TYPE,
                    "verificationMaterial": {"publicKey": {}},
                    "dsseEnvelope": {
                        "payloadType": IN_TOTO_PAYLOAD_TYPE,
                        "payload": "e30=",
                        "signatures": [],
                    },
                }
            ).encode(),
            "malformed bundle: the DSSE envelope has no signature",
        ),
        (
            json.dumps(
                {
                    "mediaType": MEDIA_TYPE,
                    "verificationMaterial": {"publicKey": {}},
                    "dsseEnvelope": {"payloadType": "text/plain", "payload": "e30=", "signatures": []},
                }
            ).encode(),
            "DSSE payload type 'text/plain' is not application/vnd.in-toto+json",
        ),
    ],
    ids=[
        "not-json",
        "not-object",
        "no-media-type",
        "no-envelope",
        "bad-base64",
        "no-signature",
        "payload-type",
    ],
)
def test_a_malformed_bundle_is_unverified_with_a_reason(data: bytes, reason: str) -> None:
    verdict = verify_bundle(data, [trusted("k", ec.generate_private_key(ec.SECP256R1()))], at=NOW)
    assert not verdict.verified
    assert verdict.reason.startswith(reason)


def test_a_signed_payload_that_is_not_a_statement_is_refused() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    verdict = verify_bundle(bundle(b"not json", sign_with(key)), [trusted("k", key)], at=NOW)
    assert verdict.reason == "malformed statement: the DSSE payload is not JSON"


# --- certificate mode --------------------------------------------------------------------------------------

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def make_cert(
    subject: str,
    key: PrivateKey,
    issuer: tuple[x509.Certificate, PrivateKey] | None,
    *,
    ca: bool,
    signing: bool = True,
    not_after: datetime = NOW + timedelta(days=365),
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    issuer_name, issuer_key = (issuer[0].subject, issuer[1]) if issuer else (name, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        others = "digital_signature content_commitment key_encipherment data_encipherment key_agreement"
        usage = dict.fromkeys([*others.split(), "crl_sign", "encipher_only", "decipher_only"], False)
        builder = builder.add_extension(x509.KeyUsage(key_cert_sign=True, **usage), critical=True)
    elif signing:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False
        )
    algorithm = None if isinstance(issuer_key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(issuer_key, algorithm)


class Pki:
    def __init__(self) -> None:
        self.root_key = ec.generate_private_key(ec.SECP384R1())
        self.root = make_cert("root-ca", self.root_key, None, ca=True)
        self.int_key = ec.generate_private_key(ec.SECP256R1())
        self.intermediate = make_cert("intermediate-ca", self.int_key, (self.root, self.root_key), ca=True)
        self.leaf_key = ec.generate_private_key(ec.SECP256R1())
        self.leaf = make_cert("ml-release", self.leaf_key, (self.intermediate, self.int_key), ca=False)

    def material(self, *certs: x509.Certificate) -> dict[str, Any]:
        chain = certs or (self.leaf, self.intermediate)
        raw = [base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode() for c in chain]
        return {"x509CertificateChain": {"certificates": [{"rawBytes": r} for r in raw]}, "tlogEntries": []}


def test_a_certificate_chain_to_a_configured_ca_verifies() -> None:
    pki = Pki()
    data = bundle(statement(FILES), sign_with(pki.leaf_key), pki.material())
    verdict = verify_bundle(data, [], [pki.root], at=NOW)
    assert (verdict.verified, verdict.signer) == (True, "CN=ml-release")


def test_a_certificate_chain_to_another_ca_is_refused() -> None:
    pki, other = Pki(), Pki()
    verdict = verify_bundle(
        bundle(statement(FILES), sign_with(pki.leaf_key), pki.material()), [], [other.root], at=NOW
    )
    assert verdict.reason == "certificate chain does not lead to a configured CA certificate"


def test_a_signature_by_another_key_than_the_leaf_is_refused() -> None:
    pki = Pki()
    data = bundle(statement(FILES), sign_with(ec.generate_private_key(ec.SECP256R1())), pki.material())
    assert (
        verify_bundle(data, [], [pki.root], at=NOW).reason
        == "signature does not verify under the signing certificate's key"
    )


def test_a_leaf_without_signing_usage_is_refused() -> None:
    pki = Pki()
    leaf = make_cert("web", pki.leaf_key, (pki.intermediate, pki.int_key), ca=False, signing=False)
    data = bundle(statement(FILES), sign_with(pki.leaf_key), pki.material(leaf, pki.intermediate))
    assert verify_bundle(data, [], [pki.root], at=NOW).reason == (
        "signing certificate CN=web has no extended key usage; "
        "model signatures require the codeSigning extended key usage"
    )
    lax = verify_bundle(data, [], [pki.root], at=NOW, require_code_signing=False)
    assert "neither digitalSignature nor codeSigning" in lax.reason


def test_certificate_validity_is_checked_at_the_given_time() -> None:
    pki = Pki()
    data = bundle(statement(FILES), sign_with(pki.leaf_key), pki.material())
    assert verify_bundle(data, [], [pki.root], at=NOW).verified
    late = verify_bundle(data, [], [pki.root], at=NOW + timedelta(days=400))
    assert late.reason.startswith("signing certificate CN=ml-release expired at 2027-01-01")
    early = verify_bundle(data, [], [pki.root], at=NOW - timedelta(days=2))
    assert early.reason.startswith("signing certificate CN=ml-release is not yet valid")


def test_certificate_mode_without_configured_cas_is_refused() -> None:
    pki = Pki()
    data = bundle(statement(FILES), sign_with(pki.leaf_key), pki.material())
    assert (
        verify_bundle(data, [], [], at=NOW).reason
        == "certificate-signed bundle but no CA certificates are configured"
    )


def test_ca_certificates_load_from_pem() -> None:
    pki = Pki()
    pem = pki.root.public_bytes(serialization.Encoding.PEM) + pki.intermediate.public_bytes(
        serialization.Encoding.PEM
    )
    assert load_ca_certificates(pem) == [pki.root, pki.intermediate]


# --- trusted keys from config ----------------------------------------------------------------------------


def test_trusted_keys_come_from_config_entries() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    keys = trusted_keys_from_config([{"name": "ml-release", "publicKey": pem_of(key).decode()}])
    assert [k.name for k in keys] == ["ml-release"]
    with pytest.raises(ValueError, match=r"trustedKeys\[0\]"):
        trusted_keys_from_config([{"name": "bad", "publicKey": "-----BEGIN PUBLIC KEY-----\nxx\n"}])
    with pytest.raises(ValueError, match=r"trustedKeys\[0\]: expected"):
        trusted_keys_from_config(["./keys/release.pub"])


# --- the store and the digest coverage rule ---------------------------------------------------------------


def test_lookup_covers_the_model_digest_of_a_verified_bundle(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    stmt = statement(FILES)
    (tmp_path / "llama").mkdir()
    (tmp_path / "llama" / "model.sig").write_bytes(bundle(stmt, sign_with(key)))
    (tmp_path / "notes.txt").write_text("ignored")
    store = AttestationStore.from_directory(tmp_path, [trusted("release", key)])
    root = stmt["subject"][0]["digest"]["sha256"]
    assert store.lookup(root, NOW) == {
        "verified": True,
        "signer": "release",
        "reason": "",
        "mode": "key",
        "identity": "",
        "issuer": "",
    }
    assert store.lookup(root.upper(), NOW)["verified"]  # hex case does not matter
    # A per-file digest of a multi-file model vouches for one file only: not covered.
    per_file = stmt["predicate"]["resources"][0]["digest"]
    assert (
        store.lookup(per_file, NOW)["reason"]
        == f"no model-signing bundle in the attestation store covers sha256:{per_file}"
    )


def test_lookup_covers_the_file_digest_of_a_single_file_model() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    store = AttestationStore.from_bundles(
        [("m.sig", bundle(statement({"m.gguf": b"w"}), sign_with(key)))], [trusted("k", key)]
    )
    assert store.lookup(hashlib.sha256(b"w").hexdigest(), NOW)["verified"]


def test_lookup_prefers_a_verified_bundle_and_otherwise_says_why_not() -> None:
    good, bad = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    stmt = statement(FILES)
    root = stmt["subject"][0]["digest"]["sha256"]
    forged = ("a.sig", bundle(stmt, sign_with(bad)))
    genuine = ("b.sig", bundle(stmt, sign_with(good)))
    assert AttestationStore.from_bundles([forged, genuine], [trusted("good", good)]).lookup(root, NOW)[
        "verified"
    ]
    only_forged = AttestationStore.from_bundles([forged], [trusted("good", good)]).lookup(root, NOW)
    assert only_forged == {
        "verified": False,
        "signer": "",
        "reason": "signature does not verify under any trusted key",
        "mode": "",
        "identity": "",
        "issuer": "",
    }


def test_a_missing_attestation_directory_is_a_problem_not_an_exception(tmp_path: Path) -> None:
    store = AttestationStore.from_directory(tmp_path / "absent", [])
    assert store.verdicts == ()
    assert store.problems == (f"{tmp_path / 'absent'}: attestation directory not found",)
    assert not store.lookup("00" * 32, NOW)["verified"]


# --- the upstream model-signing-spec test vectors ---------------------------------------------------------


def upstream(shared: Path, name: str) -> bytes:
    return (shared / "corpus" / "upstream" / "model-signing-spec" / name).read_bytes()


def upstream_chain(shared: Path) -> list[x509.Certificate]:
    data = json.loads(upstream(shared, "valid__certificate.bundle.json"))
    raw = data["verificationMaterial"]["x509CertificateChain"]["certificates"]
    return [x509.load_der_x509_certificate(base64.b64decode(c["rawBytes"])) for c in raw]


UPSTREAM_DIGEST = "92745110b1ab4368471cbe31664e10174e954b113a3df333db860317b2c6dec4"


def test_upstream_key_vector_verifies_under_its_public_key(shared: Path) -> None:
    # The vectors ship no key file, but key.bundle.json's hint is the hash of the signing certificate's
    # public key in certificate.bundle.json: the same P-384 key signed both.
    leaf = upstream_chain(shared)[0]
    key = TrustedKey.from_pem(
        "oms-test-vectors",
        leaf.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    )
    assert (
        key.hint
        == json.loads(upstream(shared, "valid__key.bundle.json"))["verificationMaterial"]["publicKey"]["hint"]
    )
    verdict = verify_bundle(upstream(shared, "valid__key.bundle.json"), [key], at=NOW)
    assert (verdict.verified, verdict.signer, verdict.subject_digests) == (
        True,
        "oms-test-vectors",
        (UPSTREAM_DIGEST,),
    )
    wrong = verify_bundle(
        upstream(shared, "valid__key.bundle.json"),
        [trusted("k", ec.generate_private_key(ec.SECP384R1()))],
        at=NOW,
    )
    assert wrong.reason == "signature does not verify under any trusted key"


def test_upstream_certificate_vector_verifies_against_its_issuing_ca(shared: Path) -> None:
    # The root CA is not part of the vectors, so the bundle's intermediate is configured as the anchor.
    leaf, intermediate = upstream_chain(shared)
    verdict = verify_bundle(upstream(shared, "valid__certificate.bundle.json"), [], [intermediate], at=NOW)
    assert (verdict.verified, verdict.signer) == (True, leaf.subject.rfc4514_string())
    assert verify_bundle(
        upstream(shared, "valid__certificate.bundle.json"), [], [Pki().root], at=NOW
    ).reason == ("certificate chain does not lead to a configured CA certificate")


def test_upstream_wrong_predicate_vector_is_refused(shared: Path) -> None:
    leaf = upstream_chain(shared)[0]
    key = TrustedKey("oms", leaf.public_key())  # type: ignore[arg-type]
    verdict = verify_bundle(upstream(shared, "invalid-payload__wrong-predicate.bundle.json"), [key], at=NOW)
    # The vector swapped the predicate without re-signing, so the signature already fails.
    assert not verdict.verified
    assert verdict.reason == "signature does not verify under any trusted key"


def test_upstream_keyless_sigstore_vector_needs_a_trusted_identity(shared: Path) -> None:
    # Keys and CAs do not vouch for keyless bundles: only spec.models.trustedIdentities does.
    verdict = verify_bundle(upstream(shared, "valid__sigstore.bundle.json"), [], [Pki().root], at=NOW)
    assert not verdict.verified
    assert verdict.reason == (
        "keyless Sigstore bundle, but no spec.models.trustedIdentities are configured to say who may "
        "sign models"
    )


def test_upstream_directory_loads_as_a_store(shared: Path) -> None:
    leaf, intermediate = upstream_chain(shared)
    key = TrustedKey("oms", leaf.public_key())  # type: ignore[arg-type]
    store = AttestationStore.from_directory(
        shared / "corpus" / "upstream" / "model-signing-spec", [key], [intermediate]
    )
    assert len(store.verdicts) == 4
    assert store.lookup(UPSTREAM_DIGEST, NOW)["verified"]
