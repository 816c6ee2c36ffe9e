"""Certificate chains of certificate-mode model signatures: from the bundle's leaf, through its
intermediates, to a configured CA certificate, and the time window in which the whole chain is valid.

Building the path does not read the clock: it checks what does not change with time (issuer signatures,
CA basic constraints and path lengths, the leaf's key usage and codeSigning EKU) and returns the window
``[latest notBefore, earliest notAfter]`` of the certificates on the path. Whoever asks whether a signature
holds checks that window at the verification time it is given (``ChainWindow.refusal``), so a verdict
stops holding when the first certificate of its chain expires.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from policyengine.signing import PublicKey, Unverified

__all__ = ["ChainWindow", "SigningChain", "signing_chain"]

# A bundle's chain is attacker-controlled: a longer one is refused before any signature is checked.
MAX_CHAIN = 10


@dataclass(frozen=True)
class ChainWindow:
    """When every certificate of a chain is valid, and which certificate sets each bound."""

    not_before: datetime
    not_before_cert: str  # "signing certificate CN=..." and so on
    not_after: datetime
    not_after_cert: str

    def refusal(self, now: datetime) -> str:
        """Why the chain does not hold at ``now``; "" when it does."""
        if now < self.not_before:
            return f"{self.not_before_cert} is not yet valid (valid from {self.not_before.isoformat()})"
        if now > self.not_after:
            return f"{self.not_after_cert} expired at {self.not_after.isoformat()}"
        return ""


@dataclass(frozen=True)
class SigningChain:
    key: PublicKey
    subject: str  # the leaf's subject, the signer a verdict names
    window: ChainWindow


def _describe(cert: x509.Certificate, role: str) -> str:
    return f"{role} {cert.subject.rfc4514_string()}"


def _window(path: Sequence[tuple[x509.Certificate, str]]) -> ChainWindow:
    start = max(path, key=lambda p: p[0].not_valid_before_utc)
    end = min(path, key=lambda p: p[0].not_valid_after_utc)
    return ChainWindow(
        start[0].not_valid_before_utc,
        _describe(*start),
        end[0].not_valid_after_utc,
        _describe(*end),
    )


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
        return True
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False


def _ca_problem(cert: x509.Certificate, role: str, below: int) -> str:
    """Why ``cert`` may not issue a chain with ``below`` intermediate CAs under it; "" when it may."""
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return f"{_describe(cert, role)} has no CA basic constraints"
    if not constraints.ca:
        return f"{_describe(cert, role)} is not a CA certificate (basic constraints CA:FALSE)"
    if constraints.path_length is not None and below > constraints.path_length:
        return (
            f"{_describe(cert, role)} allows {constraints.path_length} intermediate CA certificate(s) "
            f"below it, the chain has {below}"
        )
    try:
        if not cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign:
            return f"{_describe(cert, role)} may not sign certificates (no keyCertSign key usage)"
    except x509.ExtensionNotFound:
        pass
    return ""


def _leaf_problem(leaf: x509.Certificate, require_code_signing: bool) -> str:
    subject = _describe(leaf, "signing certificate")
    try:
        if not leaf.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature:
            return f"{subject} does not allow digitalSignature key usage"
        usage = True
    except x509.ExtensionNotFound:
        usage = False
    try:
        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        code_signing = ExtendedKeyUsageOID.CODE_SIGNING in eku
    except x509.ExtensionNotFound:
        eku, code_signing = None, False
    if require_code_signing and not code_signing:
        listed = "no extended key usage" if eku is None else "an extended key usage without codeSigning"
        return f"{subject} has {listed}; model signatures require the codeSigning extended key usage"
    if not (usage or code_signing):
        return f"{subject} allows neither digitalSignature nor codeSigning"
    return ""


def _leaf_key(cert: x509.Certificate) -> PublicKey:
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey):
        raise Unverified(f"signing certificate has an unsupported key type {type(key).__name__}")
    return key


def signing_chain(
    chain: Sequence[x509.Certificate], cas: Sequence[x509.Certificate], *, require_code_signing: bool
) -> SigningChain:
    """The leaf's key, subject and validity window once the chain (leaf first, then intermediates)
    reaches a configured CA; raises Unverified naming the certificate and the rule it breaks."""
    if len(chain) > MAX_CHAIN:
        raise Unverified(f"certificate chain has {len(chain)} certificates, more than {MAX_CHAIN}")
    leaf = chain[0]
    problem = _leaf_problem(leaf, require_code_signing)
    if problem:
        raise Unverified(problem)
    path: list[tuple[x509.Certificate, str]] = [(leaf, "signing certificate")]
    if leaf in cas:  # the configured CA is itself the signing certificate
        return SigningChain(_leaf_key(leaf), leaf.subject.rfc4514_string(), _window(path))
    pool, refusals = list(chain[1:]), []
    for _ in range(len(chain)):
        current, below = path[-1][0], len(path) - 1
        for ca in cas:
            if _issued_by(current, ca):
                problem = _ca_problem(ca, "CA certificate", below)
                if not problem:
                    path.append((ca, "CA certificate"))
                    return SigningChain(_leaf_key(leaf), leaf.subject.rfc4514_string(), _window(path))
                refusals.append(problem)
        issuer = next((c for c in pool if _issued_by(current, c)), None)
        if issuer is None:
            break
        problem = _ca_problem(issuer, "intermediate certificate", below)
        if problem:
            raise Unverified(problem)
        pool.remove(issuer)
        path.append((issuer, "intermediate certificate"))
    if refusals:
        raise Unverified(refusals[0])
    raise Unverified("certificate chain does not lead to a configured CA certificate")
