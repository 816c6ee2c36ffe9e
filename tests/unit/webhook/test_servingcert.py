"""The serving certificate's checks and poll, on real files: hostile pairs are refused naming the file,
a change is read once it has settled, a refused change is not retried until the files change again, and
the expiry warning repeats at most once per period."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from tests.helpers import run_cli
from webhook.connections import tls_context
from webhook.logs import get_logger
from webhook.servingcert import (
    MAX_PEM_BYTES,
    WARN_EVERY,
    CertificateError,
    ServingCertificate,
    certificate_gauges,
    certificate_status,
    load_pair,
    register,
)
from webhook.tls import Issued, issue, write

NAMES = ["localhost", "127.0.0.1"]


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self, level: int) -> list[str]:
        return [r.getMessage() for r in self.records if r.levelno == level]


@pytest.fixture
def logs() -> Iterator[Records]:
    handler = Records()
    logger = get_logger()
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(old_level)


@pytest.fixture
def pair(tmp_path: Path) -> tuple[str, str]:
    write(issue(NAMES), tmp_path)
    return str(tmp_path / "tls.crt"), str(tmp_path / "tls.key")


def _rewrite(path: str, data: bytes) -> None:
    """Replace a file's content so that its stat changes even within the filesystem's mtime granularity."""
    tmp = path + ".new"
    Path(tmp).write_bytes(data)
    os.replace(tmp, path)  # a new inode


def _watched(cert: str, key: str) -> ServingCertificate:
    return ServingCertificate(cert, key, server="test", make_context=tls_context, interval=1.0)


@pytest.mark.parametrize(
    ("cert_data", "key_data", "blamed", "why"),
    [
        (b"garbage", None, "tls.crt", "not a PEM certificate"),
        (
            None,
            b"-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n",
            "tls.key",
            "private key",
        ),
        (b"A" * (MAX_PEM_BYTES + 1), None, "tls.crt", "larger than"),
        (None, b"", "tls.key", "private key"),
    ],
    ids=["garbage-cert", "garbage-key", "oversize", "empty-key"],
)
def test_a_hostile_file_is_refused_naming_it(
    pair: tuple[str, str], cert_data: bytes | None, key_data: bytes | None, blamed: str, why: str
) -> None:
    cert, key = pair
    if cert_data is not None:
        _rewrite(cert, cert_data)
    if key_data is not None:
        _rewrite(key, key_data)
    with pytest.raises(CertificateError) as caught:
        load_pair(cert, key, tls_context)
    assert blamed in str(caught.value).split(":")[0] and why in str(caught.value)


def test_a_key_of_another_certificate_or_encrypted_is_refused(pair: tuple[str, str]) -> None:
    cert, key = pair
    _rewrite(key, issue(NAMES).key_pem)
    with pytest.raises(CertificateError, match="does not belong to the certificate"):
        load_pair(cert, key, tls_context)
    private = serialization.load_pem_private_key(issue(NAMES).key_pem, password=None)
    encrypted = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    _rewrite(key, encrypted)
    with pytest.raises(CertificateError, match="unencrypted"):
        load_pair(cert, key, tls_context)


def test_a_missing_file_is_refused_naming_it(pair: tuple[str, str]) -> None:
    cert, key = pair
    os.unlink(key)
    with pytest.raises(CertificateError, match=r"tls\.key: cannot read"):
        load_pair(cert, key, tls_context)


def test_a_change_is_loaded_once_it_has_settled(pair: tuple[str, str], logs: Records) -> None:
    cert, key = pair
    watched = _watched(cert, key)
    first = watched.current
    renewed = issue(NAMES)
    _rewrite(cert, renewed.cert_pem)  # a hand-made rotation: the certificate first...
    watched.poll()
    assert watched.current is first and watched.failures == 0  # ...not read until it settles
    _rewrite(key, renewed.key_pem)  # ...then its key
    watched.poll()
    assert watched.current is first and watched.failures == 0
    watched.poll()
    assert watched.current is not first and watched.reloads == 1 and watched.failures == 0
    assert logs.messages(logging.INFO) == ["serving certificate reloaded"]


def test_a_refused_change_is_counted_once_and_the_next_change_is_tried(
    pair: tuple[str, str], logs: Records
) -> None:
    cert, key = pair
    watched = _watched(cert, key)
    first = watched.current
    _rewrite(key, issue(NAMES).key_pem)
    for _ in range(5):
        watched.poll()
    assert watched.current is first and watched.failures == 1
    assert watched.last_error is not None and key in watched.last_error
    assert len(logs.messages(logging.ERROR)) == 1

    fixed = issue(NAMES)
    _rewrite(cert, fixed.cert_pem)
    _rewrite(key, fixed.key_pem)
    watched.poll()
    watched.poll()
    assert watched.current is not first and watched.last_error is None and watched.failures == 1


def test_the_same_bytes_are_not_reloaded(pair: tuple[str, str]) -> None:
    cert, key = pair
    watched = _watched(cert, key)
    first = watched.current
    _rewrite(cert, Path(cert).read_bytes())
    watched.poll()
    watched.poll()
    assert watched.current is first and watched.reloads == 0


def test_the_expiry_warning_repeats_once_per_period(tmp_path: Path, logs: Records) -> None:
    write(issue(NAMES, days=10), tmp_path)
    now = [0.0]
    watched = ServingCertificate(
        str(tmp_path / "tls.crt"),
        str(tmp_path / "tls.key"),
        server="test",
        make_context=tls_context,
        clock=lambda: now[0],
    )
    assert logs.messages(logging.WARNING) == ["serving certificate expires soon"]  # at load
    watched.check_expiry()
    now[0] = WARN_EVERY - 1
    watched.check_expiry()
    assert len(logs.messages(logging.WARNING)) == 1
    now[0] = WARN_EVERY
    watched.check_expiry()
    assert len(logs.messages(logging.WARNING)) == 2
    later = datetime.now(UTC) + timedelta(days=11)
    now[0] = 2 * WARN_EVERY
    watched.check_expiry(later)
    assert logs.messages(logging.WARNING)[-1] == "serving certificate has expired"


def test_a_year_long_certificate_is_not_warned_about(pair: tuple[str, str], logs: Records) -> None:
    _watched(*pair)
    assert logs.messages(logging.WARNING) == []


def test_status_and_gauges_read_the_registered_certificate(tmp_path: Path) -> None:
    issued: Issued = issue(NAMES, days=20)
    write(issued, tmp_path)
    watched = ServingCertificate(
        str(tmp_path / "tls.crt"), str(tmp_path / "tls.key"), server="status-test", make_context=tls_context
    )
    assert certificate_status("status-test") is None
    register(watched)
    status = certificate_status("status-test")
    assert status is not None and status["names"] == NAMES and status["reloadFailures"] == 0
    gauges = certificate_gauges("status-test")
    [(seconds, labels)] = gauges["policyengine_tls_certificate_expiry_seconds"]()
    assert 19 * 86400 < seconds <= 20 * 86400 and labels == {}
    assert gauges["policyengine_tls_certificate_reload_failures"]() == [(0.0, {})]


@pytest.mark.parametrize("broken", ["tls.crt", "tls.key"])
def test_serve_refuses_a_bad_pair_at_start_naming_the_file(
    tmp_path: Path,
    broken: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    write(issue(NAMES), tmp_path)
    _rewrite(str(tmp_path / broken), b"-----BEGIN half a file")
    args = ["serve", "--tls-cert", str(tmp_path / "tls.crt"), "--tls-key", str(tmp_path / "tls.key")]
    code, _, err = run_cli(args, capsys, monkeypatch)
    assert code == 2 and f"{tmp_path / broken}: not " in err


def test_serve_refuses_a_negative_tls_reload_interval(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = run_cli(["serve", "--insecure-http", "--tls-reload-interval", "-1"], capsys, monkeypatch)
    assert code == 2 and "--tls-reload-interval" in err
