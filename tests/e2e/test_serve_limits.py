"""Slow and greedy clients against a real ``policyengine serve`` over TLS: connections without a request
head are closed, the connection cap keeps room for a review, the in-flight caps answer JSON 503s, the
whole-request budget ends in failurePolicy, and the auditors' API runs in a process of its own.

Nothing here measures time: each test waits (with a generous hang guard) for the server to do what it
must, and asserts on what it did (a connection closed by the server, a status, an error code)."""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.test_serve import Server, _free_port, _start, _stop, certs  # noqa: F401 (certs is a fixture)
from tests.unit.webhook.builders import pod, review
from webhook.server import AUDIT_API_NICENESS

pytestmark = pytest.mark.e2e

HANG_GUARD = 30.0  # seconds: only to fail a broken server instead of hanging the suite


def _port(server: Server) -> int:
    return int(server.url.rsplit(":", 1)[1])


def _tcp(server: Server) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", _port(server)), timeout=HANG_GUARD)
    sock.settimeout(HANG_GUARD)
    return sock


def _tls(server: Server) -> ssl.SSLSocket:
    return server.tls.wrap_socket(_tcp(server), server_hostname="127.0.0.1")


def _closed_by_server(sock: socket.socket) -> bool:
    """Whether the server ends the connection (EOF or reset) before the hang guard; the client never
    closes it. Anything the server sends first is read and ignored."""
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except (ConnectionError, ssl.SSLError, OSError):
        pass
    return True


def _request(body: bytes, *, length: int | None = None, path: str = "/validate") -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body) if length is None else length}\r\n\r\n"
    )
    return head.encode() + body


def _stuck_request(server: Server, length: int) -> ssl.SSLSocket:
    """A connection whose request head was read and whose body the server is waiting for (it said
    ``100 Continue``): a request in flight that never completes."""
    sock = _tls(server)
    head = (
        "POST /validate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\nExpect: 100-continue\r\n\r\n"
    )
    sock.sendall(head.encode())
    seen = b""
    while b"\r\n\r\n" not in seen:
        chunk = sock.recv(1024)
        assert chunk, "the server closed a request it should be reading"
        seen += chunk
    assert seen.startswith(b"HTTP/1.1 100"), seen
    sock.sendall(b"{")  # a first byte of the body, and no more
    return sock


def _response(sock: socket.socket) -> tuple[int, dict[str, str], dict[str, object]]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection without answering"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    while len(rest) < int(headers["content-length"]):
        rest += sock.recv(65536)
    return int(lines[0].split()[1]), headers, json.loads(rest)


def _until(what: str, predicate: Callable[[], bool]) -> None:
    deadline = time.monotonic() + HANG_GUARD
    while not predicate():
        assert time.monotonic() < deadline, f"gave up waiting: {what}"
        time.sleep(0.05)


def _post(server: Server, body: object) -> tuple[int, dict[str, object]]:
    with server.client() as client:
        response = client.post("/validate", json=body)
    return response.status_code, response.json()


def test_a_connection_without_a_request_head_is_closed_by_the_server(tmp_path: Path, certs: Path) -> None:  # noqa: F811
    server = _start(tmp_path, certs, "--header-timeout", "1")
    try:
        silent_tcp = _tcp(server)  # connects, never starts TLS
        silent_tls = _tls(server)  # finishes the handshake, sends nothing
        slow_head = _tls(server)  # a head that never ends (slowloris)
        slow_head.sendall(b"POST /validate HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        after_one = _tls(server)  # one full request, then a byte of the next head and nothing more
        after_one.sendall(_request(json.dumps(review(pod(), uid="first")).encode()))
        status, _, body = _response(after_one)
        assert status == 200 and body["response"]["uid"] == "first"  # type: ignore[index]
        after_one.sendall(b"P")
        for name, sock in [
            ("no TLS handshake", silent_tcp),
            ("no request head", silent_tls),
            ("a head that never ends", slow_head),
            ("a second head that never ends", after_one),
        ]:
            assert _closed_by_server(sock), f"{name}: the server kept the connection open"
            sock.close()
        assert _post(server, review(pod(), uid="after"))[0] == 200
    finally:
        _stop(server)


def test_at_the_connection_cap_idle_connections_make_room_and_busy_ones_do_not(
    tmp_path: Path,
    certs: Path,  # noqa: F811
) -> None:
    # A long head timeout and budget: nothing below is closed by a deadline, only by the cap.
    server = _start(tmp_path, certs, "--max-connections", "3", "--header-timeout", "60", "--timeout", "40")
    try:
        idle = [_tls(server) for _ in range(3)]
        # A review still gets in: the oldest idle connection is closed for it.
        status, body = _post(server, review(pod(), uid="legit"))
        assert status == 200 and body["response"]["uid"] == "legit"  # type: ignore[index]
        assert _closed_by_server(idle[0]), "the oldest idle connection was not closed at the cap"
        for sock in idle:
            sock.close()
        # Connections in the middle of a request (head read, body still awaited) are not evicted: a new
        # connection is refused instead, without an answer.
        busy = [_stuck_request(server, 1000) for _ in range(3)]
        refused = _tcp(server)
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            server.tls.wrap_socket(refused, server_hostname="127.0.0.1").recv(1)
        refused.close()
        for sock in busy:
            sock.close()
        _until("a review is answered once the busy connections are gone", lambda: _review_ok(server))
        logs = [line for line in server.logs() if line.get("msg", "").startswith("connection cap reached")]
        assert logs and all(line["max_connections"] == 3 for line in logs)
    finally:
        _stop(server)


def _review_ok(server: Server) -> bool:
    try:
        return _post(server, review(pod()))[0] == 200
    except Exception:
        return False


def test_reviews_over_the_in_flight_caps_are_answered_503_in_json(tmp_path: Path, certs: Path) -> None:  # noqa: F811
    server = _start(
        tmp_path, certs,
        "--max-in-flight", "2", "--max-body", "100000", "--max-in-flight-bytes", "100000",
        "--timeout", "40",
    )  # fmt: skip
    try:
        # One request declaring 99,990 bytes holds that share while its body is awaited: a small review
        # no longer fits in the byte cap.
        big = _stuck_request(server, 99_990)
        status, body = _post(server, review(pod(), uid="bytes"))
        assert status == 503 and body["error"]["code"] == "overloaded"  # type: ignore[index]
        assert "1 reviews holding 99990 body bytes" in body["error"]["message"]  # type: ignore[index]
        big.close()  # its share is returned when the server sees it go
        _until("reviews are answered once the large one is gone", lambda: _review_ok(server))
        # Two small ones fill the request cap: a third review is refused by count.
        small = [_stuck_request(server, 10) for _ in range(2)]
        with server.client() as client:
            refused = client.post("/validate", json=review(pod()))
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        error = refused.json()["error"]
        assert error["code"] == "overloaded" and error["message"].startswith(
            "2 reviews holding 20 body bytes"
        )
        for sock in small:
            sock.close()
        _until("reviews are answered again", lambda: _review_ok(server))
        assert any(line.get("msg") == "in-flight cap reached: answered 503" for line in server.logs())
    finally:
        _stop(server)


def _slow_policies(directory: Path, count: int = 100) -> None:
    """A policy whose evaluation takes far longer than the budget given below (each expression stays
    within its own CEL budget; there are many of them)."""
    digits = "[0,1,2,3,4,5,6,7,8,9]"
    expression = (
        f"{digits}.all(a, {digits}.all(b, {digits}.all(c, {digits}.all(d, "
        "object.metadata.name.size() + a + b + c + d >= 0))))"
    )
    validations = "".join(f'    - expression: "{expression}"\n      message: "m{i}"\n' for i in range(count))
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "slow.yaml").write_text(
        "apiVersion: policyengine.io/v1\nkind: Policy\nmetadata: {name: slow-check}\nspec:\n"
        '  match: {kinds: [{apiGroups: [""], kinds: [Pod]}]}\n  validations:\n' + validations
    )


def test_a_review_over_the_whole_request_budget_is_answered_by_failure_policy(
    tmp_path: Path,
    certs: Path,  # noqa: F811
) -> None:
    _slow_policies(tmp_path / "slow")
    server = _start(tmp_path, certs, "--timeout", "1", "--policies", str(tmp_path / "slow"))
    try:
        status, body = _post(server, review(pod(labels={"team": "t"}), uid="slow"))
        answer = body["response"]  # type: ignore[index]
        assert status == 200 and answer["uid"] == "slow" and answer["allowed"] is False  # type: ignore[index]
        assert "did not finish within the webhook's 1s budget" in answer["status"]["message"]  # type: ignore[index]
        (line,) = [x for x in server.logs() if x.get("uid") == "slow"]
        assert line["timed_out"] is True
    finally:
        _stop(server)


def _listener_pid(port: int, *, within: float = 30.0) -> int:
    """The process holding the listening socket of ``port`` (from /proc), waiting up to ``within`` seconds
    for one: the auditors' API process starts beside the webhook and may bind a moment after it is ready."""
    give_up = time.monotonic() + within
    while (pid := _listener_pid_now(port)) is None and time.monotonic() < give_up:
        time.sleep(0.1)
    if pid is None:
        raise AssertionError(f"no process listens on {port} within {within:g} s")
    return pid


def _listener_pid_now(port: int) -> int | None:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            fields = row.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":  # LISTEN
                inodes.add(fields[9])
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            links = {os.readlink(fd) for fd in (proc / "fd").iterdir()}
        except OSError:
            continue
        if any(f"socket:[{inode}]" in links for inode in inodes):
            return int(proc.name)
    return None


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads /proc (Linux)")
def test_the_auditors_api_runs_in_its_own_process_with_its_own_caps(tmp_path: Path, certs: Path) -> None:  # noqa: F811
    keys = tmp_path / "keys"
    subprocess.run(
        [sys.executable, "-m", "policyengine", "audit", "keygen", "--origin", "e2e.example/audit",
         "--out", str(keys)],
        check=True, capture_output=True,
    )  # fmt: skip
    tokens = tmp_path / "tokens"
    tokens.write_text("t0ken\n")
    api_port = _free_port()
    server = _start(
        tmp_path, certs,
        "--audit-log", str(tmp_path / "audit.db"), "--audit-key", str(keys / "audit.key"),
        "--audit-api-port", str(api_port), "--audit-api-tokens", str(tokens),
        "--audit-api-max-connections", "2", "--header-timeout", "60",
    )  # fmt: skip
    try:
        webhook_pid = server.process.pid
        assert _listener_pid(_port(server)) == webhook_pid
        api_pid = _listener_pid(api_port)
        # Its queries, memory and descriptors are another process's: they cannot stall admission.
        assert api_pid != webhook_pid
        stat = Path(f"/proc/{api_pid}/stat").read_text().rsplit(")", 1)[1].split()
        assert int(stat[1]) == webhook_pid

        # Under CPU contention the kernel serves admission first (field 19 of stat is the nice value).
        def nice(pid: int) -> int:
            return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])

        lower = min(19, nice(webhook_pid) + AUDIT_API_NICENESS)
        _until("the auditors' API process runs below admission", lambda: nice(api_pid) == lower)
        # Filling the API's connection cap does not touch the webhook's.
        api = [
            server.tls.wrap_socket(
                socket.create_connection(("127.0.0.1", api_port)), server_hostname="127.0.0.1"
            )
            for _ in range(4)
        ]
        assert _post(server, review(pod(), uid="still"))[0] == 200
        for sock in api:
            sock.close()
    finally:
        _stop(server)
    _until("the auditors' API process ends with the webhook", lambda: not Path(f"/proc/{api_pid}").exists())
