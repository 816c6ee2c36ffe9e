"""What deploy/ says about certificate rotation holds: cert-manager renews the serving certificate under a
CA that does not change (so the injected caBundle stays valid while replicas reload), renewal starts
before serve's expiry warning, and the manual procedure's two-CA caBundle trusts the old and the new pair."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.exceptions import InvalidSignature

from tests.helpers import run_cli
from webhook.servingcert import DEFAULT_INTERVAL, WARN_DAYS

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"


def _hours(duration: str) -> float:
    match = re.fullmatch(r"(\d+)h", duration)
    assert match, f"a duration in hours, not {duration!r}"
    return float(match.group(1))


def _objects() -> dict[tuple[str, str], dict[str, Any]]:
    docs = yaml.safe_load_all((DEPLOY / "cert-manager" / "certificate.yaml").read_text())
    return {(d["kind"], d["metadata"]["name"]): d for d in docs if d}


def test_cert_manager_renews_the_serving_certificate_under_a_ca_that_stays() -> None:
    objects = _objects()
    serving = objects[("Certificate", "policyengine-tls")]["spec"]
    issuer = objects[("Issuer", serving["issuerRef"]["name"])]["spec"]
    assert "ca" in issuer, "a self-signed serving certificate changes the caBundle at every renewal"
    ca = next(
        o["spec"]
        for (kind, _), o in objects.items()
        if kind == "Certificate" and o["spec"]["secretName"] == issuer["ca"]["secretName"]
    )
    assert ca["isCA"] is True and _hours(ca["duration"]) > _hours(serving["duration"])
    # Renewal begins before serve starts warning: a warning means renewal is failing.
    assert WARN_DAYS * 24 < _hours(serving["renewBefore"]) < _hours(serving["duration"])
    webhook = yaml.safe_load((DEPLOY / "webhook.yaml").read_text())
    injected = webhook["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
    assert (
        injected
        == f"{objects[('Certificate', 'policyengine-tls')]['metadata']['namespace']}/policyengine-tls"
    )


def test_the_deployment_mounts_the_secret_so_that_updates_reach_the_pods() -> None:
    deployment = yaml.safe_load((DEPLOY / "deployment.yaml").read_text())
    pod = deployment["spec"]["template"]["spec"]
    [volume] = [v for v in pod["volumes"] if "secret" in v]
    [mount] = [m for c in pod["containers"] for m in c["volumeMounts"] if m["name"] == volume["name"]]
    assert "subPath" not in mount  # a subPath mount is never updated


def test_a_two_ca_bundle_trusts_the_old_and_the_new_pair(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for out in ("tls", "tls-new"):
        code, _, err = run_cli(
            ["certs", "--out", str(tmp_path / out), "--dns", "policyengine.policyengine.svc"],
            capsys,
            monkeypatch,
        )
        assert code == 0, err
    both = tmp_path / "ca-both.crt"
    both.write_bytes(
        (tmp_path / "tls" / "ca.crt").read_bytes() + (tmp_path / "tls-new" / "ca.crt").read_bytes()
    )
    args = ["webhook-config", "--service", "policyengine/policyengine", "--ca-bundle", str(both)]
    code, out, err = run_cli([*args, "--format", "json"], capsys, monkeypatch)
    assert code == 0, err
    for entry in json.loads(out)["webhooks"]:
        cas = x509.load_pem_x509_certificates(base64.b64decode(entry["clientConfig"]["caBundle"]))
        for pair in ("tls", "tls-new"):
            leaf = x509.load_pem_x509_certificate((tmp_path / pair / "tls.crt").read_bytes())
            trusted = []
            for ca in cas:
                try:
                    leaf.verify_directly_issued_by(ca)
                    trusted.append(ca)
                except (ValueError, TypeError, InvalidSignature):
                    pass
            assert len(trusted) == 1, pair


def test_the_rotation_section_matches_what_serve_does() -> None:
    readme = (DEPLOY / "README.md").read_text()
    section = readme.split("## Certificate rotation", 1)[1].split("\n## ", 1)[0]
    source = (DEPLOY.parent / "webhook" / "servingcert.py").read_text()
    for quoted in re.findall(r'`"msg":"([^"]+)"`', section):
        assert f'"{quoted}"' in source, quoted
    for metric in (
        "policyengine_tls_certificate_expiry_seconds",
        "policyengine_tls_certificate_reload_failures",
    ):
        assert metric in section
    assert "--dry-run=client -o yaml | kubectl apply -f -" in section.replace("\\\n  ", "")
    assert f"(default {DEFAULT_INTERVAL:g};" in section
    assert f"fewer than {WARN_DAYS} days remain" in section
