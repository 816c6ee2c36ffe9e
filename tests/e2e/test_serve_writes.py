"""How ``policyengine serve`` writes a response to the connection: the head and the body of an answer
go out together, in one TLS record, on every request of a keep-alive connection.

The client here reads the TLS records off the socket itself (``ssl.SSLObject`` over memory buffers), so
it sees how many records carried the answer, which a socket-level client cannot."""

from __future__ import annotations

import json
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_serve import Server, _start, _stop, certs  # noqa: F401 (certs is a fixture)
from tests.unit.webhook.builders import pod, review

pytestmark = pytest.mark.e2e

HANG_GUARD = 30.0  # seconds: only to fail a broken server instead of hanging the suite
APPLICATION_DATA = 23


class RecordClient:
    """HTTP/1.1 over TLS, counting the TLS records each response's bytes arrived in."""

    def __init__(self, server: Server) -> None:
        port = int(server.url.rsplit(":", 1)[1])
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=HANG_GUARD)
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = server.tls.wrap_bio(self.incoming, self.outgoing, server_hostname="127.0.0.1")
        self.raw = b""
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._flush()
                self._feed_one()
        self._flush()

    def _flush(self) -> None:
        data = self.outgoing.read()
        if data:
            self.sock.sendall(data)

    def _feed_one(self) -> int:
        """Hands one whole TLS record from the socket to the TLS layer; returns its content type."""
        while len(self.raw) < 5 or len(self.raw) < 5 + int.from_bytes(self.raw[3:5], "big"):
            chunk = self.sock.recv(65536)
            assert chunk, "the server closed the connection"
            self.raw += chunk
        size = 5 + int.from_bytes(self.raw[3:5], "big")
        record, self.raw = self.raw[:size], self.raw[size:]
        self.incoming.write(record)
        return record[0]

    def exchange(self, request: bytes) -> tuple[bytes, int]:
        """The response to ``request`` and how many records brought its bytes."""
        self.tls.write(request)
        self._flush()
        plain, records = b"", 0
        while not _complete(plain):
            kind = self._feed_one()
            got = b""
            while True:
                try:
                    got += self.tls.read(65536)
                except ssl.SSLWantReadError:
                    break
            self._flush()  # anything the TLS layer answers (key updates)
            if got:
                assert kind == APPLICATION_DATA
                records += 1
                plain += got
        return plain, records

    def close(self) -> None:
        self.sock.close()


def _complete(plain: bytes) -> bool:
    head, sep, body = plain.partition(b"\r\n\r\n")
    if not sep:
        return False
    lines = head.decode().split("\r\n")[1:]
    length = next(
        int(v) for k, _, v in (line.partition(":") for line in lines) if k.lower() == "content-length"
    )
    return len(body) >= length


def _post(body: bytes) -> bytes:
    head = (
        "POST /validate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, certs: Path) -> Iterator[Server]:  # noqa: F811
    running = _start(tmp_path_factory.mktemp("writes"), certs)
    yield running
    _stop(running)


def test_each_answer_of_a_keep_alive_connection_comes_in_one_tls_record(server: Server) -> None:
    client = RecordClient(server)
    try:
        for uid in ("first", "second", "third"):
            plain, records = client.exchange(_post(json.dumps(review(pod(), uid=uid)).encode()))
            assert plain.startswith(b"HTTP/1.1 200"), plain[:200]
            answer = json.loads(plain.partition(b"\r\n\r\n")[2])
            assert answer["response"]["uid"] == uid
            assert records == 1, f"{uid}: the answer came in {records} TLS records (head and body apart)"
        get = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        plain, records = client.exchange(get)
        assert plain.startswith(b"HTTP/1.1 200") and records == 1
    finally:
        client.close()
