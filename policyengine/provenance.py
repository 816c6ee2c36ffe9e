"""Model provenance: verify OpenSSF model-signing (OMS) bundles and answer "is this model digest signed,
at this time?".

An OMS signature is a Sigstore bundle (``application/vnd.dev.sigstore.bundle.v0.3+json``) whose
``dsseEnvelope`` carries an in-toto Statement v1 with predicate type ``https://model_signing/signature/v1.0``
(its rules are in ``statement.py``). ``examine_bundle`` checks, in order: the bundle parses; the DSSE
signature over the PAE encoding verifies in one of three modes (the verdict's ``mode``):

- ``key``: under a trusted public key (``signing.py``);
- ``certificate``: under the leaf of an ``x509CertificateChain`` that chains to a configured CA
  certificate (``certchain.py``);
- ``keyless``: a Sigstore keyless bundle (one Fulcio certificate, a Rekor entry), verified offline by the
  ``sigstore`` library against the configured trust root and matched against the trusted identities
  (``keyless.py``); the verdict names the certificate's identity and OIDC issuer;

and the statement is a correct OMS statement whose subject digest equals the digest recomputed from its
resources.

Time: a certificate-mode verdict holds only while every certificate of its chain (leaf, intermediates and
the configured CA) is valid. No trusted timestamp is checked, so the signing time is unknown and the
verification time is the one that counts: ``verify_bundle(at=)`` and ``AttestationStore.lookup(now=)``
take it from the caller, and a verdict stops holding at the earliest ``notAfter`` of its chain (and
before the latest ``notBefore``). Key-mode verdicts do not expire, and neither do keyless ones: their
short-lived certificate was valid at the signing time the transparency log (or a timestamp authority)
proves, which is what Sigstore verification checks.

Digest coverage rule, used by ``AttestationStore.lookup``: a model reference pinned by ``@sha256:<hex>``
is covered when a bundle's subject ``sha256`` (the model-level digest) equals it; or when the bundle lists
exactly one resource, hashed with ``sha256``, whose digest equals it (a single-file model, where the
file's digest identifies the whole signed model). A per-file digest of a multi-file model does not cover
a reference: it would vouch for one file, not for the model.

Out of scope: the pre-1.0 ``https://model_signing/Digests/v0.1`` predicate, and the v0.2 library's buggy
PAE.

Everything here is pure except ``AttestationStore.from_directory``, which reads the bundle files of one
directory given by the caller.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from policyengine.signing import TrustedKey, Unverified, b64, pae, signature_ok, trusted_keys_from_config
from policyengine.statement import OMS_PREDICATE_TYPE, peek_subjects, signed_model

if TYPE_CHECKING:  # certificates and keyless bundles are read only when a configuration or bundle has them
    from cryptography import x509

    from policyengine.certchain import ChainWindow
    from policyengine.keyless import KeylessTrust

__all__ = [
    "IN_TOTO_PAYLOAD_TYPE",
    "OMS_PREDICATE_TYPE",
    "AttestationStore",
    "BundleVerdict",
    "KeylessTrust",
    "TrustedKey",
    "examine_bundle",
    "load_ca_certificates",
    "pae",
    "trusted_keys_from_config",
    "unverified_lookup",
    "verify_bundle",
]

BUNDLE_MEDIA_TYPES = frozenset(
    {"application/vnd.dev.sigstore.bundle.v0.3+json", "application/vnd.dev.sigstore.bundle+json;version=0.3"}
)
IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
# check --verbose and the webhook's metric report verified signatures whose chain expires this soon.
EXPIRY_NOTICE = timedelta(days=30)


def load_ca_certificates(pem: bytes) -> list[x509.Certificate]:
    """Every certificate in a PEM bundle (raises ValueError on malformed PEM)."""
    from cryptography import x509

    return x509.load_pem_x509_certificates(pem)


@dataclass(frozen=True)
class BundleVerdict:
    verified: bool
    signer: str  # the trusted key's name, or the certificate subject
    reason: str  # why not verified; "" when verified
    subject_digests: tuple[str, ...] = ()  # statement subject sha256 hex (read even when unverified)
    single_file_digest: str = ""  # the one resource's sha256 hex, for a single-file model
    model_name: str = ""
    window: ChainWindow | None = None  # when a certificate-mode verdict holds; None: key or keyless mode
    mode: str = ""  # how it was signed: key | certificate | keyless ("" when not verified)
    identity: str = ""  # keyless: the certificate's identity (e-mail, workflow URI, ...)
    issuer: str = ""  # keyless: the OIDC issuer that vouched for it

    def covers(self, sha256_hex: str) -> bool:
        """The digest coverage rule of the module docstring (ignores ``verified``)."""
        digest = sha256_hex.lower()
        return digest in self.subject_digests or (bool(digest) and digest == self.single_file_digest)

    def at(self, now: datetime) -> BundleVerdict:
        """This verdict at verification time ``now``: unverified once its chain is not valid then."""
        refusal = self.window.refusal(now) if self.verified and self.window is not None else ""
        return dataclasses.replace(self, verified=False, reason=refusal) if refusal else self

    def as_lookup(self) -> dict[str, Any]:
        return {
            "verified": self.verified,
            "signer": self.signer,
            "reason": self.reason,
            "mode": self.mode if self.verified else "",
            "identity": self.identity if self.verified else "",
            "issuer": self.issuer if self.verified else "",
        }


def unverified_lookup(reason: str) -> dict[str, Any]:
    """The lookup answer for a digest no verified bundle covers."""
    return {"verified": False, "signer": "", "reason": reason, "mode": "", "identity": "", "issuer": ""}


@dataclass(frozen=True)
class _Signed:
    """Who made a signature that verified, and how."""

    signer: str
    mode: str
    window: ChainWindow | None = None
    identity: str = ""
    issuer: str = ""


def _certificates(material: Mapping[str, Any]) -> list[x509.Certificate]:
    """The bundle's certificates, signing certificate first."""
    from cryptography import x509

    entries = material["x509CertificateChain"].get("certificates")
    raw = [
        c.get("rawBytes") if isinstance(c, Mapping) else None
        for c in (entries if isinstance(entries, list) else [])
    ]
    if not raw:
        raise Unverified("malformed bundle: empty certificate chain")
    try:
        return [x509.load_der_x509_certificate(b64(r, "certificate rawBytes")) for r in raw]
    except ValueError as e:
        raise Unverified(f"malformed bundle: certificate does not parse ({e})") from e


def verify_bundle(
    bundle_bytes: bytes,
    trusted_keys: Sequence[TrustedKey],
    ca_certs: Sequence[x509.Certificate] = (),
    *,
    at: datetime,
    require_code_signing: bool = True,
    keyless: KeylessTrust | None = None,
) -> BundleVerdict:
    """Verify one OMS bundle at verification time ``at``. Never raises: every failure is an unverified
    verdict with a reason."""
    return examine_bundle(
        bundle_bytes, trusted_keys, ca_certs, require_code_signing=require_code_signing, keyless=keyless
    ).at(at)


def examine_bundle(
    bundle_bytes: bytes,
    trusted_keys: Sequence[TrustedKey],
    ca_certs: Sequence[x509.Certificate] = (),
    *,
    require_code_signing: bool = True,
    keyless: KeylessTrust | None = None,
) -> BundleVerdict:
    """Everything about one bundle that does not depend on the time; the verdict's ``window`` says when
    it holds (``BundleVerdict.at``). Never raises."""
    payload = b""
    try:
        try:
            bundle = json.loads(bundle_bytes)
        except (ValueError, UnicodeDecodeError) as e:
            raise Unverified("malformed bundle: not JSON") from e
        if not isinstance(bundle, Mapping):
            raise Unverified("malformed bundle: not a JSON object")
        if bundle.get("mediaType") not in BUNDLE_MEDIA_TYPES:
            raise Unverified(f"unsupported bundle media type {bundle.get('mediaType')!r}")
        envelope = bundle.get("dsseEnvelope")
        material = bundle.get("verificationMaterial")
        if not isinstance(envelope, Mapping) or not isinstance(material, Mapping):
            raise Unverified("malformed bundle: dsseEnvelope or verificationMaterial missing")
        if envelope.get("payloadType") != IN_TOTO_PAYLOAD_TYPE:
            raise Unverified(
                f"DSSE payload type {envelope.get('payloadType')!r} is not {IN_TOTO_PAYLOAD_TYPE}"
            )
        payload = b64(envelope.get("payload"), "dsseEnvelope.payload")
        sigs = envelope.get("signatures")
        if not isinstance(sigs, list) or not sigs:
            raise Unverified("malformed bundle: the DSSE envelope has no signature")
        signatures = [b64(s.get("sig") if isinstance(s, Mapping) else None, "signature") for s in sigs]
        if isinstance(material.get("certificate"), Mapping):
            # The v0.3 single-certificate form is what keyless Sigstore signing (Fulcio + Rekor) produces.
            from policyengine.keyless import verify_keyless

            signed_by = verify_keyless(bundle_bytes, keyless)
            payload = signed_by.payload  # the bytes the library verified
            signed = _Signed(signed_by.signer, "keyless", None, signed_by.identity, signed_by.issuer)
        else:
            message = pae(IN_TOTO_PAYLOAD_TYPE, payload)
            signed = _verify_signature(
                material, message, signatures, trusted_keys, ca_certs, require_code_signing
            )
        model = signed_model(payload)
        return BundleVerdict(
            True,
            signed.signer,
            "",
            model.subject_digests,
            model.single_file_digest,
            model.name,
            signed.window,
            signed.mode,
            signed.identity,
            signed.issuer,
        )
    except Unverified as e:
        return BundleVerdict(False, "", str(e), *peek_subjects(payload))


def _verify_signature(
    material: Mapping[str, Any],
    message: bytes,
    signatures: Sequence[bytes],
    trusted_keys: Sequence[TrustedKey],
    ca_certs: Sequence[x509.Certificate],
    require_code_signing: bool,
) -> _Signed:
    if isinstance(material.get("publicKey"), Mapping):
        # The hint only orders the search: the signature, not the hint, decides.
        hint = material["publicKey"].get("hint")
        keys = sorted(trusted_keys, key=lambda k: k.hint != hint)
        for key in keys:
            if any(signature_ok(key.key, sig, message) for sig in signatures):
                return _Signed(key.name, "key")
        if not trusted_keys:
            raise Unverified("no trusted keys are configured")
        raise Unverified("signature does not verify under any trusted key")
    if isinstance(material.get("x509CertificateChain"), Mapping):
        if not ca_certs:
            raise Unverified("certificate-signed bundle but no CA certificates are configured")
        from policyengine.certchain import signing_chain

        chain = signing_chain(_certificates(material), ca_certs, require_code_signing=require_code_signing)
        if any(signature_ok(chain.key, sig, message) for sig in signatures):
            return _Signed(chain.subject, "certificate", chain.window)
        raise Unverified("signature does not verify under the signing certificate's key")
    raise Unverified("malformed bundle: verificationMaterial has no publicKey or certificate")


@dataclass(frozen=True)
class AttestationStore:
    """Bundles examined once at load, looked up by the model digest they cover at a verification time.

    A certificate-mode verdict is re-judged at every lookup against its chain's validity window, so a
    model whose only signature expires becomes unverified at the first lookup after the expiry, in a
    running process, without reloading the store."""

    verdicts: tuple[tuple[str, BundleVerdict], ...] = ()  # (source name, time-free verdict)
    problems: tuple[str, ...] = field(default=())  # files that could not be read
    warnings: tuple[str, ...] = field(default=())  # trust settings weaker than the default

    @classmethod
    def from_bundles(
        cls,
        bundles: Iterable[tuple[str, bytes]],
        trusted_keys: Sequence[TrustedKey],
        ca_certs: Sequence[x509.Certificate] = (),
        *,
        require_code_signing: bool = True,
        keyless: KeylessTrust | None = None,
    ) -> AttestationStore:
        def examine(data: bytes) -> BundleVerdict:
            return examine_bundle(
                data, trusted_keys, ca_certs, require_code_signing=require_code_signing, keyless=keyless
            )

        return cls(tuple((name, examine(data)) for name, data in bundles))

    @classmethod
    def from_directory(
        cls,
        path: Path,
        trusted_keys: Sequence[TrustedKey],
        ca_certs: Sequence[x509.Certificate] = (),
        *,
        require_code_signing: bool = True,
        keyless: KeylessTrust | None = None,
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
        store = cls.from_bundles(
            bundles, trusted_keys, ca_certs, require_code_signing=require_code_signing, keyless=keyless
        )
        return cls(store.verdicts, tuple(problems))

    def at(self, now: datetime) -> list[tuple[str, BundleVerdict]]:
        """Every verdict as it stands at ``now``."""
        return [(name, verdict.at(now)) for name, verdict in self.verdicts]

    def expiring(self, now: datetime, within: timedelta) -> list[tuple[str, BundleVerdict]]:
        """Verdicts that hold at ``now`` but stop holding within ``within`` (their chain expires)."""
        return [
            (name, v)
            for name, v in self.at(now)
            if v.verified and v.window is not None and v.window.not_after <= now + within
        ]

    def lookup(self, sha256_hex: str, now: datetime) -> dict[str, Any]:
        """``{"verified", "signer", "reason", "mode", "identity", "issuer"}`` for a model digest at verification time ``now``: a verified
        covering bundle if any, else why each covering bundle was refused, else that no bundle covers it
        (and why the bundles whose model could not be read were refused)."""
        digest = sha256_hex.lower().removeprefix("sha256:")
        judged = self.at(now)
        covering = [(name, v) for name, v in judged if v.covers(digest)]
        for _, verdict in covering:
            if verdict.verified:
                return verdict.as_lookup()
        if len(covering) == 1:
            return covering[0][1].as_lookup()
        if covering:
            why = "; ".join(f"{Path(name).name}: {v.reason}" for name, v in covering)
            return unverified_lookup(f"{len(covering)} bundles refused: {why}")
        reason = f"no model-signing bundle in the attestation store covers sha256:{digest}"
        unread = [
            (name, v) for name, v in judged if not (v.verified or v.subject_digests or v.single_file_digest)
        ]
        if unread:
            why = "; ".join(f"{Path(name).name}: {v.reason}" for name, v in unread)
            reason += f" (refused without a readable model digest: {why})"
        return unverified_lookup(reason)
