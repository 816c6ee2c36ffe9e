"""audit/console/static/verifypage.js in headless chromium, on pages with the console's verification
markup under a strict CSP, against the real auditors' API over real SQLite logs: the decision page says
"Included in checkpoint N signed by K" or exactly what failed (tampered entry, forged checkpoint, wrong
key, missing token or key), and the log page checks the checkpoint kept in the browser against the
current one."""

from __future__ import annotations

import base64
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from audit import AuditLog, keygen, load_signer, load_verifier
from audit.keys import KeyFiles
from audit.merkle import leaf_hash
from audit.note import Ed25519Signer
from tests.browser import chromium_session
from tests.e2e.verifyserver import TOKEN, Server, entry, running_server

pytestmark = [pytest.mark.e2e]
ORIGIN = "example.com/policyengine-audit"
TOKEN_KEY, KEY_KEY, LAST_KEY = "policyengine.token", "policyengine.publicKey", "policyengine.lastCheckpoint"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("server")) as running:
        yield running


@pytest.fixture(scope="module")
def browser(server: Server) -> Iterator[Any]:
    with chromium_session() as driver:
        yield driver


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> KeyFiles:
    return keygen(ORIGIN, tmp_path_factory.mktemp("keys"))


def fill(log: AuditLog, start: int, end: int, **over: Any) -> None:
    futures = [log.submit(entry(i, **(over if i == 40 else {}))) for i in range(start, end)]
    assert [f.result(timeout=60) for f in futures] == list(range(start, end))
    log.sign_pending()


@pytest.fixture
def db(tmp_path: Path, keys: KeyFiles, server: Server) -> Iterator[Path]:
    """A signed log of 300 entries; the API serves it read-only, as the console does a copy."""
    path = tmp_path / "audit.db"
    with AuditLog.open(path, signer=load_signer(keys.key)) as log:
        fill(log, 0, 300)
    reader = AuditLog.open(path)
    server.serve(reader)
    yield path
    reader.close()


def visit(browser: Any, server: Server, page: str, storage: dict[str, str | None]) -> dict[str, str]:
    """Set the browser's storage on the origin, open ``page`` and wait for the status to settle."""
    browser.get(server.base + "/verify-test/harness.html")
    for name, value in storage.items():
        area = "sessionStorage" if name == TOKEN_KEY else "localStorage"
        if value is None:
            browser.execute_script(f"{area}.removeItem(arguments[0])", name)
        else:
            browser.execute_script(f"{area}.setItem(arguments[0], arguments[1])", name, value)
    browser.get(server.base + page)
    status_id = "verification-status" if "decision" in page else "consistency-status"
    script = """
        const [id, done] = arguments;
        const settle = () => {
          const el = document.getElementById(id);
          if (el && (el.dataset.state === "ok" || el.dataset.state === "failed")) {
            done({...el.dataset, text: el.textContent, role: el.getAttribute("role")});
          } else setTimeout(settle, 50);
        };
        settle();
    """
    result: dict[str, str] = browser.execute_async_script(script, status_id)  # script timeout: hang guard
    return result


def signer_of(keys: KeyFiles) -> str:
    return f"{ORIGIN}+{load_verifier(keys.vkey).key_id.hex()}"


def storage(keys: KeyFiles, key_file: str = "vkey", **over: str | None) -> dict[str, str | None]:
    values: dict[str, str | None] = {
        TOKEN_KEY: TOKEN,
        KEY_KEY: getattr(keys, key_file).read_text(),
        LAST_KEY: None,
    }
    values.update({{"token": TOKEN_KEY, "key": KEY_KEY, "last": LAST_KEY}[k]: v for k, v in over.items()})
    return values


def sql(db: Path, statement: str, *args: Any) -> None:
    con = sqlite3.connect(db)
    with con:
        con.execute(statement, args)
    con.close()


@pytest.mark.parametrize("key_file", ["vkey", "pub"])
def test_the_decision_page_shows_the_entry_is_included(
    browser: Any, server: Server, db: Path, keys: KeyFiles, key_file: str
) -> None:
    server.requests.clear()
    status = visit(browser, server, "/page/decision/123", storage(keys, key_file))
    assert status["state"] == "ok", status
    assert status["text"] == f"Included in checkpoint 300 signed by {signer_of(keys)}"
    assert status["checkpointSize"] == "300" and status["signer"] == signer_of(keys)
    assert status["role"] == "status"
    # The token went in the Authorization header only, never in a URL.
    assert server.requests == [("/api/v1/proof/inclusion", "index=123", f"Bearer {TOKEN}")]


def test_a_tampered_entry_is_reported(browser: Any, server: Server, db: Path, keys: KeyFiles) -> None:
    con = sqlite3.connect(db)
    data = con.execute("SELECT data FROM entries WHERE idx = 7").fetchone()[0]
    con.close()
    edited = bytes(data).replace(b'"user1"', b'"user0"')
    assert edited != bytes(data)
    sql(db, "UPDATE entries SET data = ? WHERE idx = 7", edited)
    status = visit(browser, server, "/page/decision/7", storage(keys))
    assert status["state"] == "failed" and status["code"] == "root_mismatch"
    assert status["text"] == (
        "Verification failed. Entry 7 is not in checkpoint 300: inclusion proof does not lead to the root"
    )
    # Its neighbours still verify: the failure is the edited entry's, not the page's.
    assert visit(browser, server, "/page/decision/8", storage(keys))["state"] == "ok"


def test_a_tampered_entry_with_its_leaf_hash_recomputed_is_reported(
    browser: Any, server: Server, db: Path, keys: KeyFiles
) -> None:
    edited = b'{"forged":true}'
    sql(db, "UPDATE entries SET data = ?, leaf_hash = ? WHERE idx = 200", edited, leaf_hash(edited))
    status = visit(browser, server, "/page/decision/200", storage(keys))
    assert status["state"] == "failed" and status["code"] == "root_mismatch", status


def test_a_forged_checkpoint_signature_is_reported(
    browser: Any, server: Server, db: Path, keys: KeyFiles, tmp_path: Path
) -> None:
    """The stored checkpoint is replaced by one for a made-up root, signed by a key of the same name."""
    forger = keygen(ORIGIN, tmp_path / "forger")
    forged_signer: Ed25519Signer = load_signer(forger.key)
    con = sqlite3.connect(db)
    note = con.execute("SELECT note FROM checkpoints WHERE size = 300").fetchone()[0]
    con.close()
    head, _, line = note.rstrip("\n").rpartition("\n")
    # Same name and key id as the real signature line, but the signature is the forger's.
    real = base64.b64decode(line.rpartition(" ")[2])
    forged = real[:4] + forged_signer.sign((head + "\n").encode())
    sql(
        db,
        "UPDATE checkpoints SET note = ? WHERE size = 300",
        f"{head}\n\u2014 {ORIGIN} {base64.b64encode(forged).decode()}\n",
    )
    status = visit(browser, server, "/page/decision/5", storage(keys))
    assert status["state"] == "failed" and status["code"] == "signature_invalid"
    assert status["text"] == (
        f"Verification failed. The checkpoint signature check failed: the signature by {ORIGIN} does not verify"
    )


def test_the_wrong_key_is_reported(
    browser: Any, server: Server, db: Path, keys: KeyFiles, tmp_path: Path
) -> None:
    other = keygen(ORIGIN, tmp_path / "other")
    status = visit(browser, server, "/page/decision/5", storage(other))
    assert status["state"] == "failed" and status["code"] == "signature_unknown_key"
    assert f"no signature from the key {signer_of(other)} (signed by {signer_of(keys)})" in status["text"]


@pytest.mark.parametrize(
    ("over", "code", "text"),
    [
        (
            {"token": None},
            "no_token",
            "Verification failed. Not signed in: no API token in this browser session",
        ),
        ({"token": "wrong"}, "unauthorized", "the API answered 401 to /v1/proof/inclusion: unauthorized"),
        ({"key": None}, "no_key", "load the log's audit.vkey or audit.pub on the key page first"),
        ({"key": "not a key"}, "vkey_invalid", "The public key stored in this browser is not usable"),
    ],
)
def test_missing_or_wrong_credentials_are_named(
    browser: Any, server: Server, db: Path, keys: KeyFiles, over: dict[str, str | None], code: str, text: str
) -> None:
    status = visit(browser, server, "/page/decision/5", storage(keys, **over))
    assert status["state"] == "failed" and status["code"] == code
    assert text in status["text"]


def test_an_entry_past_the_log_is_reported(browser: Any, server: Server, db: Path, keys: KeyFiles) -> None:
    status = visit(browser, server, "/page/decision/5000", storage(keys))
    assert status["state"] == "failed" and status["code"] == "index_out_of_range", status


def kept(browser: Any) -> str | None:
    value: str | None = browser.execute_script(f"return localStorage.getItem('{LAST_KEY}')")
    return value


def test_the_log_page_checks_consistency_with_the_kept_checkpoint(
    browser: Any, server: Server, db: Path, keys: KeyFiles, tmp_path: Path
) -> None:
    first = visit(browser, server, "/page/log", storage(keys))
    assert first["state"] == "ok"
    assert first["text"] == (
        f"Checkpoint 300 signed by {signer_of(keys)} verified; kept in this browser for the next check"
    )
    note300 = kept(browser)
    assert note300 is not None and note300.split("\n")[1] == "300"

    with AuditLog.open(db, signer=load_signer(keys.key)) as log:
        fill(log, 300, 345)
    second = visit(browser, server, "/page/log", storage(keys, last=note300))
    assert second["state"] == "ok", second
    assert second["text"] == (
        f"Checkpoint 345 signed by {signer_of(keys)} is consistent with checkpoint 300 seen before"
    )
    note345 = kept(browser)
    assert note345 is not None and note345.split("\n")[1] == "345"
    assert visit(browser, server, "/page/log", storage(keys, last=note345))["state"] == "ok"  # same size

    # A fork signed with the same key: entry 40 differs. The kept checkpoint stays as it was.
    fork_path = tmp_path / "fork.db"
    with AuditLog.open(fork_path, signer=load_signer(keys.key)) as fork:
        fill(fork, 0, 400, user="mallory")
    with AuditLog.open(fork_path) as fork_reader:
        server.serve(fork_reader)
        forked = visit(browser, server, "/page/log", storage(keys, last=note345))
        assert forked["state"] == "failed" and forked["code"] == "root_mismatch"
        assert forked["text"] == (
            "Consistency check failed. Checkpoint 400 does not extend checkpoint 345 seen before: "
            "consistency proof does not lead to the roots"
        )
        assert kept(browser) == note345
    with AuditLog.open(db) as reader:
        server.serve(reader)
        shrunk = visit(browser, server, "/page/log", storage(keys, last=forked_note(fork_path)))
    assert shrunk["state"] == "failed" and shrunk["code"] == "log_shrank"
    assert shrunk["text"] == (
        "Consistency check failed. The log shrank: checkpoint 345 is smaller than checkpoint 400 seen before"
    )


def forked_note(path: Path) -> str:
    with AuditLog.open(path) as log:
        note = log.checkpoint()
    assert note is not None
    return note


def test_a_kept_checkpoint_of_another_key_is_reported(
    browser: Any, server: Server, db: Path, keys: KeyFiles, tmp_path: Path
) -> None:
    other = keygen(ORIGIN, tmp_path / "other")
    with AuditLog.open(tmp_path / "other.db", signer=load_signer(other.key)) as log:
        fill(log, 0, 10)
        note = log.checkpoint()
    status = visit(browser, server, "/page/log", storage(keys, last=note))
    assert status["state"] == "failed" and status["code"] == "signature_unknown_key"
    assert status["text"].startswith(
        "Consistency check failed. The checkpoint this browser kept does not verify with the loaded key"
    )


def _huge(request: Any) -> Any:
    from starlette.responses import StreamingResponse

    def chunks() -> Iterator[bytes]:
        for _ in range(17 * 16):  # 17 MiB, no Content-Length: the reader must stop at its bound
            yield b"A" * 65536

    return StreamingResponse(chunks(), media_type="text/plain")


@pytest.mark.parametrize(
    ("name", "page", "code", "text"),
    [
        ("huge proof", "/page/decision/7", "response_too_large", "the answer is over 16777216 bytes"),
        ("not UTF-8", "/page/decision/7", "proof_format", "the answer is not UTF-8"),
        (
            "proof of another entry",
            "/page/decision/7",
            "index_mismatch",
            "the API proved entry 8, not entry 7",
        ),
        ("proof without entry", "/page/decision/7", "proof_no_entry", "it carries no entry"),
        ("huge consistency proof", "/page/log", "response_too_large", "the answer is over 65536 bytes"),
        ("consistency for other sizes", "/page/log", "proof_format", "it is for other sizes than asked"),
    ],
)
def test_a_lying_api_is_bounded_and_named(
    browser: Any, server: Server, db: Path, keys: KeyFiles, name: str, page: str, code: str, text: str
) -> None:
    from starlette.responses import JSONResponse, PlainTextResponse, Response

    from audit.proof import InclusionProof

    with AuditLog.open(db) as log:
        proof7, proof8, latest = log.prove(7), log.prove(8), log.checkpoint() or ""
        older = next(note for size, note in log.store.checkpoints() if 0 < size < 300)

    def answer(request: Any) -> Any:
        path = request.url.path
        if path.endswith("/v1/checkpoint"):
            return PlainTextResponse(latest)
        if name.startswith("huge"):
            return _huge(request)
        if name == "not UTF-8":
            return Response(b"c2sp.org/tlog-proof@v1\nindex 7\n\xff\xfe\n\n", media_type="text/plain")
        if name == "proof of another entry":
            return PlainTextResponse(proof8)
        if name == "proof without entry":
            parsed = InclusionProof.parse(proof7)
            return PlainTextResponse(InclusionProof(7, parsed.hashes, parsed.checkpoint_note).text())
        return JSONResponse({"size1": 1, "size2": 300, "proof": []})

    server.hostile = answer
    status = visit(browser, server, page + "?api=hostile", storage(keys, last=older))
    assert status["state"] == "failed" and status["code"] == code, status
    assert text in status["text"]


def test_a_page_outside_a_secure_context_says_so(server: Server, db: Path, keys: KeyFiles) -> None:
    """Over plain HTTP on a name that is not localhost the browser has no WebCrypto: the page says
    why it cannot verify instead of failing obscurely."""
    port = server.base.rsplit(":", 1)[1]
    with chromium_session("--host-resolver-rules=MAP insecure.test 127.0.0.1") as other:
        plain = Server(f"http://insecure.test:{port}", server.tokens_file)
        status = visit(other, plain, "/page/decision/7", storage(keys))
    assert status["state"] == "failed" and status["code"] == "no_webcrypto", status
    assert status["text"] == (
        "Verification failed. Verification cannot run here: this page is not a secure context (HTTPS), "
        "so the browser offers no WebCrypto"
    )


def test_a_busy_api_is_waited_out(browser: Any, server: Server, db: Path, keys: KeyFiles) -> None:
    """The API refuses with 503 "busy" while its query slots are taken; the page retries a few times."""
    from starlette.responses import JSONResponse, PlainTextResponse

    with AuditLog.open(db) as log:
        proof = log.prove(7)
    refusals = []

    def answer(request: Any) -> Any:
        if len(refusals) < 2:
            refusals.append(request.url.path)
            return JSONResponse(
                {"error": "busy", "code": "busy"}, status_code=503, headers={"Retry-After": "1"}
            )
        return PlainTextResponse(proof)

    server.hostile = answer
    status = visit(browser, server, "/page/decision/7?api=hostile", storage(keys))
    assert status["state"] == "ok", status
    assert refusals == ["/hostile/v1/proof/inclusion"] * 2


@pytest.mark.parametrize("page", ["/page/decision/7?api=elsewhere", "/page/log?api=elsewhere"])
def test_the_token_is_never_sent_to_another_host(
    browser: Any, server: Server, db: Path, keys: KeyFiles, page: str
) -> None:
    server.requests.clear()
    status = visit(browser, server, page, storage(keys))
    assert status["state"] == "failed" and status["code"] == "bad_api_base", status
    assert "is not a path on this site" in status["text"]
    assert server.requests == []
