"""The auditors' read-only API: bearer tokens, entries, checkpoint and proofs."""

from __future__ import annotations

import base64
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():  # starlette 1.x prefers httpx2 for TestClient; httpx is what we have
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

from audit import AuditLog, verify_proof
from audit.api import create_app
from audit.checkpoint import peek_checkpoint
from audit.merkle import verify_consistency
from audit.note import Ed25519Signer, Verifier

Make = Callable[..., dict[str, Any]]
TOKEN = "s3cret-token"


@pytest.fixture
def client(tmp_path: Path, signer: Ed25519Signer, make: Make) -> Iterator[TestClient]:
    log = AuditLog.open(tmp_path / "audit.db", signer=signer)
    for i in range(25):
        log.append(make(i))
    log.sign_pending()
    tokens = tmp_path / "tokens"
    tokens.write_text(f"# auditors\n{TOKEN}\nother-token\n")
    with TestClient(create_app(log, tokens)) as test_client:
        test_client.headers["Authorization"] = f"Bearer {TOKEN}"
        yield test_client
    log.close()


@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic czNjcmV0LXRva2Vu", f"Bearer{TOKEN}"])
def test_requests_without_a_valid_token_get_401(client: TestClient, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    client.headers.pop("Authorization")
    response = client.get("/v1/checkpoint", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


def test_there_is_no_write_route(client: TestClient) -> None:
    assert client.post("/v1/entries", json={}).status_code == 405


def test_entries_filter_and_page(client: TestClient) -> None:
    page = client.get("/v1/entries", params={"verdict": "denied", "limit": 5}).json()
    assert [e["index"] for e in page["entries"]] == [1, 4, 7, 10, 13] and page["next"] == 13
    rest = client.get("/v1/entries", params={"verdict": "denied", "limit": 5, "after": page["next"]}).json()
    assert [e["index"] for e in rest["entries"]] == [16, 19, 22] and rest["next"] is None
    assert client.get("/v1/entries", params={"verdict": "nope"}).status_code == 400
    assert client.get("/v1/entries", params={"limit": "x"}).status_code == 400
    assert client.get("/v1/entries", params={"since": "yesterday"}).status_code == 400


def test_checkpoint_and_proofs(client: TestClient, verifier: Verifier) -> None:
    note = client.get("/v1/checkpoint").text
    assert peek_checkpoint(note).size == 25
    proof = client.get("/v1/proof/inclusion", params={"index": 9})
    checkpoint, _ = verify_proof(proof.text, verifier)
    assert checkpoint.size == 25
    body = client.get("/v1/proof/consistency", params={"from": 10, "to": 25}).json()
    old = peek_checkpoint(
        client.get("/v1/proof/inclusion", params={"index": 0, "size": 10}).text.split("\n\n", 1)[1]
    )
    verify_consistency(10, 25, old.root, checkpoint.root, [base64.b64decode(h) for h in body["proof"]])
    assert client.get("/v1/proof/inclusion", params={"index": 99}).status_code == 404
    assert client.get("/v1/proof/consistency", params={"from": 1, "to": 99}).status_code == 400


@pytest.mark.parametrize(
    "path",
    [
        "/v1/entries?after=99999999999999999999999",
        "/v1/entries?after=-99999999999999999999999",
        "/v1/proof/inclusion?index=1&size=99999999999999999999",
        "/v1/proof/inclusion?index=99999999999999999999&size=3",
        "/v1/proof/consistency?from=99999999999999999999&to=3",
    ],
)
def test_integers_beyond_int64_are_400_not_500(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 400, response.text
    assert "out of range" in response.json()["error"]


@pytest.mark.parametrize("when", ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+01:00"])
def test_times_outside_the_utc_range_are_400_not_500(client: TestClient, when: str) -> None:
    response = client.get("/v1/entries", params={"until": when})
    assert response.status_code == 400, response.text


def test_queries_beyond_the_cap_are_refused_at_once_and_off_the_event_loop(
    tmp_path: Path, signer: Ed25519Signer, make: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    log = AuditLog.open(tmp_path / "audit.db", signer=signer)
    log.append(make(0))
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{TOKEN}\n")
    on_loop: list[bool] = []
    real_query = log.query

    def query(q: Any) -> Any:
        try:
            asyncio.get_running_loop()
            on_loop.append(True)
        except RuntimeError:  # no event loop runs in this thread
            on_loop.append(False)
        return real_query(q)

    monkeypatch.setattr(log, "query", query)
    app = create_app(log, tokens, max_queries=2)
    with TestClient(app) as client:
        client.headers["Authorization"] = f"Bearer {TOKEN}"
        assert client.get("/v1/entries").status_code == 200
        cap = app.state.query_cap
        for _ in range(2):  # two queries being answered
            assert cap.slots.acquire(blocking=False)
        busy = client.get("/v1/entries", params={"limit": 1000})
        cap.slots.release()
        cap.slots.release()
        again = client.get("/v1/entries")
    log.close()
    assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
    assert busy.json()["code"] == "busy" and cap.refused == 1
    assert again.status_code == 200
    # The queries ran in a worker thread, not on a thread running the event loop.
    assert on_loop == [False, False]
