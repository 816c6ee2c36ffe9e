"""Keyless Sigstore model signatures: a Fulcio certificate for an OIDC identity, a Rekor transparency-log
entry and optionally RFC 3161 timestamps, verified offline by the ``sigstore`` library against a trust
root, then matched against the identities the operator trusts (``spec.models.trustedIdentities``).

The library (imported only when keyless trust is configured: it costs a CLI start a few hundred
milliseconds) checks everything cryptographic: the certificate chain to the trust root's Fulcio CAs at the
signing time (from the log entry's integrated time or a timestamp authority), the embedded SCT, the
Rekor inclusion proof, checkpoint and inclusion promise, the log entry's consistency with the bundle and
the DSSE signature. Nothing here reads the network: the trust root is the copy shipped inside the
``sigstore`` package (production or staging) or a ``trusted_root.json`` file the operator gives.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

import re2  # type: ignore[import-untyped]  # google-re2 ships no type information
from cryptography import x509
from cryptography.x509.oid import ObjectIdentifier

from policyengine.signing import Unverified

if TYPE_CHECKING:
    from sigstore.models import TrustedRoot
    from sigstore.verify import Verifier

__all__ = ["KeylessSignature", "KeylessTrust", "TrustedIdentity", "load_trust_root", "verify_keyless"]

# Bounds on operator-written strings (an identity is an e-mail or a URI; a pattern is a short regex) and
# on what a bundle's certificate may make us print.
MAX_IDENTITY = 1024
MAX_PATTERN = 1024
MAX_REGEX_MEMORY = 1 << 20  # RE2 refuses a pattern whose program needs more
MAX_SHOWN = 200  # characters of a certificate's identity or issuer quoted in a reason
MAX_REASON = 600
MAX_SANS = 16  # a Fulcio certificate carries one identity; more is not a signing certificate

# Where the sigstore package keeps the trust roots it ships (its TUF bootstrap copies).
_EMBEDDED = {
    "production": "https%3A%2F%2Ftuf-repo-cdn.sigstore.dev",
    "staging": "https%3A%2F%2Ftuf-repo-cdn.sigstage.dev",
}
_ISSUER_V1 = ObjectIdentifier("1.3.6.1.4.1.57264.1.1")  # raw string
_ISSUER_V2 = ObjectIdentifier("1.3.6.1.4.1.57264.1.8")  # DER UTF8String
_SAN_OTHERNAME = ObjectIdentifier("1.3.6.1.4.1.57264.1.7")  # Fulcio's username identities


@dataclass(frozen=True)
class TrustedIdentity:
    """Who may sign models: an OIDC issuer and a subject, exact or an RE2 pattern over the whole subject."""

    name: str
    issuer: str
    identity: str = ""
    pattern: Any = None  # compiled RE2, matched against the whole identity

    def matches(self, identity: str, issuer: str) -> bool:
        if issuer != self.issuer:
            return False
        if self.pattern is not None:
            return self.pattern.fullmatch(identity) is not None
        return identity == self.identity


def _compile(pattern: str) -> Any:
    options = re2.Options()
    options.log_errors = False
    options.max_mem = MAX_REGEX_MEMORY
    try:
        return re2.compile(pattern, options=options)
    except re2.error as err:
        reason = err.args[0] if err.args else err
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise ValueError(f"not an RE2 regular expression ({str(reason)[:MAX_SHOWN]})") from None


def identity_from_config(entry: Any, where: str) -> TrustedIdentity:
    """One ``trustedIdentities`` entry ``{name, issuer, identity | identityRegex}`` (``where`` names it
    when it has no name); raises ValueError naming the field."""
    if not isinstance(entry, Mapping):
        raise ValueError("expected {name, issuer, identity | identityRegex}")
    name, issuer = entry.get("name"), entry.get("issuer")
    identity, regex = entry.get("identity"), entry.get("identityRegex")
    if not isinstance(issuer, str) or not issuer or len(issuer) > MAX_IDENTITY:
        raise ValueError(f"issuer: give the OIDC issuer URL (at most {MAX_IDENTITY} characters)")
    if (identity is None) == (regex is None):
        raise ValueError("give exactly one of identity and identityRegex")
    label = str(name) if isinstance(name, str) and name else where
    if identity is not None:
        if not isinstance(identity, str) or not identity or len(identity) > MAX_IDENTITY:
            raise ValueError(f"identity: a non-empty string of at most {MAX_IDENTITY} characters")
        return TrustedIdentity(label, issuer, identity=identity)
    if not isinstance(regex, str) or not regex or len(regex) > MAX_PATTERN:
        raise ValueError(f"identityRegex: a non-empty pattern of at most {MAX_PATTERN} characters")
    try:
        return TrustedIdentity(label, issuer, identity=regex, pattern=_compile(regex))
    except ValueError as err:
        raise ValueError(f"identityRegex: {err}") from None


def load_trust_root(spec: str) -> TrustedRoot:
    """The Sigstore trust root ``production``, ``staging`` (both as shipped in the sigstore package,
    never refreshed over the network) or read from a ``trusted_root.json`` path; raises ValueError."""
    from sigstore.models import TrustedRoot
    from sigstore_models.trustroot import v1 as trustroot_v1

    try:
        if spec in _EMBEDDED:
            raw = resources.files("sigstore._store").joinpath(_EMBEDDED[spec], "trusted_root.json")
            return TrustedRoot(trustroot_v1.TrustedRoot.from_json(raw.read_bytes()))
        return TrustedRoot.from_file(spec)
    except OSError as err:
        raise ValueError(f"{spec}: {err.strerror or err}") from None
    except Exception as err:  # the library raises pydantic, JSON and its own errors for a bad file
        raise ValueError(f"{spec}: not a Sigstore trusted root ({_short(str(err))})") from None


@dataclass(frozen=True)
class KeylessTrust:
    """What keyless bundles are verified against: a trust root and the trusted identities."""

    root: TrustedRoot
    identities: tuple[TrustedIdentity, ...]
    root_name: str = "production"

    @functools.cached_property
    def verifier(self) -> Verifier:
        from sigstore.verify import Verifier

        return Verifier(trusted_root=self.root)


@dataclass(frozen=True)
class KeylessSignature:
    payload: bytes  # the DSSE payload the signature covers
    signer: str  # the trustedIdentities entry that matched
    identity: str
    issuer: str


class _IdentityPolicy:
    """The sigstore ``VerificationPolicy`` that accepts a certificate whose identity and issuer match a
    trusted identity, and remembers which."""

    def __init__(self, identities: Iterable[TrustedIdentity]) -> None:
        self.identities = tuple(identities)
        self.matched: TrustedIdentity | None = None
        self.identity = self.issuer = self.refusal = ""

    def verify(self, cert: x509.Certificate) -> None:
        identities, issuer = certificate_identity(cert)
        self.identity, self.issuer = (identities[0] if identities else ""), issuer
        for trusted in self.identities:
            for identity in identities:
                if trusted.matches(identity, issuer):
                    self.matched, self.identity = trusted, identity
                    return
        from sigstore.errors import VerificationError

        self.refusal = (
            f"signed by {_quote(self.identity)} (issuer {_quote(issuer)}), which matches no "
            "spec.models.trustedIdentities entry"
        )
        raise VerificationError(self.refusal)


def certificate_identity(cert: x509.Certificate) -> tuple[list[str], str]:
    """The identities (SAN e-mails, URIs, Fulcio usernames) and the OIDC issuer of a Fulcio certificate."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError):
        return [], _issuer(cert)
    names: list[str] = [*san.get_values_for_type(x509.RFC822Name)]
    names += san.get_values_for_type(x509.UniformResourceIdentifier)
    names += [
        o.value.decode("utf-8", "replace")
        for o in san.get_values_for_type(x509.OtherName)
        if o.type_id == _SAN_OTHERNAME
    ]
    return names[:MAX_SANS], _issuer(cert)


def _issuer(cert: x509.Certificate) -> str:
    for oid in (_ISSUER_V2, _ISSUER_V1):
        try:
            value = cert.extensions.get_extension_for_oid(oid).value
        except (x509.ExtensionNotFound, ValueError):
            continue
        raw = value.value if isinstance(value, x509.UnrecognizedExtension) else b""
        if oid == _ISSUER_V2:
            raw = _utf8_string(raw)
        return raw.decode("utf-8", "replace")
    return ""


def _utf8_string(der: bytes) -> bytes:
    """The contents of a DER UTF8String (tag 0x0C, short or long length); b"" if it is not one."""
    if len(der) < 2 or der[0] != 0x0C:
        return b""
    length, start = der[1], 2
    if length & 0x80:
        width = length & 0x7F
        if width == 0 or width > 2 or len(der) < 2 + width:
            return b""
        length, start = int.from_bytes(der[2 : 2 + width], "big"), 2 + width
    return der[start : start + length] if len(der) == start + length else b""


def verify_keyless(bundle_bytes: bytes, trust: KeylessTrust | None) -> KeylessSignature:
    """Verify a keyless bundle offline and match its signer; raises Unverified with the reason."""
    if trust is None or not trust.identities:
        raise Unverified(
            "keyless Sigstore bundle, but no spec.models.trustedIdentities are configured to say who may "
            "sign models"
        )
    from sigstore.errors import VerificationError
    from sigstore.models import Bundle

    try:
        bundle = Bundle.from_json(bundle_bytes)
    except Exception as err:  # pydantic, JSON, base64 and certificate parse errors of a hostile file
        raise Unverified(f"malformed Sigstore bundle: {_short(str(err))}") from None
    policy = _IdentityPolicy(trust.identities)
    try:
        _, payload = trust.verifier.verify_dsse(bundle, policy)  # examine_bundle checked the type
    except VerificationError as err:
        if policy.refusal:
            raise Unverified(policy.refusal) from None
        raise Unverified(
            f"keyless signature does not verify under the {trust.root_name} Sigstore trust root: "
            f"{_short(str(err))}"
        ) from None
    except Exception as err:  # the verifier's parsers meet attacker bytes: any failure is a refusal
        raise Unverified(f"keyless signature could not be verified: {_short(str(err))}") from None
    if policy.matched is None:  # unreachable: the library calls the policy before it returns
        raise Unverified("keyless signature verified without an identity check")
    return KeylessSignature(payload, policy.matched.name, policy.identity, policy.issuer)


def _quote(text: str) -> str:
    return repr(text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN] + "...")


# The library follows this phrase with a dump of the whole inclusion proof: the phrase is the reason.
_PROOF_MISMATCH = "inclusion proof contains invalid root hash"


def _short(text: str) -> str:
    text = " ".join(text.split())
    if _PROOF_MISMATCH in text:
        text = text[: text.index(_PROOF_MISMATCH) + len(_PROOF_MISMATCH)]
    return text if len(text) <= MAX_REASON else text[:MAX_REASON] + "..."
