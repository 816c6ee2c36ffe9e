"""`policyengine audit console` over an export: served over TLS, read-only, verified at start against
the auditor's key (and a tampered export reported on the log page)."""

from __future__ import annotations

import os
import re
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from audit import AuditLog, export, keygen, load_signer
from tests.consoledata import fill
from tests.e2e.test_serve import _free_port, certs  # noqa: F401 (certs is a fixture)
from tests.helpers import run_policyengine

pytestmark = pytest.mark.e2e
TOKEN = "auditor-standalone"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
COUNT = 600


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("standalone")
    keys = keygen("e2e.example/audit", tmp / "keys")
    with AuditLog.open(tmp / "audit.db", signer=load_signer(keys.key)) as log:
        fill(log, COUNT)
        export(log, tmp / "export")
    (tmp / "tokens").write_text(f"{TOKEN}\n")
    return tmp


@contextmanager
def console(tmp: Path, certs: Path, export_dir: Path) -> Iterator[httpx.Client]:  # noqa: F811
    port = _free_port()
    stderr = (tmp / f"console-{port}.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable, "-m", "policyengine", "audit", "console", "--export", str(export_dir),
            "--public-key", str(tmp / "keys" / "audit.vkey"), "--tokens", str(tmp / "tokens"),
            "--port", str(port), "--tls-cert", str(certs / "tls.crt"), "--tls-key", str(certs / "tls.key"),
        ],
        stdout=subprocess.DEVNULL, stderr=stderr, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    tls = ssl.create_default_context(cafile=certs / "ca.crt")
    try:
        with httpx.Client(base_url=f"https://127.0.0.1:{port}", verify=tls, timeout=10) as client:
            deadline = time.monotonic() + 30  # a hang guard
            while True:
                assert process.poll() is None, (tmp / f"console-{port}.log").read_text()
                try:
                    if client.get("/console/login").status_code == 200:
                        break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "the console did not start in 30 s"
                    time.sleep(0.1)
            yield client
    finally:
        process.terminate()
        process.wait(timeout=30)
        stderr.close()


def _verified(client: httpx.Client) -> str:
    deadline = time.monotonic() + 30
    while True:
        html = client.get("/console/data/log", headers=AUTH).text
        if "still running" not in html and "server-verification" in html:
            return html
        assert time.monotonic() < deadline, html
        time.sleep(0.1)


def test_the_console_serves_an_export_and_reports_it_intact(exported: Path, certs: Path) -> None:  # noqa: F811
    with console(exported, certs, exported / "export") as client:
        html = _verified(client)
        assert f"Intact:\n{COUNT} entries and" in html, html
        assert client.get("/console/data/decisions").status_code == 401
        rows = re.findall(
            r'<tr data-index="(\d+)">', client.get("/console/data/decisions", headers=AUTH).text
        )
        assert [int(n) for n in rows] == list(range(COUNT - 1, COUNT - 51, -1))
        assert client.get("/v1/checkpoint", headers=AUTH).text.startswith("e2e.example/audit\n600\n")
        assert client.post("/console/data/decisions", headers=AUTH).status_code == 405


def test_a_tampered_export_is_reported_on_the_log_page(exported: Path, certs: Path, tmp_path: Path) -> None:  # noqa: F811
    import shutil

    copy = tmp_path / "export"
    shutil.copytree(exported / "export", copy)
    lines = (copy / "entries.jsonl").read_bytes().split(b"\n")
    lines[121] = lines[121].replace(b'"verdict":"allowed"', b'"verdict":"denied"')
    (copy / "entries.jsonl").write_bytes(b"\n".join(lines))
    with console(exported, certs, copy) as client:
        html = _verified(client)
        found = re.search(r"FAILED: entries \[(\d+), (\d+)\) do not match checkpoint", html)
        assert found is not None and int(found.group(1)) <= 121 < int(found.group(2)), html


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--insecure-http", "--host", "0.0.0.0"), "--insecure-http serves only a loopback address"),
        ((), "give --tls-cert and --tls-key"),
    ],
)
def test_the_console_refuses_plain_http_beyond_loopback(
    exported: Path, extra: tuple[str, ...], message: str
) -> None:
    result = run_policyengine(
        "audit", "console", "--export", str(exported / "export"),
        "--public-key", str(exported / "keys" / "audit.vkey"), "--tokens", str(exported / "tokens"), *extra,
    )  # fmt: skip
    assert result.returncode == 2 and message in result.stderr
