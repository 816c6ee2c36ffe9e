"""Keyless Sigstore model signatures, verified offline: the upstream model-signing-spec keyless bundle
(production Fulcio and Rekor) against the trust root shipped in the sigstore package, and bundles signed
under a private Sigstore deployment built in these tests. Every test runs with the network refused."""

from __future__ import annotations

import base64
import json
import shutil
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from policyengine.engine import Engine
from policyengine.errors import LoadError
from policyengine.gate import request_for
from policyengine.keyless import MAX_SHOWN, KeylessTrust, identity_from_config, load_trust_root
from policyengine.loader import parse_text
from policyengine.policyset import load_policy_set
from policyengine.provenance import AttestationStore, verify_bundle
from policyengine.trust import load_attestation_store
from tests.helpers import run_cli
from tests.unit.provenance.private_sigstore import PrivateSigstore
from tests.unit.provenance.test_provenance import statement

NOW = datetime.now(UTC)
IDENTITY = "stefanb@us.ibm.com"
ISSUER = "https://sigstore.verify.ibm.com/oauth2"
DIGEST = "61d4849d9d90076d6215f4d525f13d6574af8e3f67aef3e6f36fc40a14fdd226"
WORKFLOW = "https://github.com/acme/models/.github/workflows/release.yml@refs/heads/main"
GITHUB = "https://token.actions.githubusercontent.com"


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Any attempt to resolve a name or open a connection is recorded and fails."""
    attempts: list[Any] = []

    def refuse(*args: Any, **kwargs: Any) -> Any:
        attempts.append(args)
        raise OSError("network access during keyless verification")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    yield attempts
    assert attempts == [], f"keyless verification tried the network: {attempts}"


def upstream(shared: Path) -> bytes:
    return (
        shared / "corpus" / "upstream" / "model-signing-spec" / "valid__sigstore.bundle.json"
    ).read_bytes()


def trust(*entries: dict[str, str], root: str = "production") -> KeylessTrust:
    identities = tuple(identity_from_config(e, f"trustedIdentities[{i}]") for i, e in enumerate(entries))
    return KeylessTrust(load_trust_root(root), identities, root)


def verify(data: bytes, keyless: KeylessTrust) -> Any:
    return verify_bundle(data, [], at=NOW, keyless=keyless)


STEFAN = {"name": "ibm-release", "issuer": ISSUER, "identity": IDENTITY}


def test_the_network_guard_refuses_connections(no_network: list[Any]) -> None:
    with pytest.raises(OSError, match="network access"):
        socket.create_connection(("rekor.sigstore.dev", 443))
    no_network.clear()  # the guard's own check, not verification


def test_the_upstream_keyless_bundle_verifies_for_its_identity_offline(shared: Path) -> None:
    verdict = verify(upstream(shared), trust(STEFAN))
    assert verdict.verified, verdict.reason
    assert (verdict.mode, verdict.signer, verdict.identity, verdict.issuer) == (
        "keyless",
        "ibm-release",
        IDENTITY,
        ISSUER,
    )
    assert verdict.subject_digests == (DIGEST,)
    assert verdict.window is None  # the log proves the signing time: the verdict does not expire
    assert verdict.as_lookup() == {
        "verified": True,
        "signer": "ibm-release",
        "reason": "",
        "mode": "keyless",
        "identity": IDENTITY,
        "issuer": ISSUER,
    }


def test_an_identity_regex_must_match_the_whole_identity(shared: Path) -> None:
    entry = {"name": "ibm", "issuer": ISSUER, "identityRegex": r"[a-z]+@us\.ibm\.com"}
    assert verify(upstream(shared), trust(entry)).verified
    prefix = {"name": "ibm", "issuer": ISSUER, "identityRegex": "stefanb"}
    assert not verify(upstream(shared), trust(prefix)).verified


REFUSED = f"signed by '{IDENTITY}' (issuer '{ISSUER}'), which matches no spec.models.trustedIdentities entry"


@pytest.mark.parametrize(
    "entry",
    [
        {"name": "other-person", "issuer": ISSUER, "identity": "mallory@us.ibm.com"},
        {"name": "other-issuer", "issuer": "https://accounts.google.com", "identity": IDENTITY},
        {"name": "regex", "issuer": ISSUER, "identityRegex": r".*@example\.com"},
    ],
    ids=["another-identity", "another-issuer", "non-matching-regex"],
)
def test_the_upstream_keyless_bundle_is_refused_for_another_signer(
    shared: Path, entry: dict[str, str]
) -> None:
    verdict = verify(upstream(shared), trust(entry))
    assert not verdict.verified
    assert verdict.reason == REFUSED
    assert verdict.subject_digests == (DIGEST,)  # still read, so the finding names the bundle


def flip(data: bytes, path: list[str | int], offset: int) -> bytes:
    """The bundle with one byte of the base64 field at ``path`` changed."""
    bundle = json.loads(data)
    node = bundle
    for key in path[:-1]:
        node = node[key]
    raw = bytearray(base64.b64decode(node[path[-1]]))
    raw[offset] ^= 0x01
    node[path[-1]] = base64.b64encode(bytes(raw)).decode()
    return json.dumps(bundle).encode()


ENTRY: list[str | int] = ["verificationMaterial", "tlogEntries", 0]
TAMPERED: list[tuple[list[str | int], int, str]] = [
    (["dsseEnvelope", "payload"], 40, "DSSE: invalid signature"),
    (["dsseEnvelope", "signatures", 0, "sig"], 20, "DSSE: invalid signature"),
    (["verificationMaterial", "certificate", "rawBytes"], 200, "failed to build timestamp certificate chain"),
    (["verificationMaterial", "certificate", "rawBytes"], -10, "failed to build timestamp certificate chain"),
    ([*ENTRY, "canonicalizedBody"], 30, "invalid log entry: inclusion proof contains invalid root hash"),
    ([*ENTRY, "inclusionPromise", "signedEntryTimestamp"], 20, "invalid log entry: SET: invalid inclusion"),
    ([*ENTRY, "inclusionProof", "hashes", 3], 5, "invalid log entry: inclusion proof contains invalid root"),
]


@pytest.mark.parametrize(
    ("path", "offset", "why"),
    TAMPERED,
    ids=[
        "payload",
        "signature",
        "certificate-key",
        "certificate-signature",
        "log-body",
        "log-set",
        "log-proof",
    ],
)
def test_one_changed_byte_is_refused_with_a_reason(
    shared: Path, path: list[str | int], offset: int, why: str
) -> None:
    verdict = verify(flip(upstream(shared), path, offset), trust(STEFAN))
    assert not verdict.verified
    assert verdict.reason.startswith(
        f"keyless signature does not verify under the production Sigstore trust root: {why}"
    )
    assert len(verdict.reason) < 800  # the library's dump of the whole proof is cut


def test_the_staging_root_does_not_vouch_for_a_production_bundle(shared: Path) -> None:
    verdict = verify(upstream(shared), trust(STEFAN, root="staging"))
    assert verdict.reason.startswith(
        "keyless signature does not verify under the staging Sigstore trust root: failed to build"
    )


# --- a private Sigstore deployment ------------------------------------------------------------------------

RELEASE = {"name": "release-workflow", "issuer": GITHUB, "identity": WORKFLOW}


@pytest.fixture(scope="module")
def private() -> PrivateSigstore:
    return PrivateSigstore()


def model_payload() -> bytes:
    return json.dumps(statement({"config.json": b"{}", "weights.safetensors": b"w" * 64})).encode()


def test_a_bundle_of_a_private_sigstore_verifies_under_its_trust_root_only(
    private: PrivateSigstore, tmp_path: Path
) -> None:
    root = private.write_trusted_root(tmp_path / "trusted_root.json")
    signed = private.sign(model_payload(), WORKFLOW, GITHUB)
    verdict = verify(signed, trust(RELEASE, root=str(root)))
    assert verdict.verified, verdict.reason
    assert (verdict.identity, verdict.issuer, verdict.signer) == (WORKFLOW, GITHUB, "release-workflow")

    production = verify(signed, trust(RELEASE))
    assert production.reason.startswith(
        "keyless signature does not verify under the production Sigstore trust root: "
        "failed to build timestamp certificate chain"
    )
    # Nor does the public-good instance's bundle verify under the private root.
    other = verify(signed, trust({**RELEASE, "identity": WORKFLOW.replace("main", "dev")}, root=str(root)))
    assert other.reason == (
        f"signed by '{WORKFLOW}' (issuer '{GITHUB}'), which matches no spec.models.trustedIdentities entry"
    )


def test_a_private_bundle_whose_log_entry_is_changed_is_refused(
    private: PrivateSigstore, tmp_path: Path
) -> None:
    root = str(private.write_trusted_root(tmp_path / "trusted_root.json"))
    signed = private.sign(model_payload(), WORKFLOW, GITHUB)
    verdict = verify(flip(signed, [*ENTRY, "canonicalizedBody"], 100), trust(RELEASE, root=root))
    assert "invalid log entry" in verdict.reason


def test_a_hostile_identity_in_a_certificate_is_quoted_bounded(
    private: PrivateSigstore, tmp_path: Path
) -> None:
    root = str(private.write_trusted_root(tmp_path / "trusted_root.json"))
    hostile = "https://example.com/" + "a" * 20_000
    signed = private.sign(model_payload(), hostile, GITHUB)
    pattern = {"name": "nested", "issuer": GITHUB, "identityRegex": "(a*)*b"}  # backtracks in Python's re
    verdict = verify(signed, trust(RELEASE, pattern, root=root))
    assert not verdict.verified
    assert verdict.reason.startswith("signed by 'https://example.com/aaa")
    assert len(verdict.reason) < MAX_SHOWN + 200


# --- GovernanceConfig spec.models.trustedIdentities and trustRoot -----------------------------------------


def store_for(models: dict[str, Any]) -> AttestationStore:
    return load_attestation_store({"models": models})


def test_the_config_trusts_identities_under_a_trust_root_file(
    private: PrivateSigstore, tmp_path: Path
) -> None:
    root = private.write_trusted_root(tmp_path / "trusted_root.json")
    (tmp_path / "sigs").mkdir()
    (tmp_path / "sigs" / "model.sig").write_bytes(private.sign(model_payload(), WORKFLOW, GITHUB))
    digest = json.loads(model_payload())["subject"][0]["digest"]["sha256"]
    models = {"trustedIdentities": [RELEASE], "trustRoot": str(root), "attestations": str(tmp_path / "sigs")}
    assert store_for(models).lookup(digest, NOW)["identity"] == WORKFLOW
    assert store_for({**models, "trustRoot": "production"}).lookup(digest, NOW)["verified"] is False


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"name": "x", "issuer": ISSUER}, "give exactly one of identity and identityRegex"),
        ({"name": "x", "issuer": ISSUER, "identity": IDENTITY, "identityRegex": ".*"}, "exactly one of"),
        ({"name": "x", "identity": IDENTITY}, "issuer: give the OIDC issuer URL"),
        ({"name": "x", "issuer": ISSUER, "identityRegex": r"(a)\1"}, "identityRegex: not an RE2 regular"),
        ({"name": "x", "issuer": ISSUER, "identityRegex": "a" * 1025}, "at most 1024 characters"),
        ({"name": "x", "issuer": ISSUER, "identityRegex": "((((a{1,1000}){1,1000}){1,1000}))"}, "not an RE2"),
    ],
    ids=["no-identity", "both", "no-issuer", "backreference", "too-long", "too-big-a-program"],
)
def test_a_bad_trusted_identity_is_a_load_error_naming_it(entry: dict[str, str], message: str) -> None:
    with pytest.raises(LoadError) as caught:
        store_for({"trustedIdentities": [STEFAN, entry]})
    (problem,) = caught.value.problems
    assert problem.path == "spec.models.trustedIdentities[1]"
    assert message in problem.message


@pytest.mark.parametrize("root", ["/nonexistent/trusted_root.json", "not-json"])
def test_a_bad_trust_root_is_a_load_error_naming_it(tmp_path: Path, root: str) -> None:
    if root == "not-json":
        (tmp_path / "bad.json").write_text("{not json")
        root = str(tmp_path / "bad.json")
    with pytest.raises(LoadError) as caught:
        store_for({"trustedIdentities": [STEFAN], "trustRoot": root})
    (problem,) = caught.value.problems
    assert problem.path == "spec.models.trustRoot"
    assert problem.message.startswith(f"trust root {root}: ")


# --- check: a model pinned to the keyless bundle's digest -------------------------------------------------

CONFIG = """apiVersion: policyengine.io/v1
kind: GovernanceConfig
metadata: {{name: keyless}}
spec:
  models:
    approvedSources: ["s3://acme-models/"]
    trustedIdentities:
      - name: ibm-release
        issuer: {issuer}
        identity: {identity}
    attestations: attestations
"""


def service(digest: str = DIGEST) -> dict[str, Any]:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "churn", "namespace": "ml"},
        "spec": {
            "predictor": {
                "model": {
                    "modelFormat": {"name": "sklearn"},
                    "storageUri": f"s3://acme-models/churn@sha256:{digest}",
                }
            }
        },
    }


def tampered(bundle: bytes) -> bytes:
    data = json.loads(bundle)
    sig = bytearray(base64.b64decode(data["dsseEnvelope"]["signatures"][0]["sig"]))
    sig[20] ^= 1
    data["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()
    return json.dumps(data).encode()


def configure(tmp: Path, shared: Path, identity: str = IDENTITY) -> Path:
    source = shared / "corpus" / "upstream" / "model-signing-spec" / "valid__sigstore.bundle.json"
    (tmp / "attestations").mkdir(exist_ok=True)
    shutil.copy(source, tmp / "attestations" / "churn.sig")
    (tmp / "attestations" / "churn-tampered.sig").write_bytes(tampered(source.read_bytes()))
    config = tmp / "config.yaml"
    config.write_text(CONFIG.format(issuer=ISSUER, identity=identity))
    return config


def workload(tmp: Path, digest: str = DIGEST) -> Path:
    path = tmp / "workload.yaml"
    path.write_text(json.dumps(service(digest)))
    return path


def test_check_passes_a_model_signed_by_a_trusted_identity(
    tmp_path: Path, shared: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = configure(tmp_path, shared)
    code, out, err = run_cli(
        ["check", "--config", str(config), "--verbose", str(workload(tmp_path))], capsys, monkeypatch
    )
    assert code == 0, out + err
    bundle = tmp_path / "attestations" / "churn-tampered.sig"
    assert (
        f"attestation store: {bundle} does not verify: keyless signature does not verify under the "
        "production Sigstore trust root: DSSE: invalid signature"
    ) in err


def test_check_refuses_it_when_another_identity_is_trusted(
    tmp_path: Path, shared: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = configure(tmp_path, shared, identity="mallory@us.ibm.com")
    code, out, _ = run_cli(["check", "--config", str(config), str(workload(tmp_path))], capsys, monkeypatch)
    assert code == 1
    flat = " ".join(out.split())
    assert "model-signature-verified" in flat
    assert (
        f"signed by '{IDENTITY}' (issuer '{ISSUER}'), which matches no spec.models.trustedIdentities" in flat
    )


RELEASE_ONLY = """apiVersion: policyengine.io/v1
kind: Policy
metadata: {name: ml-models-from-the-release-workflow}
spec:
  match:
    kinds: [{apiGroups: ["*"], kinds: ["*"]}]
  matchConditions:
    - name: models-served-in-ml
      expression: "request.namespace == 'ml' && workload.models.exists(m, m.sha256 != '')"
  validations:
    - expression: >-
        workload.models.all(m, m.sha256 == '' || (m.signature.mode == 'keyless'
          && m.signature.issuer == 'https://token.actions.githubusercontent.com'
          && m.signature.identity.startsWith('https://github.com/acme/models/')))
      messageExpression: >-
        'models in ml must be signed by the acme/models release workflow, not ' +
        workload.models.map(m, m.signature.mode + ':' + m.signature.identity).join(', ')
"""


@pytest.mark.parametrize(
    ("identity", "outcome"),
    [(WORKFLOW, "pass"), ("https://github.com/evil/models/.github/workflows/x.yml@refs/heads/main", "fail")],
)
def test_a_policy_can_require_a_keyless_signer_and_a_trust_root_file_is_relative_to_its_config(
    private: PrivateSigstore, tmp_path: Path, identity: str, outcome: str
) -> None:
    private.write_trusted_root(tmp_path / "trusted_root.json")
    (tmp_path / "attestations").mkdir()
    (tmp_path / "attestations" / "model.sig").write_bytes(private.sign(model_payload(), identity, GITHUB))
    config = tmp_path / "config.yaml"
    config.write_text(
        CONFIG.format(issuer=GITHUB, identity=identity).replace(
            "    attestations:", "    trustRoot: trusted_root.json\n    attestations:"
        )
    )
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "release-only.yaml").write_text(RELEASE_ONLY)
    digest = json.loads(model_payload())["subject"][0]["digest"]["sha256"]
    engine = Engine(load_policy_set([str(tmp_path / "policies")], config_paths=[str(config)]))
    (doc,) = parse_text(json.dumps(service(digest)), "workload.json")
    decision = engine.evaluate(request_for(doc), now=NOW)
    results = {r.policy: r for r in decision.results}
    assert results["model-signature-verified"].outcome == "pass"
    assert results["ml-models-from-the-release-workflow"].outcome == outcome
    if outcome == "fail":
        assert results["ml-models-from-the-release-workflow"].message.endswith(f"not keyless:{identity}")


def hostile(data: bytes, change: str) -> bytes:
    bundle = json.loads(data)
    material = bundle["verificationMaterial"]
    if change == "certificate-not-der":
        material["certificate"]["rawBytes"] = base64.b64encode(b"\x30\x82" + b"\xff" * 64).decode()
    elif change == "two-log-entries":
        material["tlogEntries"] = material["tlogEntries"] * 2
    elif change == "many-timestamps":
        stamps = material["timestampVerificationData"]["rfc3161Timestamps"]
        material["timestampVerificationData"]["rfc3161Timestamps"] = stamps * 40
    elif change == "huge-tree":
        material["tlogEntries"][0]["inclusionProof"]["treeSize"] = str(2**63 - 1)
    elif change == "no-log-entry":
        material["tlogEntries"] = []
    return json.dumps(bundle).encode()


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("certificate-not-der", "malformed Sigstore bundle: "),
        ("two-log-entries", "malformed Sigstore bundle: expected exactly one log entry in bundle"),
        (
            "many-timestamps",
            "keyless signature does not verify under the production Sigstore trust root: too many",
        ),
        (
            "huge-tree",
            "keyless signature does not verify under the production Sigstore trust root: invalid log",
        ),
        ("no-log-entry", "malformed Sigstore bundle: expected exactly one log entry in bundle"),
    ],
)
def test_a_hostile_keyless_bundle_is_refused_with_a_reason(shared: Path, change: str, reason: str) -> None:
    verdict = verify(hostile(upstream(shared), change), trust(STEFAN))
    assert not verdict.verified
    assert verdict.reason.startswith(reason), verdict.reason
    assert len(verdict.reason) < 800


def test_check_names_the_file_line_and_field_of_a_bad_trusted_identity(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "apiVersion: policyengine.io/v1\nkind: GovernanceConfig\nmetadata: {name: x}\nspec:\n  models:\n"
        "    trustedIdentities:\n"
        f"      - {{name: both, issuer: {ISSUER}, identity: {IDENTITY}, identityRegex: '.*'}}\n"
        f"      - {{name: backref, issuer: {ISSUER}, identityRegex: '(a)\\1'}}\n"
    )
    code, _, err = run_cli(["check", "--config", str(config), str(workload(tmp_path))], capsys, monkeypatch)
    assert code == 2
    assert (
        f"{config}:7: invalid_value: give exactly one of identity and identityRegex "
        "(at spec.models.trustedIdentities[0])"
    ) in err
    assert f"{config}:8: invalid_value: identityRegex: not an RE2 regular expression" in err
