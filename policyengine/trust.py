"""Trust material named by GovernanceConfig ``spec.models``: trusted keys (inline PEM or files), CA
certificates and the attestation directory, read into a provenance ``AttestationStore``.

This is the one place besides the loader that reads files, because bundles and keys are not YAML
documents; it reads only what the configuration names, once per policy-set load.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography import x509

from policyengine import errors
from policyengine.errors import LoadError, Problem
from policyengine.provenance import AttestationStore, TrustedKey, load_ca_certificates

CONFIG = "GovernanceConfig"


def _models(config: Mapping[str, Any]) -> Mapping[str, Any]:
    models = config.get("models")
    return models if isinstance(models, Mapping) else {}


def load_attestation_store(config: Mapping[str, Any]) -> AttestationStore:
    """The store for ``config`` (a merged GovernanceConfig spec). Raises LoadError naming every bad key,
    certificate or directory."""
    models = _models(config)
    problems: list[Problem] = []
    keys: list[TrustedKey] = []
    for i, entry in enumerate(models.get("trustedKeys") or ()):
        where = f"spec.models.trustedKeys[{i}]"
        name = str(entry.get("name") or where)
        pem: str | bytes | None = entry.get("publicKey")
        source = CONFIG
        if pem is None and entry.get("path"):
            source = str(entry["path"])
            try:
                pem = Path(source).read_bytes()
            except OSError as err:
                problems.append(Problem(source, 1, errors.READ_ERROR, err.strerror or str(err), where))
                continue
        if pem is None:
            problems.append(Problem(CONFIG, 1, errors.INVALID_VALUE, "give publicKey (PEM) or path", where))
            continue
        try:
            keys.append(TrustedKey.from_pem(name, pem))
        except (ValueError, TypeError) as err:
            problems.append(
                Problem(source, 1, errors.INVALID_VALUE, f"not a usable public key: {err}", where)
            )
    cas: list[x509.Certificate] = []
    for i, path in enumerate(models.get("caCertificates") or ()):
        where = f"spec.models.caCertificates[{i}]"
        try:
            cas.extend(load_ca_certificates(Path(path).read_bytes()))
        except OSError as err:
            problems.append(Problem(str(path), 1, errors.READ_ERROR, err.strerror or str(err), where))
        except ValueError as err:
            problems.append(
                Problem(str(path), 1, errors.INVALID_VALUE, f"not PEM certificates: {err}", where)
            )
    directory = models.get("attestations")
    if directory and not Path(directory).is_dir():
        problems.append(
            Problem(
                str(directory),
                1,
                errors.FILE_NOT_FOUND,
                "attestation directory not found",
                "spec.models.attestations",
            )
        )
    if problems:
        raise LoadError(problems)
    if not directory:
        return AttestationStore()
    return AttestationStore.from_directory(Path(directory), keys, cas)
