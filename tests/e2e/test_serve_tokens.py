"""API-server bearer tokens on a real `serve` (--apiserver-jwks): only a token signed by a key of the
JWKS, for the audience and issuer, within exp/nbf, with an allowed algorithm gets a review evaluated and
audited; a new key id in the JWKS is picked up without restart; hostile tokens and JWKS are bounded."""

from __future__ import annotations

import base64
import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import jwt
import pytest

from tests.e2e.clientcerts import SigningKey, audit_keys, audited_uids, signing_key, write_jwks
from tests.e2e.test_serve import Server, _start, _stop, certs  # noqa: F401 (certs is a fixture)
from tests.helpers import run_policyengine
from tests.unit.webhook.builders import pod, review

pytestmark = pytest.mark.e2e

ISSUER = "https://kubernetes.default.svc"


@dataclass
class Tokens:
    server: Server
    key: SigningKey
    jwks: Path
    audit_log: str

    def post(self, uid: str, authorization: str | None) -> httpx.Response:
        headers = {"Authorization": authorization} if authorization is not None else {}
        with self.server.client() as client:
            return client.post("/validate", json=review(pod(image="x:latest"), uid=uid), headers=headers)

    def audited(self) -> list[str]:
        return audited_uids(self.audit_log)


@pytest.fixture(scope="module")
def tokens(tmp_path_factory: pytest.TempPathFactory, certs: Path) -> Iterator[Tokens]:  # noqa: F811
    tmp = tmp_path_factory.mktemp("tokens")
    keys = audit_keys(tmp)
    key = signing_key("k1")
    jwks = tmp / "jwks.json"
    write_jwks(jwks, key)
    log = str(tmp / "audit.db")
    server = _start(
        tmp, certs,
        "--apiserver-jwks", str(jwks), "--apiserver-audience", "policyengine", "--apiserver-issuer", ISSUER,
        "--audit-log", log, "--audit-key", str(keys / "audit.key"),
    )  # fmt: skip
    yield Tokens(server, key, jwks, log)
    _stop(server)


def _unsigned(claims: dict[str, object], alg: str = "none", kid: str = "k1") -> str:
    def part(value: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': alg, 'kid': kid, 'typ': 'JWT'})}.{part(claims)}."


def test_a_valid_token_is_admitted_and_audited(tokens: Tokens) -> None:
    answer = tokens.post("good-token", f"Bearer {tokens.key.token()}")
    assert answer.status_code == 200 and answer.json()["response"]["uid"] == "good-token"
    assert "good-token" in tokens.audited()


def test_bad_tokens_are_401_counted_and_never_audited(tokens: Tokens) -> None:
    now = int(time.time())
    forged = SigningKey("k1", signing_key("k1").key)  # the right key id, another key
    hs256 = jwt.encode(
        {"aud": "policyengine", "iss": ISSUER, "exp": now + 300, "nbf": now},
        "secret-shared-with-no-one" * 2,
        algorithm="HS256",
        headers={"kid": "k1"},
    )
    bad = {
        "missing": None,
        "not-bearer": "Basic dXNlcjpwYXNz",
        "forged": f"Bearer {forged.token()}",
        "expired": f"Bearer {tokens.key.token(exp=now - 3600, nbf=now - 7200)}",
        "not-yet-valid": f"Bearer {tokens.key.token(nbf=now + 3600, exp=now + 7200)}",
        "wrong-audience": f"Bearer {tokens.key.token(aud='someone-else')}",
        "wrong-issuer": f"Bearer {tokens.key.token(iss='https://evil.example')}",
        "no-exp": f"Bearer {tokens.key.token(exp=None)}",
        "alg-none": "Bearer "
        + _unsigned({"aud": "policyengine", "iss": ISSUER, "exp": now + 300, "nbf": now}),
        "hs256": f"Bearer {hs256}",
        "malformed": "Bearer not.a.jwt",
        "garbage": "Bearer %%%%",
        "oversized": "Bearer " + "a" * 9000,
    }
    for uid, authorization in bad.items():
        answer = tokens.post(uid, authorization)
        assert answer.status_code == 401, (uid, answer.text)
        assert answer.headers["www-authenticate"] == "Bearer"
        assert "response" not in answer.json(), uid
    audited = tokens.audited()
    assert not set(bad) & set(audited), audited
    with tokens.server.client() as client:
        metrics = client.get("/metrics").text
    assert 'policyengine_unauthenticated_requests_total{reason="token_invalid"} 12' in metrics
    assert 'policyengine_unauthenticated_requests_total{reason="no_credentials"} 1' in metrics


def test_a_one_megabyte_authorization_header_is_refused_and_the_server_stays_up(tokens: Tokens) -> None:
    try:
        answer = tokens.post("huge-header", "Bearer " + "a" * (1024 * 1024))
        assert answer.status_code in (400, 401, 431)
    except httpx.TransportError:
        pass  # the server closed the connection on an over-long head: refused too
    assert "huge-header" not in tokens.audited()
    assert tokens.post("after-huge", f"Bearer {tokens.key.token()}").status_code == 200


def test_a_new_key_id_in_the_jwks_is_used_without_restart(tokens: Tokens) -> None:
    rotated = signing_key("k2")
    write_jwks(tokens.jwks, tokens.key, rotated)
    token = f"Bearer {rotated.token()}"
    deadline = time.monotonic() + 60  # an unknown key id refreshes the JWKS at most every 10 s
    while (answer := tokens.post("rotated", token)).status_code != 200:
        assert answer.status_code == 401, answer.text
        assert time.monotonic() < deadline, "the new key was never picked up"
        time.sleep(0.5)
    assert "rotated" in tokens.audited()


def test_probes_and_metrics_need_no_token(tokens: Tokens) -> None:
    with tokens.server.client() as client:
        assert [client.get(p).status_code for p in ("/healthz", "/readyz", "/metrics")] == [200, 200, 200]
        auth = client.get("/readyz").json()["clientAuth"]
    assert auth["clientCertificate"] is False and auth["tokens"]["jwks"] == str(tokens.jwks)
    assert "k1" in auth["tokens"]["keyIds"] and auth["tokens"]["lastError"] is None


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"\x00garbage{", "not JSON"),
        (b"{" + b" " * (10 * 1024 * 1024) + b"}", "larger than 65536 bytes"),
        (b'{"keys": [{"kty": "oct", "kid": "s", "k": "c2VjcmV0"}]}', "not a public-key type"),
        (b'{"keys": []}', 'no "keys" list'),
    ],
)
def test_a_bad_jwks_stops_the_start_naming_the_file(
    tmp_path: Path,
    certs: Path,  # noqa: F811
    content: bytes,
    expected: str,
) -> None:
    jwks = tmp_path / "jwks.json"
    jwks.write_bytes(content)
    shutil.copy(certs / "tls.crt", tmp_path / "tls.crt")
    out = run_policyengine(
        "serve", "--tls-cert", str(certs / "tls.crt"), "--tls-key", str(certs / "tls.key"),
        "--apiserver-jwks", str(jwks), "--apiserver-audience", "policyengine",
    )  # fmt: skip
    assert out.returncode == 2, out.stderr
    assert str(jwks) in out.stderr and expected in out.stderr
