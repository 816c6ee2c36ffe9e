"""``policyengine serve`` for real: a uvicorn subprocess over TLS with certificates from
``policyengine certs``, called with httpx verifying the CA, as kube-apiserver would."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from tests.helpers import postgres_schema
from tests.unit.webhook.builders import POLICIES, pod, review, write_policies
from tests.unit.webhook.fake_apiserver import FakeAPIServer, kubeconfig

pytestmark = pytest.mark.e2e


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    tls: ssl.SSLContext
    policies: Path
    stderr: Path
    log: IO[bytes]

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, verify=self.tls, timeout=10)

    def logs(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stderr.read_text().splitlines() if line.startswith("{")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "policyengine", *args], capture_output=True, text=True, check=True
    )


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tls")
    _cli("certs", "--out", str(out), "--dns", "localhost", "--dns", "127.0.0.1")
    return out


def _start(tmp: Path, certs: Path, *extra: str, ready: bool = True) -> Server:
    policies = tmp / "policies"
    write_policies(policies)
    port = _free_port()
    stderr = tmp / "server.log"
    log = stderr.open("wb")
    process = subprocess.Popen(
        [
            sys.executable, "-m", "policyengine", "serve",
            "--host", "127.0.0.1", "--port", str(port),
            "--tls-cert", str(certs / "tls.crt"), "--tls-key", str(certs / "tls.key"),
            "--no-default-policies", "--policies", str(policies),
            "--reload-interval", "0.2", *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=log,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    tls = ssl.create_default_context(cafile=certs / "ca.crt")
    server = Server(f"https://127.0.0.1:{port}", process, tls, policies, stderr, log)
    deadline = time.monotonic() + 30
    with server.client() as client:
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                _stop(server)
                raise AssertionError(stderr.read_text())
            try:
                if client.get("/readyz").status_code == 200 or not ready:
                    return server
            except httpx.TransportError:
                pass
            time.sleep(0.1)


def _stop(server: Server) -> None:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()
    finally:
        server.log.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, certs: Path) -> Iterator[Server]:
    running = _start(tmp_path_factory.mktemp("serve"), certs)
    yield running
    _stop(running)


def test_tls_admission_with_the_ca_as_kube_apiserver_verifies_it(server: Server) -> None:
    with server.client() as client:
        denied = client.post("/validate", json=review(pod(image="x:latest"), uid="e2e-1")).json()["response"]
        allowed = client.post("/validate", json=review(pod(labels={"team": "t"}), uid="e2e-2")).json()[
            "response"
        ]
    assert denied["uid"] == "e2e-1" and denied["allowed"] is False and denied["status"]["code"] == 403
    assert allowed == {"uid": "e2e-2", "allowed": True, "auditAnnotations": {"no-latest-tag.containers": "1"}}


def test_an_untrusted_certificate_and_plain_http_are_refused(server: Server) -> None:
    with (
        httpx.Client(verify=ssl.create_default_context(), timeout=5) as client,
        pytest.raises(httpx.ConnectError),
    ):
        client.get(server.url + "/healthz")
    with httpx.Client(timeout=5) as client, pytest.raises(httpx.TransportError):
        client.get(server.url.replace("https://", "http://") + "/healthz")


def test_concurrent_requests_each_get_their_own_answer(server: Server) -> None:
    async def run() -> list[tuple[str, bool, bool]]:
        async with httpx.AsyncClient(base_url=server.url, verify=server.tls, timeout=20) as client:

            async def one(i: int) -> tuple[str, bool, bool]:
                bad = i % 3 == 0
                body = review(pod(f"p{i}", image="x:latest" if bad else "x:1"), uid=f"c-{i}")
                out = (await client.post("/validate", json=body)).json()["response"]
                return out["uid"], out["allowed"], not bad

            bodies = [one(i) for i in range(60)]
            # Hostile requests in the same burst must not disturb the others.
            junk = [client.post("/validate", content=b"[" * 50_000) for _ in range(5)]
            results = await asyncio.gather(*bodies, *junk)
            assert all(r.status_code == 400 for r in results[60:])  # type: ignore[union-attr]
            return results[:60]  # type: ignore[return-value]

    for i, (uid, allowed, expected) in enumerate(asyncio.run(run())):
        assert uid == f"c-{i}" and allowed is expected


def test_hostile_input_is_refused_and_the_server_lives_on(server: Server) -> None:
    with server.client() as client:
        assert client.post("/validate", content=b"{nope").json()["error"]["code"] == "invalid_json"
        big = client.post(
            "/validate", content=b"x" * (3 * 1024 * 1024 + 1), headers={"content-type": "application/json"}
        )
        assert big.status_code == 413
        assert client.get("/healthz").status_code == 200
        metrics = client.get("/metrics").text
    assert 'policyengine_bad_requests_total{code="invalid_json"}' in metrics
    assert server.process.poll() is None


def test_one_json_log_line_per_admission(server: Server) -> None:
    with server.client() as client:
        client.post("/validate", json=review(pod("logged"), uid="log-1"))
    deadline = time.monotonic() + 5
    while not [x for x in server.logs() if x.get("uid") == "log-1"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    (line,) = [x for x in server.logs() if x.get("uid") == "log-1"]
    assert line["msg"] == "admission" and line["resource"]["name"] == "logged" and "latency_ms" in line


def _until(running: Server, predicate: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, running.stderr.read_text()
        time.sleep(0.05)


def test_sighup_reloads_and_a_broken_set_is_kept_out(tmp_path: Path, certs: Path) -> None:
    running = _start(tmp_path, certs, "--reload-interval", "0")
    try:
        with running.client() as client:
            before = client.get("/readyz").json()["policies"]["digest"]
            write_policies(running.policies, POLICIES.replace("endsWith(':latest')", "endsWith(':old')"))
            running.process.send_signal(signal.SIGHUP)
            _until(running, lambda: client.get("/readyz").json()["policies"]["digest"] != before)
            assert client.post("/validate", json=review(pod(image="x:latest"))).json()["response"]["allowed"]
            write_policies(running.policies, "not: [valid")
            running.process.send_signal(signal.SIGHUP)
            _until(running, lambda: "lastReloadError" in client.get("/readyz").json()["policies"])
            assert client.get("/readyz").status_code == 200
    finally:
        _stop(running)


def test_several_workers_serve(tmp_path: Path, certs: Path) -> None:
    with postgres_schema("workers_") as dsn:
        _serve_with_workers(tmp_path, certs, dsn)


def _serve_with_workers(tmp_path: Path, certs: Path, dsn: str) -> None:
    running = _start(tmp_path, certs, "--workers", "2", "--reservations", dsn)
    try:
        with running.client() as client:
            for i in range(12):  # both workers answer: each loaded its set before accepting requests
                response = client.post("/validate", json=review(pod(image="x:latest"), uid=f"w-{i}"))
                assert response.status_code == 200, (response.text, running.stderr.read_text())
                assert response.json()["response"]["allowed"] is False
    finally:
        _stop(running)


def test_a_broken_policy_set_exits_2_before_serving(tmp_path: Path, certs: Path) -> None:
    bad = tmp_path / "bad"
    write_policies(
        bad, "apiVersion: policyengine.io/v1\nkind: Policy\nmetadata: {name: x}\nspec: {validations: 3}\n"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "policyengine",
            "serve",
            "--insecure-http",
            "--no-default-policies",
            "--policies",
            str(bad),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2 and "schema_invalid" in done.stderr


NAMESPACE_POLICY = """
apiVersion: policyengine.io/v1
kind: Policy
metadata: {name: namespace-has-team}
spec:
  match: {kinds: [{apiGroups: [""], kinds: [Pod]}]}
  validations:
    - expression: "has(namespaceObject.metadata.labels) && 'policyengine.io/team' in namespaceObject.metadata.labels"
      message: "the namespace has no team"
"""


def test_kube_inventory_gates_readiness_and_feeds_decisions(tmp_path: Path, certs: Path) -> None:
    fake = FakeAPIServer()
    url = fake.start()
    fake.put("namespaces", "apps", metadata={"labels": {"policyengine.io/team": "web"}})
    write_policies(tmp_path / "policies" / "ns", NAMESPACE_POLICY)
    kubeconfig_file = kubeconfig(tmp_path / "kubeconfig", url)
    running = _start(tmp_path, certs, "--kube", "--kubeconfig", str(kubeconfig_file))
    try:
        with running.client() as client:
            detail = client.get("/readyz").json()["inventory"]
            assert detail["resources"]["namespaces"] == {**detail["resources"]["namespaces"], "synced": True}
            body = review(pod(labels={"team": "t"}))
            assert client.post("/validate", json=body).json()["response"]["allowed"] is True
            fake.put("namespaces", "apps")  # the team label is removed: the watch brings the change
            deadline = time.monotonic() + 10
            while client.post("/validate", json=body).json()["response"]["allowed"]:
                assert time.monotonic() < deadline
                time.sleep(0.05)
    finally:
        _stop(running)
        fake.stop()


def test_kube_inventory_not_synced_is_not_ready(tmp_path: Path, certs: Path) -> None:
    kubeconfig_file = kubeconfig(tmp_path / "kubeconfig", f"http://127.0.0.1:{_free_port()}")
    running = _start(
        tmp_path, certs, "--kube", "--kubeconfig", str(kubeconfig_file), "--sync-timeout", "0.5", ready=False
    )
    try:
        with running.client() as client:
            ready = client.get("/readyz")
        assert ready.status_code == 503
        assert "waiting for the first list" in ready.json()["inventory"]["reason"]
    finally:
        _stop(running)


DRA_POLICY = """
apiVersion: policyengine.io/v1
kind: Policy
metadata: {name: at-most-four-gpus}
spec:
  match: {kinds: [{apiGroups: [""], kinds: [Pod]}]}
  validations:
    - expression: "size(workload.problems) == 0"
      messageExpression: "workload.problems[0].message"
    - expression: "workload.gpus.total <= 4"
      messageExpression: "'asks for ' + string(workload.gpus.total) + ' GPUs'"
"""


def _claim_template(count: int) -> dict[str, Any]:
    request = {"name": "g", "exactly": {"deviceClassName": "gpu.nvidia.com", "count": count}}
    return {"spec": {"devices": {"requests": [request]}}}


def test_kube_inventory_resolves_dra_claim_templates_at_admission(tmp_path: Path, certs: Path) -> None:
    fake = FakeAPIServer()
    url = fake.start()
    fake.put("namespaces", "apps")
    write_policies(tmp_path / "policies" / "dra", DRA_POLICY)
    kubeconfig_file = kubeconfig(tmp_path / "kubeconfig", url)
    running = _start(tmp_path, certs, "--kube", "--kubeconfig", str(kubeconfig_file))
    obj = pod()
    obj["spec"]["resourceClaims"] = [{"name": "gpus", "resourceClaimTemplateName": "eight"}]
    body = review(obj)

    def message_becomes(text: str) -> None:
        deadline = time.monotonic() + 30
        while True:
            response = client.post("/validate", json=body).json()["response"]
            if text in json.dumps(response):
                return
            assert time.monotonic() < deadline, f"never saw {text!r}: {response}"
            time.sleep(0.05)

    try:
        with running.client() as client:
            detail = client.get("/readyz").json()["inventory"]["resources"]
            assert detail["resourceclaimtemplates"]["synced"] is True
            # Not in the cluster (yet): its GPUs cannot be counted, so the pod is denied, not let through.
            response = client.post("/validate", json=body).json()["response"]
            assert (
                response["allowed"] is False
                and "is not found in namespace apps" in response["status"]["message"]
            )
            fake.put("resourceclaimtemplates", "eight", "apps", spec=_claim_template(8))
            message_becomes("asks for 8 GPUs")
            fake.put("resourceclaimtemplates", "eight", "apps", spec=_claim_template(2))
            message_becomes('"allowed": true')
    finally:
        _stop(running)
        fake.stop()
