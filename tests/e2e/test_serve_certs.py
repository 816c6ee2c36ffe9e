"""``policyengine serve`` renews its certificate: the pair under ``--tls-cert``/``--tls-key`` is replaced
the way the kubelet updates a mounted Secret (a new directory, then the ``..data`` symlink swapped), and
new connections get the new certificate while a connection opened before keeps working; a broken pair
is refused and reported; the expiry is exported and warned about."""

from __future__ import annotations

import hashlib
import os
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from tests.e2e.test_serve import Server, _start, _stop
from tests.helpers import postgres_schema
from webhook.prometheus import parse_samples
from webhook.tls import Issued, issue

pytestmark = pytest.mark.e2e

HANG_GUARD = 60.0  # seconds: fails a stuck test with the server's log, never a timing assertion
NAMES = ["localhost", "127.0.0.1"]
FAST = ("--tls-reload-interval", "0.1", "--header-timeout", "120")  # an idle connection outlives the test


def _leaf(issued: Issued) -> x509.Certificate:
    return x509.load_pem_x509_certificate(issued.cert_pem)


def _fingerprint(issued: Issued) -> str:
    return _leaf(issued).fingerprint(hashes.SHA256()).hex()


def _project(volume: Path, issued: Issued, version: str) -> None:
    """Write the pair as the kubelet writes a Secret volume: a new directory, then ``..data`` pointed at
    it in one rename; ``tls.crt`` and friends are symlinks through ``..data``."""
    target = volume / f"..{version}"
    target.mkdir()
    for name, data in (("ca.crt", issued.ca_pem), ("tls.crt", issued.cert_pem), ("tls.key", issued.key_pem)):
        (target / name).write_bytes(data)
    swap = volume / "..data_tmp"
    swap.symlink_to(target.name)
    os.replace(swap, volume / "..data")
    for name in ("ca.crt", "tls.crt", "tls.key"):
        if not (volume / name).is_symlink():
            (volume / name).symlink_to(f"..data/{name}")


class Connection:
    """One TLS connection, kept open across requests (HTTP/1.1 keep-alive)."""

    def __init__(self, port: int, context: ssl.SSLContext) -> None:
        raw = socket.create_connection(("127.0.0.1", port), timeout=HANG_GUARD)
        self.sock = context.wrap_socket(raw, server_hostname="127.0.0.1")

    def peer(self) -> str:
        der = self.sock.getpeercert(binary_form=True)
        assert der is not None
        return hashlib.sha256(der).hexdigest()

    def get(self, path: str) -> int:
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = self.sock.recv(65536)
            assert chunk, f"the server closed the connection: {data!r}"
            data += chunk
        head, body = data.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        length = next(
            int(v) for k, _, v in (h.partition(":") for h in lines[1:]) if k.lower() == "content-length"
        )
        while len(body) < length:
            chunk = self.sock.recv(65536)
            assert chunk, "the server closed the connection mid-body"
            body += chunk
        return int(lines[0].split()[1])

    def close(self) -> None:
        self.sock.close()


def _any_cert() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the test reads which certificate is served; it trusts none
    return context


def _port(server: Server) -> int:
    return int(server.url.rsplit(":", 1)[1])


def _served(server: Server) -> str:
    """The fingerprint of the certificate a new connection is given."""
    connection = Connection(_port(server), _any_cert())
    try:
        return connection.peer()
    finally:
        connection.close()


def _until(server: Server, predicate: Callable[[], bool]) -> None:
    deadline = time.monotonic() + HANG_GUARD
    while not predicate():
        assert time.monotonic() < deadline, server.stderr.read_text()
        time.sleep(0.05)


def _readyz(server: Server) -> dict[str, Any]:
    with httpx.Client(base_url=server.url, verify=_any_cert(), timeout=HANG_GUARD) as client:
        body: dict[str, Any] = client.get("/readyz").json()
        return body


def _metric(server: Server, name: str) -> float:
    with httpx.Client(base_url=server.url, verify=_any_cert(), timeout=HANG_GUARD) as client:
        samples = [v for n, _, v in parse_samples(client.get("/metrics").text) if n == name]
    assert len(samples) == 1, (name, samples)
    return samples[0]


@pytest.fixture
def volume(tmp_path: Path) -> Path:
    out = tmp_path / "secret"
    out.mkdir()
    return out


@pytest.fixture
def first() -> Issued:
    return issue(NAMES)


@pytest.fixture
def running(tmp_path: Path, volume: Path, first: Issued, request: pytest.FixtureRequest) -> Iterator[Server]:
    _project(volume, first, "v1")
    extra = tuple(getattr(request, "param", ()))
    if "--workers" not in extra:
        server = _start(tmp_path, volume, *FAST)
        yield server
        _stop(server)
        return
    with postgres_schema("certs_") as dsn:  # several workers share their GPU reservations there
        server = _start(tmp_path, volume, *FAST, *extra, "--reservations", dsn)
        yield server
        _stop(server)


@pytest.mark.parametrize("running", [(), ("--workers", "2")], indirect=True, ids=["one-process", "workers"])
def test_a_renewed_secret_is_served_to_new_connections_and_old_ones_keep_working(
    running: Server, volume: Path, first: Issued
) -> None:
    before = Connection(_port(running), ssl.create_default_context(cafile=volume / "ca.crt"))
    assert before.get("/healthz") == 200
    assert before.peer() == _fingerprint(first)

    renewed = issue(NAMES)
    _project(volume, renewed, "v2")
    _until(running, lambda: _served(running) == _fingerprint(renewed))
    # Every process serves it (with --workers each one polls the files itself).
    _until(running, lambda: all(_served(running) == _fingerprint(renewed) for _ in range(20)))
    # It verifies against its own CA, as kube-apiserver would once the caBundle is updated.
    after = Connection(_port(running), ssl.create_default_context(cafile=volume / "ca.crt"))
    assert after.get("/healthz") == 200
    after.close()

    # The connection made before the swap still answers, over the certificate it was made with.
    assert before.get("/readyz") == 200
    assert before.peer() == _fingerprint(first)
    before.close()

    tls = _readyz(running)["tls"]
    assert tls["serial"] == format(_leaf(renewed).serial_number, "x")
    assert tls["reloadFailures"] == 0 and tls["lastError"] is None
    assert any(e["msg"] == "serving certificate reloaded" for e in running.logs())
    assert not any(e["msg"].startswith("serving certificate expires") for e in running.logs())


def test_a_broken_pair_keeps_the_working_certificate_and_is_reported(
    running: Server, volume: Path, first: Issued
) -> None:
    other, third = issue(NAMES), issue(NAMES)
    # A certificate with someone else's key.
    _project(volume, Issued(other.ca_pem, other.cert_pem, third.key_pem), "v2")
    _until(running, lambda: _readyz(running)["tls"]["reloadFailures"] == 1)
    tls = _readyz(running)["tls"]
    assert str(volume / "tls.key") in tls["lastError"] and "does not belong" in tls["lastError"]
    assert _served(running) == _fingerprint(first)
    assert tls["serial"] == format(_leaf(first).serial_number, "x")

    # A certificate cut off half way (a file still being written, garbage).
    _project(volume, Issued(other.ca_pem, other.cert_pem[: len(other.cert_pem) // 2], other.key_pem), "v3")
    _until(running, lambda: _readyz(running)["tls"]["reloadFailures"] == 2)
    assert str(volume / "tls.crt") in _readyz(running)["tls"]["lastError"]
    assert _served(running) == _fingerprint(first)
    assert _metric(running, "policyengine_tls_certificate_reload_failures") == 2
    errors = [
        e for e in running.logs() if e["level"] == "error" and e["msg"].startswith("serving certificate")
    ]
    assert [str(volume / "tls.key") in errors[0]["error"], str(volume / "tls.crt") in errors[1]["error"]] == [
        True,
        True,
    ]

    # The next good pair is taken.
    _project(volume, other, "v4")
    _until(running, lambda: _served(running) == _fingerprint(other))
    assert _readyz(running)["tls"]["lastError"] is None


@pytest.fixture
def short_lived() -> Issued:
    return issue(NAMES, days=10)


@pytest.fixture
def expiring(tmp_path: Path, volume: Path, short_lived: Issued) -> Iterator[Server]:
    _project(volume, short_lived, "v1")
    server = _start(tmp_path, volume, *FAST)
    yield server
    _stop(server)


def test_the_expiry_is_exported_reported_and_warned_about(expiring: Server, short_lived: Issued) -> None:
    leaf = _leaf(short_lived)
    tls = _readyz(expiring)["tls"]
    assert tls["notAfter"] == leaf.not_valid_after_utc.isoformat().replace("+00:00", "Z")
    assert tls["serial"] == format(leaf.serial_number, "x")
    assert tls["sha256"] == _fingerprint(short_lived)
    assert tls["names"] == NAMES and tls["subject"] == "CN=localhost"
    ten_days = 10 * 86400
    assert ten_days - 86400 < tls["secondsLeft"] <= ten_days
    assert ten_days - 86400 < _metric(expiring, "policyengine_tls_certificate_expiry_seconds") <= ten_days
    warnings = [e for e in expiring.logs() if e["msg"] == "serving certificate expires soon"]
    assert warnings and 9 < warnings[0]["daysLeft"] <= 10 and warnings[0]["level"] == "warning"
