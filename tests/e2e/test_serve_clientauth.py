"""Mutual TLS on a real `serve`: only a client certificate chaining to --client-ca and named by
--client-cn gets a review evaluated and audited; the probes and /metrics stay open without one."""

from __future__ import annotations

import shutil
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.e2e.clientcerts import CA, audit_keys, audited_uids, client_cert, make_ca, signing_key, write_jwks
from tests.e2e.test_serve import Server, _start, _stop, certs  # noqa: F401 (certs is a fixture)
from tests.helpers import postgres_schema
from tests.unit.webhook.builders import pod, review

pytestmark = pytest.mark.e2e


@dataclass
class Mtls:
    server: Server
    ca: CA
    ca_file: Path
    dir: Path
    audit_log: str

    def client(self, cert: tuple[str, str] | None = None) -> httpx.Client:
        context = ssl.create_default_context(cafile=str(self.dir / "tls" / "ca.crt"))
        if cert is not None:
            context.load_cert_chain(*cert)
        return httpx.Client(base_url=self.server.url, verify=context, timeout=10)

    def audited(self) -> list[str]:
        return audited_uids(self.audit_log)


@pytest.fixture(scope="module")
def mtls(tmp_path_factory: pytest.TempPathFactory, certs: Path) -> Iterator[Mtls]:  # noqa: F811
    tmp = tmp_path_factory.mktemp("mtls")
    shutil.copytree(certs, tmp / "tls")
    keys = audit_keys(tmp)
    ca = make_ca("apiserver client CA")
    ca_file = tmp / "client-ca.crt"
    ca_file.write_bytes(ca.pem())
    log = str(tmp / "audit.db")
    server = _start(
        tmp, certs,
        "--client-ca", str(ca_file), "--client-cn", "kube-apiserver", "--client-cn", "apiserver-webhook-client",
        "--tls-reload-interval", "0.2",
        "--audit-log", log, "--audit-key", str(keys / "audit.key"),
    )  # fmt: skip
    yield Mtls(server, ca, ca_file, tmp, log)
    _stop(server)


def _post(client: httpx.Client, uid: str) -> httpx.Response:
    return client.post("/validate", json=review(pod(image="x:latest"), uid=uid))


def test_the_right_certificate_is_admitted_and_audited(mtls: Mtls) -> None:
    cert = client_cert(mtls.ca, "kube-apiserver", mtls.dir / "ok")
    with mtls.client(cert) as client:
        answer = _post(client, "good-cert")
    assert answer.status_code == 200 and answer.json()["response"]["uid"] == "good-cert"
    assert "good-cert" in mtls.audited()


def test_no_certificate_is_401_and_never_evaluated_nor_audited(mtls: Mtls) -> None:
    with mtls.client() as client:
        answer = _post(client, "no-cert")
        metrics = client.get("/metrics").text
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "unauthenticated"
    assert "response" not in answer.json()
    assert 'policyengine_unauthenticated_requests_total{reason="no_credentials"}' in metrics
    assert "no-cert" not in mtls.audited()


def test_a_certificate_of_another_ca_fails_the_handshake(mtls: Mtls) -> None:
    other = client_cert(make_ca("someone else"), "kube-apiserver", mtls.dir / "other")
    with mtls.client(other) as client, pytest.raises(httpx.TransportError):
        _post(client, "other-ca")
    assert "other-ca" not in mtls.audited()


def test_an_expired_certificate_fails_the_handshake(mtls: Mtls) -> None:
    expired = client_cert(mtls.ca, "kube-apiserver", mtls.dir / "expired", expired=True)
    with mtls.client(expired) as client, pytest.raises(httpx.TransportError):
        _post(client, "expired-cert")
    assert "expired-cert" not in mtls.audited()


def test_a_name_not_allowed_is_403_logged_and_not_audited(mtls: Mtls) -> None:
    cert = client_cert(mtls.ca, "some-pod", mtls.dir / "pod")
    with mtls.client(cert) as client:
        # a client cannot choose the address its refusal is logged under
        client.headers["X-Forwarded-For"] = "10.9.9.9"
        answer = _post(client, "wrong-cn")
        metrics = client.get("/metrics").text
    assert answer.status_code == 403
    assert "some-pod" in answer.json()["error"]["message"]
    assert 'policyengine_unauthenticated_requests_total{reason="client_name"}' in metrics
    assert "wrong-cn" not in mtls.audited()
    deadline = time.monotonic() + 30
    while not any(
        line.get("msg") == "unauthenticated request refused" and line.get("reason") == "client_name"
        for line in mtls.server.logs()
    ):
        assert time.monotonic() < deadline, "no log line for the refused certificate"
        time.sleep(0.1)
    line = next(line for line in mtls.server.logs() if line.get("reason") == "client_name" and "peer" in line)
    assert line["peer"].startswith("127.0.0.1:")


def test_probes_and_metrics_stay_open_without_a_certificate(mtls: Mtls) -> None:
    with mtls.client() as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 200
        assert client.get("/metrics").status_code == 200


def test_a_replaced_client_ca_is_used_for_new_handshakes_without_restart(mtls: Mtls) -> None:
    new_ca = make_ca("rotated client CA")
    cert = client_cert(new_ca, "apiserver-webhook-client", mtls.dir / "rotated")
    with mtls.client(cert) as client, pytest.raises(httpx.TransportError):
        _post(client, "before-rotation")
    tmp = mtls.ca_file.with_suffix(".new")
    tmp.write_bytes(new_ca.pem() + mtls.ca.pem())
    tmp.replace(mtls.ca_file)
    deadline = time.monotonic() + 30
    while True:
        try:
            with mtls.client(cert) as client:
                answer = _post(client, "after-rotation")
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline, "the new client CA was never served"
            time.sleep(0.2)
    assert answer.status_code == 200
    assert "after-rotation" in mtls.audited() and "before-rotation" not in mtls.audited()


def test_a_garbage_client_ca_keeps_the_previous_one(mtls: Mtls) -> None:
    cert = client_cert(mtls.ca, "kube-apiserver", mtls.dir / "kept")
    previous = mtls.ca_file.read_bytes()
    mtls.ca_file.write_bytes(b"-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n")
    try:
        deadline = time.monotonic() + 30
        while not any("client-ca.crt" in str(line.get("error", "")) for line in mtls.server.logs()):
            assert time.monotonic() < deadline, "the broken client CA was never reported"
            time.sleep(0.1)
        with mtls.client(cert) as client:
            assert _post(client, "ca-kept").status_code == 200
    finally:
        mtls.ca_file.write_bytes(previous)


def test_with_both_configured_either_a_certificate_or_a_token_is_enough(
    tmp_path: Path,
    certs: Path,  # noqa: F811
) -> None:
    ca = make_ca("apiserver client CA")
    (tmp_path / "client-ca.crt").write_bytes(ca.pem())
    key = signing_key("k1")
    write_jwks(tmp_path / "jwks.json", key)
    server = _start(
        tmp_path, certs,
        "--client-ca", str(tmp_path / "client-ca.crt"), "--client-cn", "kube-apiserver",
        "--apiserver-jwks", str(tmp_path / "jwks.json"), "--apiserver-audience", "policyengine",
    )  # fmt: skip
    both = Mtls(server, ca, tmp_path / "client-ca.crt", tmp_path, "")
    shutil.copytree(certs, tmp_path / "tls")
    good = client_cert(ca, "kube-apiserver", tmp_path / "good")
    wrong = client_cert(ca, "some-pod", tmp_path / "wrong")
    token = {"Authorization": f"Bearer {key.token()}"}
    bad_token = {"Authorization": f"Bearer {signing_key('k1').token()}"}
    body = review(pod(), uid="both")
    try:
        with both.client(good) as client:
            assert client.post("/validate", json=body).status_code == 200
            assert client.post("/validate", json=body, headers=bad_token).status_code == 200
        with both.client() as client:
            assert client.post("/validate", json=body, headers=token).status_code == 200
            assert client.post("/validate", json=body).status_code == 401
            assert client.post("/validate", json=body, headers=bad_token).status_code == 401
        with both.client(wrong) as client:
            assert client.post("/validate", json=body, headers=token).status_code == 200
            assert client.post("/validate", json=body).status_code == 403
    finally:
        _stop(server)


def test_every_worker_process_requires_the_certificate(tmp_path: Path, certs: Path) -> None:  # noqa: F811
    ca = make_ca("apiserver client CA")
    (tmp_path / "client-ca.crt").write_bytes(ca.pem())
    with postgres_schema("clientauth_") as dsn:
        server = _start(
            tmp_path, certs, "--workers", "2", "--reservations", dsn,
            "--client-ca", str(tmp_path / "client-ca.crt"), "--client-cn", "kube-apiserver",
        )  # fmt: skip
        _check_every_worker(server, ca, tmp_path, certs)


def _check_every_worker(server: Server, ca: CA, tmp_path: Path, certs: Path) -> None:  # noqa: F811
    shutil.copytree(certs, tmp_path / "tls")
    workers = Mtls(server, ca, tmp_path / "client-ca.crt", tmp_path, "")
    good = client_cert(ca, "kube-apiserver", tmp_path / "good")
    try:
        for n in range(8):  # new connections: spread over both processes
            with workers.client() as client:
                assert _post(client, f"anon-{n}").status_code == 401
            with workers.client(good) as client:
                assert _post(client, f"good-{n}").status_code == 200
    finally:
        _stop(server)
