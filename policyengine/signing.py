"""Signature primitives of model provenance: trusted public keys, the DSSE pre-authentication encoding,
signature checks by key type, and the ``Unverified`` reason every provenance check raises.

Pure: nothing here reads files or the clock. The cryptography package is imported when a key is read
or a signature checked: a run that verifies nothing (``check`` without trusted keys) does not load it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

__all__ = ["PublicKey", "TrustedKey", "Unverified", "b64", "pae", "signature_ok", "trusted_keys_from_config"]

_URLSAFE_B64 = re.compile(r"^[A-Za-z0-9_-]*={0,2}$")

PublicKey: TypeAlias = "ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey"

# The hash (of ``cryptography.hazmat.primitives.hashes``) that ECDSA signatures use on each curve.
EC_HASHES = {"secp256r1": "SHA256", "secp384r1": "SHA384", "secp521r1": "SHA512"}


class Unverified(Exception):
    """A reason a bundle is not verified (caught by ``provenance.verify_bundle``, never escapes it)."""


@dataclass(frozen=True)
class TrustedKey:
    """A named public key the operator trusts to sign models."""

    name: str
    key: PublicKey

    @classmethod
    def from_pem(cls, name: str, pem: str | bytes) -> TrustedKey:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

        data = pem.encode() if isinstance(pem, str) else pem
        key = serialization.load_pem_public_key(data)
        if not isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey):
            raise ValueError(f"trusted key {name!r}: unsupported key type {type(key).__name__}")
        if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name not in EC_HASHES:
            raise ValueError(f"trusted key {name!r}: unsupported curve {key.curve.name}")
        return cls(name, key)

    @property
    def hint(self) -> str:
        """model-signing's key hint: SHA-256 hex of the PEM SubjectPublicKeyInfo."""
        from cryptography.hazmat.primitives import serialization

        pem = self.key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return hashlib.sha256(pem).hexdigest()


def trusted_keys_from_config(entries: Iterable[Any]) -> list[TrustedKey]:
    """Keys from ``spec.models.trustedKeys`` entries ``{name, publicKey: PEM}``. Entries given as file
    paths must be read by the loader first; a bad entry raises ValueError naming it."""
    from cryptography.exceptions import UnsupportedAlgorithm

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


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE pre-authentication encoding: lengths are byte lengths in ASCII decimal."""
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def signature_ok(key: PublicKey, signature: bytes, message: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding

    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, message)
            return True
        if isinstance(key, ec.EllipticCurvePublicKey):
            name = EC_HASHES.get(key.curve.name)
            if name is None:
                return False
            algorithm: type[hashes.HashAlgorithm] = getattr(hashes, name)
            key.verify(signature, message, ec.ECDSA(algorithm()))
            return True
    except InvalidSignature:
        return False
    # RSA: the bundle does not say which padding or hash was used, so try what Sigstore allows.
    for rsa_hash in (hashes.SHA256, hashes.SHA384, hashes.SHA512):
        paddings: tuple[padding.AsymmetricPadding, ...] = (
            padding.PKCS1v15(),
            padding.PSS(mgf=padding.MGF1(rsa_hash()), salt_length=padding.PSS.AUTO),
        )
        for pad in paddings:
            try:
                key.verify(signature, message, pad, rsa_hash())
                return True
            except InvalidSignature:
                continue
    return False


def b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise Unverified(f"malformed bundle: {what} is not a base64 string")
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
    raise Unverified(f"malformed bundle: {what} is not valid base64")
