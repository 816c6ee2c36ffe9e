"""Trust material named by GovernanceConfig ``spec.models``: trusted keys (inline PEM or files), CA
certificates, trusted keyless identities with their Sigstore trust root, and the attestation directory,
read into a provenance ``AttestationStore``.

This is the one place besides the loader that reads files, because bundles and keys are not YAML
documents; it reads only what the configuration names, once per policy-set load.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from policyengine import errors
from policyengine.errors import LoadError, Problem
from policyengine.loader import render_path
from policyengine.provenance import AttestationStore, TrustedKey, load_ca_certificates

if TYPE_CHECKING:  # read only when the configuration has certificates or trusted identities
    from cryptography import x509

    from policyengine.keyless import KeylessTrust, TrustedIdentity

CONFIG = "GovernanceConfig"


def _models(config: Mapping[str, Any]) -> Mapping[str, Any]:
    models = config.get("models")
    return models if isinstance(models, Mapping) else {}


# Where a GovernanceConfig field was written: ("spec", "models", ...) -> (file, line).
Locate = Callable[[tuple[str | int, ...]], tuple[str, int]]


def _unknown(path: tuple[str | int, ...]) -> tuple[str, int]:
    return CONFIG, 1


def load_attestation_store(config: Mapping[str, Any], locate: Locate = _unknown) -> AttestationStore:
    """The store for ``config`` (a merged GovernanceConfig spec). Raises LoadError naming every bad key,
    certificate or directory, at the config line ``locate`` gives for it."""
    models = _models(config)
    problems: list[Problem] = []

    def problem(path: tuple[str | int, ...], code: str, message: str) -> None:
        file, line = locate(path)
        problems.append(Problem(file, line, code, message, render_path(path)))

    keys: list[TrustedKey] = []
    for i, entry in enumerate(models.get("trustedKeys") or ()):
        at: tuple[str | int, ...] = ("spec", "models", "trustedKeys", i)
        name = str(entry.get("name") or render_path(at))
        pem: str | bytes | None = entry.get("publicKey")
        if pem is None and entry.get("path"):
            try:
                pem = Path(str(entry["path"])).read_bytes()
            except OSError as err:
                problem((*at, "path"), errors.READ_ERROR, f"{entry['path']}: {err.strerror or err}")
                continue
        if pem is None:
            problem(at, errors.INVALID_VALUE, "give publicKey (PEM) or path")
            continue
        try:
            keys.append(TrustedKey.from_pem(name, pem))
        except (ValueError, TypeError) as err:
            if entry.get("publicKey") is not None:
                problem((*at, "publicKey"), errors.INVALID_VALUE, f"not a usable public key: {err}")
            else:
                problem(
                    (*at, "path"), errors.INVALID_VALUE, f"{entry['path']}: not a usable public key: {err}"
                )
    cas: list[x509.Certificate] = []
    for i, path in enumerate(models.get("caCertificates") or ()):
        at = ("spec", "models", "caCertificates", i)
        try:
            cas.extend(load_ca_certificates(Path(path).read_bytes()))
        except OSError as err:
            problem(at, errors.READ_ERROR, f"{path}: {err.strerror or err}")
        except ValueError as err:
            problem(at, errors.INVALID_VALUE, f"{path}: not PEM certificates: {err}")
    keyless = _keyless_trust(models, problem)
    directory = models.get("attestations")
    if directory and not Path(directory).is_dir():
        problem(
            ("spec", "models", "attestations"),
            errors.FILE_NOT_FOUND,
            f"attestation directory {directory} not found",
        )
    if problems:
        raise LoadError(problems)
    require_eku = _require_code_signing(models)
    warnings = tuple(trust_warnings(config))
    if not directory:
        return AttestationStore(warnings=warnings)
    store = AttestationStore.from_directory(
        Path(directory), keys, cas, require_code_signing=require_eku, keyless=keyless
    )
    return AttestationStore(store.verdicts, store.problems, warnings)


def _keyless_trust(
    models: Mapping[str, Any], problem: Callable[[tuple[str | int, ...], str, str], None]
) -> KeylessTrust | None:
    """The trusted identities and the Sigstore trust root they are verified under; None when no
    identity is trusted (keyless bundles are then refused with that reason)."""
    if not models.get("trustedIdentities") and not models.get("trustRoot"):
        return None
    from policyengine.keyless import KeylessTrust, identity_from_config, load_trust_root

    identities: list[TrustedIdentity] = []
    for i, entry in enumerate(models.get("trustedIdentities") or ()):
        at: tuple[str | int, ...] = ("spec", "models", "trustedIdentities", i)
        try:
            identities.append(identity_from_config(entry, render_path(at)))
        except ValueError as err:
            problem(at, errors.INVALID_VALUE, str(err))
    if not identities and not models.get("trustRoot"):
        return None
    root_name = str(models.get("trustRoot") or "production")
    try:
        root = load_trust_root(root_name)
    except ValueError as err:
        problem(("spec", "models", "trustRoot"), errors.INVALID_VALUE, f"trust root {err}")
        return None
    return KeylessTrust(root, tuple(identities), root_name) if identities else None


EKU_OFF_WARNING = (
    "spec.models.certificates.requireCodeSigningEKU is false: any certificate the configured CAs issued "
    "with digitalSignature usage (a TLS server certificate, say) can sign models"
)


def trust_warnings(config: Mapping[str, Any]) -> list[str]:
    """Trust settings of ``config`` weaker than the default, to be shown as warnings when it loads."""
    return [] if _require_code_signing(_models(config)) else [EKU_OFF_WARNING]


def _require_code_signing(models: Mapping[str, Any]) -> bool:
    certificates = models.get("certificates")
    if not isinstance(certificates, Mapping):
        return True
    return certificates.get("requireCodeSigningEKU") is not False
