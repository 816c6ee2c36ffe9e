"""Certificate-mode model signatures made by the reference signer (``model_signing``) under certificates
issued here: every certificate of the chain is judged at the verification time the caller passes, the
leaf must carry codeSigning, intermediates must be CAs within their path length; refused signatures
say which certificate and why, in the engine used at admission and in ``check``."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from policyengine.engine import Engine
from policyengine.gate import request_for
from policyengine.loader import parse_text
from policyengine.policyset import load_policy_set
from policyengine.provenance import AttestationStore, verify_bundle
from tests.helpers import run_cli

ms_signing = pytest.importorskip("model_signing.signing", reason="model-signing is a test extra")

NOW = datetime.now(UTC).replace(microsecond=0)
PAST = (datetime(2019, 1, 1, tzinfo=UTC), datetime(2020, 1, 1, tzinfo=UTC))
CURRENT = (NOW - timedelta(days=30), NOW + timedelta(days=3650))
KEY_USAGE = dict.fromkeys(
    [
        "content_commitment",
        "key_encipherment",
        "data_encipherment",
        "key_agreement",
        "crl_sign",
        "encipher_only",
        "decipher_only",
    ],
    False,
)


@dataclass
class Spec:
    """One certificate to issue; ``eku=None`` leaves the extension out."""

    name: str
    valid: tuple[datetime, datetime] = CURRENT
    ca: bool = False
    path_length: int | None = None
    eku: list[x509.ObjectIdentifier] | None = field(
        default_factory=lambda: [ExtendedKeyUsageOID.CODE_SIGNING]
    )


def issue(
    spec: Spec,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, spec.name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer[0].subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(spec.valid[0])
        .not_valid_after(spec.valid[1])
        .add_extension(x509.BasicConstraints(ca=spec.ca, path_length=spec.path_length), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=not spec.ca, key_cert_sign=spec.ca, **KEY_USAGE), critical=True
        )
    )
    if not spec.ca and spec.eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(spec.eku), critical=False)
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256())


def pem(path: Path, cert: x509.Certificate) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


@dataclass
class Signed:
    root: x509.Certificate
    bundle: Path
    digest: str  # the model's sha256 as a workload pins it


def sign_model(
    tmp: Path,
    *,
    root: Spec | None = None,
    intermediates: tuple[Spec, ...] = (Spec("intermediate-ca", ca=True),),
    leaf: Spec | None = None,
) -> Signed:
    """A one-file model signed by ``model_signing`` under root -> intermediates -> leaf."""
    root_key = ec.generate_private_key(ec.SECP384R1())
    root_cert = issue(root or Spec("root-ca", ca=True), root_key, None)
    issuer, chain = (root_cert, root_key), []
    for spec in intermediates:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = issue(spec, key, issuer)
        chain.insert(0, pem(tmp / f"{spec.name}.pem", cert))
        issuer = (cert, key)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf_cert = issue(leaf or Spec("ml-release"), leaf_key, issuer)
    key_file = tmp / "leaf-key.pem"
    key_file.write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    weights = tmp / "model.gguf"
    weights.write_bytes(b"gguf" * 64)
    (tmp / "attestations").mkdir(exist_ok=True)
    sig = tmp / "attestations" / "model.gguf.sig"
    ms_signing.Config().use_certificate_signer(
        private_key=key_file, signing_certificate=pem(tmp / "leaf.pem", leaf_cert), certificate_chain=chain
    ).sign(weights, sig)
    return Signed(root_cert, sig, hashlib.sha256(weights.read_bytes()).hexdigest())


def reason(signed: Signed, at: datetime = NOW) -> str:
    return verify_bundle(signed.bundle.read_bytes(), [], [signed.root], at=at).reason


def test_a_valid_chain_with_the_code_signing_eku_verifies(tmp_path: Path) -> None:
    signed = sign_model(tmp_path)
    verdict = verify_bundle(signed.bundle.read_bytes(), [], [signed.root], at=NOW)
    assert (verdict.verified, verdict.signer, verdict.reason) == (True, "CN=ml-release", "")


def test_an_expired_leaf_is_refused(tmp_path: Path) -> None:
    signed = sign_model(tmp_path, leaf=Spec("ml-release", valid=PAST))
    assert reason(signed) == "signing certificate CN=ml-release expired at 2020-01-01T00:00:00+00:00"


def test_an_expired_intermediate_is_refused(tmp_path: Path) -> None:
    signed = sign_model(tmp_path, intermediates=(Spec("intermediate-ca", ca=True, valid=PAST),))
    assert (
        reason(signed) == "intermediate certificate CN=intermediate-ca expired at 2020-01-01T00:00:00+00:00"
    )


def test_an_expired_chain_is_refused(tmp_path: Path) -> None:
    expired = (datetime(2019, 1, 1, tzinfo=UTC), datetime(2020, 6, 1, tzinfo=UTC))
    signed = sign_model(
        tmp_path,
        root=Spec("root-ca", ca=True, valid=expired),
        intermediates=(Spec("intermediate-ca", ca=True, valid=expired),),
        leaf=Spec("ml-release", valid=PAST),
    )
    # The certificate that expired first is named.
    assert reason(signed) == "signing certificate CN=ml-release expired at 2020-01-01T00:00:00+00:00"


def test_a_not_yet_valid_leaf_is_refused(tmp_path: Path) -> None:
    later = (NOW + timedelta(days=365), NOW + timedelta(days=730))
    signed = sign_model(tmp_path, leaf=Spec("ml-release", valid=later))
    assert reason(signed) == (
        f"signing certificate CN=ml-release is not yet valid (valid from {later[0].isoformat()})"
    )


def test_a_leaf_without_the_code_signing_eku_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    no_eku = sign_model(tmp_path / "a", leaf=Spec("web", eku=None))
    assert reason(no_eku) == (
        "signing certificate CN=web has no extended key usage; "
        "model signatures require the codeSigning extended key usage"
    )
    (tmp_path / "b").mkdir()
    tls = sign_model(tmp_path / "b", leaf=Spec("web", eku=[ExtendedKeyUsageOID.SERVER_AUTH]))
    assert "CN=web has an extended key usage without codeSigning" in reason(tls)
    # Turned off, the leaf's digitalSignature usage is enough again.
    lax = verify_bundle(tls.bundle.read_bytes(), [], [tls.root], at=NOW, require_code_signing=False)
    assert lax.verified


def test_an_intermediate_that_is_not_a_ca_is_refused(tmp_path: Path) -> None:
    signed = sign_model(tmp_path, intermediates=(Spec("not-a-ca", ca=False),))
    assert reason(signed) == (
        "intermediate certificate CN=not-a-ca is not a CA certificate (basic constraints CA:FALSE)"
    )


def test_an_intermediate_beyond_its_path_length_is_refused(tmp_path: Path) -> None:
    signed = sign_model(
        tmp_path,
        intermediates=(Spec("policy-ca", ca=True, path_length=0), Spec("issuing-ca", ca=True)),
    )
    assert reason(signed) == (
        "intermediate certificate CN=policy-ca allows 0 intermediate CA certificate(s) below it, the chain has 1"
    )


CONFIG = """apiVersion: policyengine.io/v1
kind: GovernanceConfig
metadata: {{name: certs}}
spec:
  models:
    approvedSources: ["s3://acme-models/"]
    caCertificates: [{ca}]
    attestations: {attestations}
"""
WORKLOAD = """apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata: {{name: churn, namespace: ml}}
spec:
  predictor:
    model:
      modelFormat: {{name: sklearn}}
      storageUri: "s3://acme-models/churn@sha256:{digest}"
"""


def configure(tmp: Path, signed: Signed) -> tuple[Path, Path]:
    config = tmp / "config.yaml"
    config.write_text(CONFIG.format(ca=pem(tmp / "root.pem", signed.root), attestations=tmp / "attestations"))
    workload = tmp / "workload.yaml"
    workload.write_text(WORKLOAD.format(digest=signed.digest))
    return config, workload


def signature_finding(engine: Engine, workload: Path, now: datetime) -> tuple[str, str]:
    (doc,) = parse_text(workload.read_text(), str(workload))
    decision = engine.evaluate(request_for(doc), now=now)
    (result,) = [r for r in decision.results if r.policy == "model-signature-verified"]
    return result.outcome, result.message


def test_a_signature_stops_verifying_when_its_chain_expires_in_a_running_engine(tmp_path: Path) -> None:
    expiry = NOW + timedelta(days=10)
    signed = sign_model(
        tmp_path, intermediates=(Spec("intermediate-ca", ca=True, valid=(CURRENT[0], expiry)),)
    )
    config, workload = configure(tmp_path, signed)
    engine = Engine(load_policy_set([], config_paths=[str(config)]))  # loaded once, as serve does

    assert signature_finding(engine, workload, NOW) == ("pass", "")
    outcome, message = signature_finding(engine, workload, expiry + timedelta(seconds=1))
    assert outcome == "fail"
    assert message.endswith(
        f"has no verified signature: intermediate certificate CN=intermediate-ca expired at {expiry.isoformat()}"
    )
    # The store itself lists it among the signatures expiring soon before, and as refused after.
    store = AttestationStore.from_directory(tmp_path / "attestations", [], [signed.root])
    assert [name for name, _ in store.expiring(NOW, timedelta(days=30))] == [str(signed.bundle)]
    assert store.expiring(NOW, timedelta(days=5)) == []


def test_check_refuses_an_expired_leaf_and_names_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    signed = sign_model(tmp_path, leaf=Spec("ml-release", valid=PAST))
    config, workload = configure(tmp_path, signed)
    code, out, err = run_cli(
        ["check", "--config", str(config), "--verbose", str(workload)], capsys, monkeypatch
    )
    assert code == 1, err
    assert "signing certificate CN=ml-release expired at 2020-01-01T00:00:00+00:00" in " ".join(out.split())
    assert f"{signed.bundle} does not verify: signing certificate CN=ml-release expired" in err


def test_check_warns_when_the_code_signing_eku_is_not_required(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    signed = sign_model(tmp_path, leaf=Spec("web", eku=[ExtendedKeyUsageOID.SERVER_AUTH]))
    config, workload = configure(tmp_path, signed)
    code, out, err = run_cli(["check", "--config", str(config), str(workload)], capsys, monkeypatch)
    assert code == 1 and "require the codeSigning extended key usage" in " ".join(out.split())
    config.write_text(config.read_text() + "    certificates: {requireCodeSigningEKU: false}\n")
    code, out, err = run_cli(["check", "--config", str(config), str(workload)], capsys, monkeypatch)
    assert code == 0, out
    assert "warning: spec.models.certificates.requireCodeSigningEKU is false" in err


def test_the_server_reports_signatures_about_to_expire_and_weak_trust(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from webhook.lifespan import _warn_weak_trust, signatures_expiring
    from webhook.policies import LivePolicies
    from webhook.services import WebhookServices

    expiry = NOW + timedelta(days=10)
    signed = sign_model(tmp_path, leaf=Spec("ml-release", valid=(CURRENT[0], expiry)))
    config, _ = configure(tmp_path, signed)
    engine = Engine(load_policy_set([], config_paths=[str(config)]))
    # The metric counts verified signatures whose chain expires within 30 days, at scrape time.
    assert signatures_expiring(engine, NOW) == [(1.0, {"within": "30d"})]
    assert signatures_expiring(engine, NOW - timedelta(days=30)) == [(0.0, {"within": "30d"})]
    assert signatures_expiring(engine, expiry + timedelta(seconds=1)) == [(0.0, {"within": "30d"})]
    assert signatures_expiring(None, NOW) == []

    config.write_text(config.read_text() + "    certificates: {requireCodeSigningEKU: false}\n")
    policies = LivePolicies(lambda: Engine(load_policy_set([], config_paths=[str(config)])))
    policies.serve(policies._load())
    with caplog.at_level("WARNING"):
        _warn_weak_trust(WebhookServices(policies=policies))
    assert [r.getMessage() for r in caplog.records] == ["weak trust setting"]
    assert "requireCodeSigningEKU is false" in caplog.records[0].__dict__["warning"]
