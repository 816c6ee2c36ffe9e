"""Bundles written by the reference implementation (the ``model_signing`` package, key and certificate
modes, offline) are verified by our code; tampering with what it wrote is caught."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from policyengine.provenance import AttestationStore, TrustedKey, verify_bundle

NOW = datetime.now(UTC)
ms_signing = pytest.importorskip("model_signing.signing", reason="model-signing is a test extra")


def write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> Path:
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.write_bytes(pem)
    return path


def public(name: str, key: ec.EllipticCurvePrivateKey) -> TrustedKey:
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return TrustedKey.from_pem(name, pem)


@pytest.fixture
def model(tmp_path: Path) -> Path:
    root = tmp_path / "model"
    (root / "tokenizer").mkdir(parents=True)
    (root / "config.json").write_text('{"layers": 2}')
    (root / "weights.safetensors").write_bytes(bytes(range(256)) * 4)
    (root / "tokenizer" / "vocab.txt").write_text("a\nb\n")
    return root


def payload_of(sig: Path) -> dict[str, object]:
    return json.loads(base64.b64decode(json.loads(sig.read_bytes())["dsseEnvelope"]["payload"]))  # type: ignore[no-any-return]


@pytest.mark.parametrize("curve", [ec.SECP256R1(), ec.SECP384R1()], ids=["p256", "p384"])
def test_key_mode_bundles_from_model_signing_verify(
    model: Path, tmp_path: Path, curve: ec.EllipticCurve
) -> None:
    key = ec.generate_private_key(curve)
    sig = tmp_path / "model.sig"
    ms_signing.Config().use_elliptic_key_signer(private_key=write_key(tmp_path / "k.pem", key)).sign(
        model, sig
    )

    verdict = verify_bundle(sig.read_bytes(), [public("ml-release", key)], at=NOW)
    assert (verdict.verified, verdict.signer, verdict.reason) == (True, "ml-release", "")
    # The model digest is sha256 over the per-file digests in manifest (name) order.
    files = sorted(p for p in model.rglob("*") if p.is_file())
    expected = hashlib.sha256(b"".join(hashlib.sha256(p.read_bytes()).digest() for p in files)).hexdigest()
    assert verdict.subject_digests == (expected,)
    assert verdict.model_name == "model"


def test_tampering_with_a_model_signing_bundle_is_caught(model: Path, tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    sig = tmp_path / "model.sig"
    ms_signing.Config().use_elliptic_key_signer(private_key=write_key(tmp_path / "k.pem", key)).sign(
        model, sig
    )
    bundle = json.loads(sig.read_bytes())
    statement = payload_of(sig)
    statement["subject"][0]["digest"]["sha256"] = "00" * 32  # type: ignore[index]
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()

    tampered = verify_bundle(json.dumps(bundle).encode(), [public("k", key)], at=NOW)
    assert tampered.reason == "signature does not verify under any trusted key"
    wrong_key = verify_bundle(
        sig.read_bytes(), [public("k", ec.generate_private_key(ec.SECP256R1()))], at=NOW
    )
    assert wrong_key.reason == "signature does not verify under any trusted key"


def test_a_single_file_model_is_covered_by_its_file_digest(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    weights = tmp_path / "model.gguf"
    weights.write_bytes(b"gguf" * 100)
    sig = tmp_path / "sigs" / "model.gguf.sig"
    sig.parent.mkdir()
    ms_signing.Config().use_elliptic_key_signer(private_key=write_key(tmp_path / "k.pem", key)).sign(
        weights, sig
    )

    store = AttestationStore.from_directory(sig.parent, [public("release", key)])
    assert store.lookup(hashlib.sha256(weights.read_bytes()).hexdigest(), NOW) == {
        "verified": True,
        "signer": "release",
        "reason": "",
        "mode": "key",
        "identity": "",
        "issuer": "",
    }


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool,
) -> x509.Certificate:
    now = datetime.now(UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer[0].subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False
        )
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256())


def test_certificate_mode_bundles_from_model_signing_verify(model: Path, tmp_path: Path) -> None:
    root_key, int_key, leaf_key = (ec.generate_private_key(ec.SECP384R1()) for _ in range(3))
    root = _cert("root-ca", root_key, None, ca=True)
    intermediate = _cert("intermediate-ca", int_key, (root, root_key), ca=True)
    leaf = _cert("ml-release", leaf_key, (intermediate, int_key), ca=False)
    (tmp_path / "leaf.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "int.pem").write_bytes(intermediate.public_bytes(serialization.Encoding.PEM))
    sig = tmp_path / "model.sig"
    ms_signing.Config().use_certificate_signer(
        private_key=write_key(tmp_path / "leaf-key.pem", leaf_key),
        signing_certificate=tmp_path / "leaf.pem",
        certificate_chain=[tmp_path / "int.pem"],
    ).sign(model, sig)

    verdict = verify_bundle(sig.read_bytes(), [], [root], at=NOW)
    assert (verdict.verified, verdict.signer) == (True, "CN=ml-release")
    other_root = _cert("other", ec.generate_private_key(ec.SECP384R1()), None, ca=True)
    refused = verify_bundle(sig.read_bytes(), [], [other_root], at=NOW)
    assert refused.reason == "certificate chain does not lead to a configured CA certificate"
