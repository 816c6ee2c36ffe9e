"""Client certificates and API-server tokens for the client-authentication end-to-end tests."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.helpers import run_policyengine


@dataclass(frozen=True)
class CA:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


def make_ca(name: str) -> CA:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    return CA(key, cert)


def client_cert(ca: CA, cn: str, out: Path, *, expired: bool = False) -> tuple[str, str]:
    """A client certificate for ``cn`` signed by ``ca``, written as (cert, key) files under ``out``."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    start, end = (
        (now - timedelta(days=10), now - timedelta(days=1))
        if expired
        else (now - timedelta(hours=1), now + timedelta(days=1))
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    out.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = out / f"{cn}.crt", out / f"{cn}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return str(cert_path), str(key_path)


@dataclass(frozen=True)
class SigningKey:
    kid: str
    key: ec.EllipticCurvePrivateKey

    def jwk(self) -> dict[str, Any]:
        public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.key.public_key()))
        return {**public, "kid": self.kid, "use": "sig", "alg": "ES256"}

    def token(self, **claims: Any) -> str:
        now = int(time.time())
        body = {
            "iss": "https://kubernetes.default.svc",
            "aud": "policyengine",
            "iat": now,
            "nbf": now - 5,
            "exp": now + 300,
        }
        body.update(claims)
        return jwt.encode(
            {k: v for k, v in body.items() if v is not None},
            self.key,
            algorithm="ES256",
            headers={"kid": self.kid},
        )


def signing_key(kid: str) -> SigningKey:
    return SigningKey(kid, ec.generate_private_key(ec.SECP256R1()))


def write_jwks(path: Path, *keys: SigningKey) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"keys": [k.jwk() for k in keys]}))
    tmp.replace(path)


def audit_keys(tmp: Path) -> Path:
    """A fresh audit signing key pair in ``tmp/keys`` (``audit.key`` signs the log)."""
    keys = tmp / "keys"
    done = run_policyengine("audit", "keygen", "--origin", "e2e.example/audit", "--out", str(keys))
    assert done.returncode == 0, done.stderr
    return keys


def audited_uids(audit_log: str) -> list[str]:
    """The request uids the audit log holds, read with ``policyengine audit query``."""
    out = run_policyengine("audit", "query", "--audit-log", audit_log, "--format", "json")
    assert out.returncode == 0, out.stderr
    return [e["uid"] for e in json.loads(out.stdout)]
