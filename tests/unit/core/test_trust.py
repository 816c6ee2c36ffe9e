"""GovernanceConfig trust material: relative paths, bad keys and missing folders are load problems."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from policyengine import errors
from policyengine.errors import LoadError
from policyengine.policyset import load_policy_set
from policyengine.trust import load_attestation_store
from tests.helpers import write

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def public_pem() -> bytes:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def config_text(models: str) -> str:
    return f"apiVersion: policyengine.io/v1\nkind: GovernanceConfig\nmetadata: {{name: c}}\nspec:\n  models:\n{models}"


def test_relative_paths_resolve_against_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "cfg" / "keys").mkdir(parents=True)
    (tmp_path / "cfg" / "keys" / "release.pub").write_bytes(public_pem())
    (tmp_path / "cfg" / "attestations").mkdir()
    cfg = write(
        tmp_path / "cfg" / "config.yaml",
        config_text(
            "    trustedKeys: [{name: release, path: keys/release.pub}]\n    attestations: ./attestations\n"
        ),
    )
    ps = load_policy_set([], config_paths=[str(cfg)], include_bundled=False)
    assert ps.config["models"]["attestations"] == str(tmp_path / "cfg" / "attestations")
    store = load_attestation_store(ps.config)
    assert store.lookup("ab" * 32, NOW)["verified"] is False
    assert "no model-signing bundle" in store.lookup("ab" * 32, NOW)["reason"]


def test_bad_trust_material_is_reported_at_its_config_file_line_and_field(tmp_path: Path) -> None:
    cfg = write(
        tmp_path / "config.yaml",
        config_text(
            "    trustedKeys:\n      - {name: a, path: missing.pub}\n      - {name: b, publicKey: not-a-key}\n"
            "    attestations: nowhere\n"
        ),
    )
    ps = load_policy_set([], config_paths=[str(cfg)], include_bundled=False)
    with pytest.raises(LoadError) as info:
        load_attestation_store(ps.config, ps.config_line)
    got = {(p.file, p.line, p.code, p.path) for p in info.value.problems}
    assert got == {
        (str(cfg), 7, errors.READ_ERROR, "spec.models.trustedKeys[0].path"),
        (str(cfg), 8, errors.INVALID_VALUE, "spec.models.trustedKeys[1].publicKey"),
        (str(cfg), 9, errors.FILE_NOT_FOUND, "spec.models.attestations"),
    }
    assert any(str(tmp_path / "missing.pub") in p.message for p in info.value.problems)


def test_no_attestations_configured_gives_an_empty_store() -> None:
    assert load_attestation_store({}).lookup("00" * 32, NOW)["verified"] is False
