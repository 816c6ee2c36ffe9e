"""Durability of the audit trail under a crash: kill -9 a loaded `serve`, restart it, and every decision
that was answered is in the log, which still verifies (SPEC §10: no decision answered before durable)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_serve import _start, _stop, certs  # noqa: F401 (certs is a fixture)
from tests.unit.webhook.builders import pod, review
from webhook.review import AUDIT_INDEX_KEY

pytestmark = pytest.mark.e2e


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "policyengine", *args], capture_output=True, text=True, check=False
    )


def test_kill_9_under_load_loses_no_answered_decision(tmp_path: Path, certs: Path) -> None:  # noqa: F811
    keys = tmp_path / "keys"
    assert _cli("audit", "keygen", "--origin", "e2e.example/audit", "--out", str(keys)).returncode == 0
    log = str(tmp_path / "audit.db")
    extra = ("--audit-log", log, "--audit-key", str(keys / "audit.key"))
    server = _start(tmp_path / "first", certs, *extra)

    answered: dict[str, int] = {}  # request uid -> audit index returned to the "API server"
    lock = threading.Lock()
    stop = threading.Event()

    def load(worker: int) -> None:
        with server.client() as client:
            for n in range(10_000):
                if stop.is_set():
                    return
                uid = f"w{worker}-{n}"
                try:
                    body = client.post("/validate", json=review(pod(image="x:latest"), uid=uid)).json()
                except (httpx.TransportError, json.JSONDecodeError):
                    return  # the server died mid-request: that decision was never answered
                with lock:
                    answered[uid] = int(body["response"]["auditAnnotations"][AUDIT_INDEX_KEY])

    threads = [threading.Thread(target=load, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 20
    while len(answered) < 60 and time.monotonic() < deadline:
        time.sleep(0.05)
    server.process.send_signal(signal.SIGKILL)
    server.process.wait()
    stop.set()
    for t in threads:
        t.join(timeout=15)
    server.log.close()
    assert len(answered) >= 60, "the server answered too few requests before the kill"

    # Restart on the same log: recovery signs what was committed but unsigned, then serves again.
    restarted = _start(tmp_path / "second", certs, *extra)
    with restarted.client() as client:
        after = client.post("/validate", json=review(pod(), uid="after-restart")).json()["response"]
    _stop(restarted)
    assert int(after["auditAnnotations"][AUDIT_INDEX_KEY]) >= len(answered)

    verify = _cli("audit", "verify", "--audit-log", log, "--public-key", str(keys / "audit.pub"))
    assert verify.returncode == 0, verify.stdout + verify.stderr
    entries = json.loads(_cli("audit", "query", "--audit-log", log, "--format", "json").stdout)
    by_index = {e["index"]: e["uid"] for e in entries}
    for uid, index in answered.items():
        assert by_index.get(index) == uid, f"answered decision {uid} (index {index}) is not in the log"


def test_the_auditors_api_serves_on_its_own_port(tmp_path: Path, certs: Path) -> None:  # noqa: F811
    from tests.e2e.test_serve import _free_port

    keys = tmp_path / "keys"
    assert _cli("audit", "keygen", "--origin", "e2e.example/audit", "--out", str(keys)).returncode == 0
    tokens = tmp_path / "tokens"
    tokens.write_text("# auditors\ns3cret-auditor-token\n")
    port = _free_port()
    server = _start(
        tmp_path,
        certs,
        "--audit-log", str(tmp_path / "audit.db"), "--audit-key", str(keys / "audit.key"),
        "--audit-api-port", str(port), "--audit-api-tokens", str(tokens),
    )  # fmt: skip
    try:
        with server.client() as client:
            client.post("/validate", json=review(pod(image="x:latest"), uid="audited-1"))
        api = f"https://127.0.0.1:{port}"
        with httpx.Client(base_url=api, verify=server.tls, timeout=10) as auditor:
            assert auditor.get("/v1/entries").status_code == 401
            assert auditor.get("/v1/entries", headers={"Authorization": "Bearer wrong"}).status_code == 401
            auth = {"Authorization": "Bearer s3cret-auditor-token"}
            deadline = time.monotonic() + 10
            while True:
                body = auditor.get("/v1/entries", headers=auth).json()
                entries = body["entries"] if isinstance(body, dict) else body
                if entries or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            assert [e["uid"] for e in entries] == ["audited-1"]
            assert auditor.post("/v1/entries", headers=auth).status_code == 405  # read-only
    finally:
        _stop(server)


def test_a_clean_stop_leaves_every_answered_decision_signed(tmp_path: Path, certs: Path) -> None:  # noqa: F811
    keys = tmp_path / "keys"
    assert _cli("audit", "keygen", "--origin", "e2e.example/audit", "--out", str(keys)).returncode == 0
    log = tmp_path / "audit.db"
    server = _start(tmp_path / "srv", certs, "--audit-log", str(log), "--audit-key", str(keys / "audit.key"))
    with server.client() as client:
        for n in range(20):
            assert client.post("/validate", json=review(pod(), uid=f"u{n}")).status_code == 200
    _stop(server)  # SIGTERM: uvicorn's graceful shutdown
    # The log was closed (SQLite folds and removes its WAL when the last connection closes), and a
    # read-only verification finds nothing waiting for a signature.
    assert not Path(str(log) + "-wal").exists()
    verify = _cli("audit", "verify", "--audit-log", str(log), "--public-key", str(keys / "audit.vkey"))
    assert verify.returncode == 0 and verify.stdout.startswith("intact: 20 entries"), verify.stdout
    assert "not yet signed" not in verify.stdout


def test_an_audit_log_that_cannot_be_opened_exits_2_with_the_reason(tmp_path: Path) -> None:
    for name in ("one", "other"):
        assert (
            _cli(
                "audit", "keygen", "--origin", f"{name}.example/audit", "--out", str(tmp_path / name)
            ).returncode
            == 0
        )
    log = str(tmp_path / "audit.db")
    assert (
        _cli(
            "audit", "checkpoint", "--audit-log", log, "--key", str(tmp_path / "one" / "audit.key")
        ).returncode
        == 0
    )
    done = subprocess.run(
        [
            sys.executable, "-m", "policyengine", "serve", "--insecure-http", "--port", "1", "--allow-unconfigured",
            "--audit-log", log, "--audit-key", str(tmp_path / "other" / "audit.key"),
        ],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "cannot open the audit log" in done.stderr and "origin_mismatch" in done.stderr
    assert "Traceback" not in done.stderr
