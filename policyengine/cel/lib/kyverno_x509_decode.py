"""The work of Kyverno's ``x509.decode(pem)`` (``kyverno_x509``): an RSA certificate or certificate request
as the map Go's ``encoding/json`` makes of Kyverno's ``CertificateOutput`` (Go field names, ``[]byte`` as
base64, absent lists as null). Imported at the first call: it loads the X.509 half of ``cryptography``.
"""

from __future__ import annotations

import base64
from typing import Any

from celpy.adapter import json_to_cel
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID

from policyengine.cel.lib.dispatch import LibError

# Go's x509.KeyUsage bits and ExtKeyUsage values, in Go's order.
_KEY_USAGE = ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
              "key_agreement", "key_cert_sign", "crl_sign")  # fmt: skip
_EXT_KEY_USAGE = {
    ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE: 0, ExtendedKeyUsageOID.SERVER_AUTH: 1,
    ExtendedKeyUsageOID.CLIENT_AUTH: 2, ExtendedKeyUsageOID.CODE_SIGNING: 3,
    ExtendedKeyUsageOID.EMAIL_PROTECTION: 4, ExtendedKeyUsageOID.TIME_STAMPING: 8,
    ExtendedKeyUsageOID.OCSP_SIGNING: 9,
}  # fmt: skip
_NAME_FIELDS = (
    ("Country", NameOID.COUNTRY_NAME), ("Organization", NameOID.ORGANIZATION_NAME),
    ("OrganizationalUnit", NameOID.ORGANIZATIONAL_UNIT_NAME), ("Locality", NameOID.LOCALITY_NAME),
    ("Province", NameOID.STATE_OR_PROVINCE_NAME), ("StreetAddress", NameOID.STREET_ADDRESS),
    ("PostalCode", NameOID.POSTAL_CODE),
)  # fmt: skip
_RSA = 1  # Go's x509.RSA
# Name constraints and the AIA URLs, not read here: null, as Go leaves them for most certificates.
_UNREAD: dict[str, Any] = {
    "PermittedDNSDomainsCritical": False,
    **dict.fromkeys(
        ("PermittedDNSDomains", "ExcludedDNSDomains", "PermittedIPRanges", "ExcludedIPRanges",
         "PermittedEmailAddresses", "ExcludedEmailAddresses", "PermittedURIDomains", "ExcludedURIDomains",
         "OCSPServer", "IssuingCertificateURL"),
    ),
}  # fmt: skip


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


def _oid(oid: x509.ObjectIdentifier) -> list[int]:
    return [int(part) for part in oid.dotted_string.split(".")]


def _nil(items: list[Any]) -> list[Any] | None:
    return items or None


def _name(name: x509.Name) -> dict[str, Any]:
    out: dict[str, Any] = {
        k: _nil([str(a.value) for a in name.get_attributes_for_oid(oid)]) for k, oid in _NAME_FIELDS
    }
    serial = name.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
    common = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    out["SerialNumber"] = str(serial[-1].value) if serial else ""
    out["CommonName"] = str(common[-1].value) if common else ""
    out["Names"] = _nil([{"Type": _oid(a.oid), "Value": str(a.value)} for a in name])
    out["ExtraNames"] = None
    return out


def _ext(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> Any:
    try:
        return cert.extensions.get_extension_for_oid(oid).value
    except x509.ExtensionNotFound:
        return None


def _key_usage(cert: x509.Certificate) -> int:
    usage = _ext(cert, ExtensionOID.KEY_USAGE)
    if usage is None:
        return 0
    bits = sum(1 << i for i, attr in enumerate(_KEY_USAGE) if getattr(usage, attr))
    if usage.key_agreement:
        bits |= (128 if usage.encipher_only else 0) | (256 if usage.decipher_only else 0)
    return bits


def _public_key(key: Any) -> dict[str, Any]:
    if not isinstance(key, rsa.RSAPublicKey):
        raise LibError("certificate should use rsa algorithm")
    numbers = key.public_numbers()
    return {"N": str(numbers.n), "E": numbers.e}


def _names(san: Any) -> dict[str, Any]:
    return {
        "DNSNames": _nil(san.get_values_for_type(x509.DNSName)) if san else None,
        "EmailAddresses": _nil(san.get_values_for_type(x509.RFC822Name)) if san else None,
        "IPAddresses": _nil([str(ip) for ip in san.get_values_for_type(x509.IPAddress)]) if san else None,
    }


def _certificate(cert: x509.Certificate) -> dict[str, Any]:
    public = _public_key(cert.public_key())
    basic = _ext(cert, ExtensionOID.BASIC_CONSTRAINTS)
    san = _ext(cert, ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
    eku = _ext(cert, ExtensionOID.EXTENDED_KEY_USAGE)
    aki = _ext(cert, ExtensionOID.AUTHORITY_KEY_IDENTIFIER)
    policies = _ext(cert, ExtensionOID.CERTIFICATE_POLICIES)
    crl = _ext(cert, ExtensionOID.CRL_DISTRIBUTION_POINTS)
    path_len = -1 if basic is not None and basic.path_length is None else (basic.path_length if basic else 0)
    spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return {
        "Raw": _b64(cert.public_bytes(Encoding.DER)),
        "RawTBSCertificate": _b64(cert.tbs_certificate_bytes),
        "RawSubjectPublicKeyInfo": _b64(spki),
        "RawSubject": _b64(cert.subject.public_bytes()),
        "RawIssuer": _b64(cert.issuer.public_bytes()),
        "Signature": _b64(cert.signature),
        "PublicKeyAlgorithm": _RSA,
        "PublicKey": public,
        "SerialNumber": cert.serial_number
        if cert.serial_number < 1 << 63
        else cert.serial_number & ((1 << 64) - 1),
        "Issuer": _name(cert.issuer),
        "NotBefore": cert.not_valid_before_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "NotAfter": cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "KeyUsage": _key_usage(cert),
        "Extensions": _nil(
            [
                {"Id": _oid(e.oid), "Critical": e.critical, "Value": _b64(e.value.public_bytes())}
                for e in cert.extensions
            ]
        ),
        "ExtraExtensions": None,
        "ExtKeyUsage": _nil([_EXT_KEY_USAGE[u] for u in eku if u in _EXT_KEY_USAGE]) if eku else None,
        "BasicConstraintsValid": basic is not None,
        "IsCA": bool(basic.ca) if basic else False,
        "MaxPathLen": path_len,
        "MaxPathLenZero": path_len == 0,
        "AuthorityKeyId": _b64(aki.key_identifier) if aki is not None else None,
        **_names(san),
        **_UNREAD,
        "CRLDistributionPoints": _nil(
            [
                n.value
                for p in crl or ()
                for n in p.full_name or ()
                if isinstance(n, x509.UniformResourceIdentifier)
            ]
        ),
        "PolicyIdentifiers": _nil([_oid(p.policy_identifier) for p in policies or ()]),
    }


def decode(text: str) -> Any:
    """The certificate or certificate request PEM ``text`` as Kyverno maps it; raises LibError."""
    data = str(text).encode("utf-8", "surrogatepass")
    try:
        if b"-----BEGIN CERTIFICATE REQUEST-----" in data:
            csr = x509.load_pem_x509_csr(data)
            return json_to_cel(_request(csr))
        if b"-----BEGIN CERTIFICATE-----" not in data:
            raise LibError("failed to decode PEM block")
        return json_to_cel(_certificate(x509.load_pem_x509_certificate(data)))
    except ValueError as err:
        raise LibError(f"x509.decode: {str(err)[:200]}") from None


def _request(csr: x509.CertificateSigningRequest) -> dict[str, Any]:
    public = _public_key(csr.public_key())
    return {
        "Raw": _b64(csr.public_bytes(Encoding.DER)),
        "RawTBSCertificateRequest": _b64(csr.tbs_certrequest_bytes),
        "Signature": _b64(csr.signature),
        "PublicKeyAlgorithm": _RSA,
        "PublicKey": public,
        "Subject": _name(csr.subject),
    }


__all__ = ["decode"]
