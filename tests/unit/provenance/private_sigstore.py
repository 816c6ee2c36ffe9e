"""A private Sigstore deployment built with ``cryptography``: a Fulcio-like CA that issues short-lived
certificates for an OIDC identity (with an embedded SCT from a CT-log-like key), a Rekor-like log key
that records DSSE entries (inclusion proof, signed checkpoint, signed entry timestamp), the
``trusted_root.json`` that describes them, and keyless bundles signed under them.

Sigstore's own signing clients need a live Fulcio and Rekor, so the bundles are assembled as the
Sigstore bundle specification (v0.3) and the Rekor ``dsse`` v0.0.1 entry type describe them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import rfc8785
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from policyengine.provenance import IN_TOTO_PAYLOAD_TYPE, pae

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
ISSUER_V1 = ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
ISSUER_V2 = ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
SCT_LIST = ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")
ORIGIN = "rekor.private.example - 42"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def der(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_id(key: ec.EllipticCurvePublicKey) -> bytes:
    return hashlib.sha256(der(key)).digest()


def der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def der_tlv(tag: int, data: bytes) -> bytes:
    return bytes([tag]) + der_length(len(data)) + data


def ecdsa(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    return key.sign(data, ec.ECDSA(hashes.SHA256()))


@dataclass
class PrivateSigstore:
    """The keys of a private Sigstore instance; ``sign`` makes keyless bundles under it."""

    ca_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP384R1())
    )
    ct_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    log_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    start: datetime = datetime(2024, 1, 1, tzinfo=UTC)

    def __post_init__(self) -> None:
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "private.example"),
                x509.NameAttribute(NameOID.COMMON_NAME, "private-fulcio"),
            ]
        )
        public = self.ca_key.public_key()
        self.ca = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.start)
            .not_valid_after(self.start + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .sign(self.ca_key, hashes.SHA384())
        )

    # --- the trust root -------------------------------------------------------------------------------

    def trusted_root(self) -> dict[str, Any]:
        valid = {"start": self.start.strftime("%Y-%m-%dT%H:%M:%SZ")}

        def log(url: str, key: ec.EllipticCurvePrivateKey) -> dict[str, Any]:
            public = key.public_key()
            return {
                "baseUrl": url,
                "hashAlgorithm": "SHA2_256",
                "publicKey": {
                    "rawBytes": b64(der(public)),
                    "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                    "validFor": valid,
                },
                "logId": {"keyId": b64(key_id(public))},
            }

        return {
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [log("https://rekor.private.example", self.log_key)],
            "certificateAuthorities": [
                {
                    "subject": {"organization": "private.example", "commonName": "private-fulcio"},
                    "uri": "https://fulcio.private.example",
                    "certChain": {
                        "certificates": [{"rawBytes": b64(self.ca.public_bytes(serialization.Encoding.DER))}]
                    },
                    "validFor": valid,
                }
            ],
            "ctlogs": [log("https://ctfe.private.example", self.ct_key)],
            "timestampAuthorities": [],
        }

    def write_trusted_root(self, path: Path) -> Path:
        path.write_text(json.dumps(self.trusted_root(), indent=2))
        return path

    # --- Fulcio: a short-lived certificate for an OIDC identity, with an embedded SCT ---------------------

    def certificate(
        self, key: ec.EllipticCurvePrivateKey, identity: str, issuer: str, when: datetime
    ) -> x509.Certificate:
        san: x509.GeneralName = (
            x509.UniformResourceIdentifier(identity) if "://" in identity else x509.RFC822Name(identity)
        )
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(when - timedelta(minutes=1))
            .not_valid_after(when + timedelta(minutes=9))
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.ca_key.public_key()), critical=False
            )
            .add_extension(x509.SubjectAlternativeName([san]), critical=True)
            .add_extension(x509.UnrecognizedExtension(ISSUER_V1, issuer.encode()), critical=False)
            .add_extension(
                x509.UnrecognizedExtension(ISSUER_V2, der_tlv(0x0C, issuer.encode())), critical=False
            )
        )
        precert = builder.sign(self.ca_key, hashes.SHA384())
        sct = self._sct(precert.tbs_certificate_bytes, when)
        return builder.add_extension(
            x509.UnrecognizedExtension(SCT_LIST, der_tlv(0x04, struct.pack("!H", len(sct) + 2) + _u16(sct))),
            critical=False,
        ).sign(self.ca_key, hashes.SHA384())

    def _sct(self, tbs: bytes, when: datetime) -> bytes:
        """One RFC 6962 SCT over the precertificate's TBS, signed by the CT log key."""
        millis = int(when.timestamp() * 1000)
        issuer_key_hash = key_id(self.ca_key.public_key())
        entry = issuer_key_hash + struct.pack("!I", len(tbs))[1:] + tbs
        signed = struct.pack("!BBQH", 0, 0, millis, 1) + entry + struct.pack("!H", 0)
        signature = ecdsa(self.ct_key, signed)
        log_id = key_id(self.ct_key.public_key())
        # version, log id, timestamp, no extensions, then sha256 (4) + ecdsa (3) and the signature.
        return (
            struct.pack("!B", 0) + log_id + struct.pack("!QH", millis, 0) + struct.pack("!BB", 4, 3)
        ) + _u16(signature)

    # --- Rekor: a dsse entry in a one-leaf log ------------------------------------------------------------

    def log_entry(
        self, envelope: dict[str, Any], signature: bytes, cert: x509.Certificate, when: datetime
    ) -> dict[str, Any]:
        payload = base64.b64decode(envelope["payload"])
        pem = cert.public_bytes(serialization.Encoding.PEM)
        body = rfc8785.dumps(
            {
                "apiVersion": "0.0.1",
                "kind": "dsse",
                "spec": {
                    "envelopeHash": {
                        "algorithm": "sha256",
                        "value": hashlib.sha256(json.dumps(envelope).encode()).hexdigest(),
                    },
                    "payloadHash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()},
                    "signatures": [{"signature": b64(signature), "verifier": b64(pem)}],
                },
            }
        )
        log_id = key_id(self.log_key.public_key())
        integrated = int(when.timestamp())
        root = hashlib.sha256(b"\x00" + body).digest()  # a one-leaf tree: the root is the leaf hash
        note = f"{ORIGIN}\n1\n{b64(root)}\n"
        checkpoint = (
            note + f"\n\u2014 {ORIGIN.split()[0]} {b64(log_id[:4] + ecdsa(self.log_key, note.encode()))}\n"
        )
        promise = rfc8785.dumps(
            {"body": b64(body), "integratedTime": integrated, "logID": log_id.hex(), "logIndex": 0}
        )
        return {
            "logIndex": "0",
            "logId": {"keyId": b64(log_id)},
            "kindVersion": {"kind": "dsse", "version": "0.0.1"},
            "integratedTime": str(integrated),
            "inclusionPromise": {"signedEntryTimestamp": b64(ecdsa(self.log_key, promise))},
            "inclusionProof": {
                "logIndex": "0",
                "rootHash": b64(root),
                "treeSize": "1",
                "hashes": [],
                "checkpoint": {"envelope": checkpoint},
            },
            "canonicalizedBody": b64(body),
        }

    # --- a keyless bundle ---------------------------------------------------------------------------------

    def sign(self, payload: bytes, identity: str, issuer: str, when: datetime | None = None) -> bytes:
        """A v0.3 bundle: the DSSE envelope signed by an ephemeral key certified for ``identity``."""
        when = when or self.start + timedelta(days=30)
        key = ec.generate_private_key(ec.SECP256R1())
        cert = self.certificate(key, identity, issuer, when)
        signature = ecdsa(key, pae(IN_TOTO_PAYLOAD_TYPE, payload))
        envelope = {
            "payload": b64(payload),
            "payloadType": IN_TOTO_PAYLOAD_TYPE,
            "signatures": [{"sig": b64(signature)}],
        }
        bundle = {
            "mediaType": BUNDLE_MEDIA_TYPE,
            "verificationMaterial": {
                "certificate": {"rawBytes": b64(cert.public_bytes(serialization.Encoding.DER))},
                "tlogEntries": [self.log_entry(envelope, signature, cert, when)],
            },
            "dsseEnvelope": envelope,
        }
        return json.dumps(bundle).encode()


def _u16(data: bytes) -> bytes:
    return struct.pack("!H", len(data)) + data
