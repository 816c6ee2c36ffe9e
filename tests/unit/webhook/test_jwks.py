"""The API server's token keys: a JWKS read bounded from a file or URL, refreshed on an interval and on an
unknown key id at most once per min_refresh, a bad refresh keeping the last good keys; tokens checked
against an algorithm allow-list whose key type must fit."""

from __future__ import annotations

import contextlib
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.e2e.clientcerts import signing_key, write_jwks
from webhook.jwks import MAX_JWKS_BYTES, JwksError, TokenRefused, TokenVerifier


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _verifier(jwks: str, clock: Clock) -> TokenVerifier:
    return TokenVerifier(
        jwks,
        audience="policyengine",
        issuer="https://kubernetes.default.svc",
        interval=300,
        min_refresh=10,
        clock=clock,
    )


def test_unknown_key_ids_refresh_the_jwks_at_most_once_per_min_refresh(tmp_path: Path) -> None:
    k1, k2 = signing_key("k1"), signing_key("k2")
    jwks = tmp_path / "jwks.json"
    write_jwks(jwks, k1)
    clock = Clock()
    verifier = _verifier(str(jwks), clock)
    clock.now += 11
    for n in range(100):  # a flood of tokens naming key ids nobody has
        with pytest.raises(TokenRefused, match="unknown key id"):
            verifier.verify(signing_key(f"nobody-{n}").token())
    assert verifier.refreshes == 1
    write_jwks(jwks, k1, k2)
    with pytest.raises(TokenRefused, match="unknown key id"):
        verifier.verify(k2.token())  # within min_refresh of the last refresh: not fetched again
    clock.now += 11
    assert verifier.verify(k2.token())["aud"] == "policyengine"
    assert verifier.refreshes == 2


def test_a_garbage_refresh_keeps_the_last_good_keys(tmp_path: Path) -> None:
    k1 = signing_key("k1")
    jwks = tmp_path / "jwks.json"
    write_jwks(jwks, k1)
    clock = Clock()
    verifier = _verifier(str(jwks), clock)
    jwks.write_bytes(b"\x00" * (MAX_JWKS_BYTES + 10))
    clock.now += 301  # the interval has passed: the next token refreshes
    assert verifier.verify(k1.token())["iss"] == "https://kubernetes.default.svc"
    assert verifier.last_error is not None and "larger than" in verifier.last_error
    assert verifier.refreshes == 0


def test_an_algorithm_must_fit_the_key_type(tmp_path: Path) -> None:
    jwks = tmp_path / "jwks.json"
    write_jwks(jwks, signing_key("k1"))
    verifier = _verifier(str(jwks), Clock())
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode({"aud": "policyengine"}, rsa_key, algorithm="RS256", headers={"kid": "k1"})
    with pytest.raises(TokenRefused, match="does not fit the EC key"):
        verifier.verify(token)


def test_a_jwks_with_private_key_material_is_refused(tmp_path: Path) -> None:
    key = signing_key("k1")
    private = {**key.jwk(), "d": "AAAA"}
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [private]}))
    with pytest.raises(JwksError, match=r"keys\[0\]: holds private"):
        _verifier(str(jwks), Clock())


class _Huge(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(10 * 1024 * 1024))
        self.end_headers()
        with contextlib.suppress(OSError):  # the reader stops at its cap and closes
            self.wfile.write(b"{" + b" " * (10 * 1024 * 1024 - 2) + b"}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def huge_url() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Huge)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/jwks"
    server.shutdown()
    server.server_close()


def test_a_plain_http_jwks_url_off_the_loopback_is_refused() -> None:
    with pytest.raises(JwksError, match="must be https://"):
        _verifier("http://jwks.example/keys", Clock())


def test_a_10_mb_jwks_url_is_read_no_further_than_the_cap(huge_url: str) -> None:
    with pytest.raises(JwksError, match=f"larger than {MAX_JWKS_BYTES} bytes"):
        _verifier(huge_url, Clock())
