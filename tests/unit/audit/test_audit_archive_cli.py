"""``audit archive`` and ``audit verify --archive`` from the command line, the auditors' API over a log
with an archived prefix, and archives whose files are hostile."""

from __future__ import annotations

import base64
import json
import warnings
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():  # starlette 1.x prefers httpx2 for TestClient; httpx is what we have
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

from audit import AuditLog, load_signer
from audit.api import create_app
from audit.archive import archive
from audit.archive_read import MANIFEST_LIMIT, read_archive, verify_archives
from audit.errors import ExportError
from tests.unit.audit.conftest import T0
from tests.unit.audit.test_audit_cli import run

Make = Callable[..., dict[str, Any]]
BEFORE_20 = "2026-11-27T12:20:00Z"  # the conftest's entry(i) is at T0 + i minutes
AT_20, AT_10 = T0 + timedelta(minutes=20), T0 + timedelta(minutes=10)


@pytest.fixture
def world(tmp_path: Path, make: Make) -> Path:
    assert run("audit", "keygen", "--origin", "example.com/cli", "--out", str(tmp_path / "keys")) == 0
    with AuditLog.open(tmp_path / "audit.db", signer=load_signer(tmp_path / "keys" / "audit.key")) as log:
        for i in range(30):
            log.append(make(i))
            log.sign_pending()
    return tmp_path


def test_archive_drop_and_verify_the_whole_history(world: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db, pub, out = str(world / "audit.db"), str(world / "keys" / "audit.pub"), world / "archive-1"
    capsys.readouterr()
    archive_argv = ["audit", "archive", "--audit-log", db, "--before", BEFORE_20, "--out", str(out)]
    assert run(*archive_argv, "--drop", "--location", "s3://cold/a1") == 0
    assert "archived entries [0, 20) (20 entries, 21 checkpoints)" in capsys.readouterr().out
    assert run("audit", "verify", "--audit-log", db, "--public-key", pub) == 0
    shown = capsys.readouterr()
    assert shown.out.startswith("intact: 30 entries") and "[0, 20) are archived (s3://cold/a1)" in shown.err
    assert run("audit", "verify", "--audit-log", db, "--archive", str(out), "--public-key", pub) == 0
    assert capsys.readouterr().out.startswith("intact: 30 entries")
    assert run("audit", "verify", "--archive", str(out), "--public-key", pub) == 0
    assert capsys.readouterr().out.startswith("intact: 20 entries")
    assert run("audit", "query", "--audit-log", db) == 1
    assert "s3://cold/a1" in capsys.readouterr().err
    assert run("audit", "query", "--audit-log", db, "--since", BEFORE_20, "--format", "jsonl") == 0
    assert len(capsys.readouterr().out.splitlines()) == 10
    assert run("audit", "prove", "--audit-log", db, "--index", "3") == 1
    assert (
        "entries_archived: a proof of entry 3 needs entry 3, archived to s3://cold/a1"
        in capsys.readouterr().err
    )


def test_verify_with_an_edited_archive_fails_at_its_index(
    world: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db, pub, out = str(world / "audit.db"), str(world / "keys" / "audit.pub"), world / "a1"
    assert run("audit", "archive", "--audit-log", db, "--before", BEFORE_20, "--out", str(out), "--drop") == 0
    lines = (out / "entries.jsonl").read_bytes().splitlines(keepends=True)
    del lines[4]  # an entry removed from cold storage
    (out / "entries.jsonl").write_bytes(b"".join(lines))
    capsys.readouterr()
    assert run("audit", "verify", "--audit-log", db, "--archive", str(out), "--public-key", pub) == 1
    assert capsys.readouterr().out.startswith("TAMPERED at index 4: root_mismatch")


def test_the_api_answers_gone_for_dropped_entries(world: Path) -> None:
    with AuditLog.open(world / "audit.db") as log:
        archive(log, AT_10, world / "a1", drop=True, location="s3://cold/a1")
        tokens = world / "tokens"
        tokens.write_text("token\n")
        with TestClient(create_app(log, tokens)) as client:
            client.headers["Authorization"] = "Bearer token"
            gone = client.get("/v1/entries")
            assert gone.status_code == 410 and gone.json()["code"] == "entries_archived"
            assert "s3://cold/a1" in gone.json()["error"]
            assert client.get("/v1/proof/inclusion", params={"index": 2}).status_code == 410
            page = client.get("/v1/entries", params={"after": 9, "limit": 2}).json()
            assert [e["index"] for e in page["entries"]] == [10, 11]
            assert client.get("/v1/proof/inclusion", params={"index": 12}).status_code == 200


def _manifest(directory: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((directory / "manifest.json").read_text())
    return loaded


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("format", "something/v9", "'format'"),
        ("first", -1, "'first'"),
        ("first", True, "'first'"),
        ("size", 2**63, "'size'"),
        ("size", 5, "'size' 5 is below first 10"),
        ("range_first", "!!", "'range_first'"),
        ("range_first", base64.b64encode(bytes(32)).decode(), "'range_first'"),  # size 10 needs 2 hashes
        ("before", 7, "'before'"),
        ("origin", None, "'origin'"),
    ],
)
def test_a_hostile_manifest_is_refused_naming_its_field(
    world: Path, field: str, value: object, needle: str
) -> None:
    with AuditLog.open(world / "audit.db") as log:
        archive(log, AT_10, world / "a1", drop=True)
        archive(log, AT_20, world / "a2")
    manifest = _manifest(world / "a2")
    manifest[field] = value
    (world / "a2" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ExportError) as caught:
        read_archive(world / "a2")
    assert caught.value.code == "archive_invalid"
    assert str(world / "a2" / "manifest.json") in caught.value.message and needle in caught.value.message


def test_an_oversized_or_malformed_manifest_and_extra_entries_are_refused(world: Path) -> None:
    with AuditLog.open(world / "audit.db") as log:
        archive(log, AT_20, world / "a1")
    manifest = world / "a1" / "manifest.json"
    good = manifest.read_bytes()
    manifest.write_bytes(b" " * (MANIFEST_LIMIT + 1) + b"{}")
    with pytest.raises(ExportError, match="over 65536 bytes"):
        read_archive(world / "a1")
    manifest.write_bytes(b"[" * 60_000)
    with pytest.raises(ExportError, match="is not JSON"):
        read_archive(world / "a1")
    manifest.write_bytes(good)
    entries = world / "a1" / "entries.jsonl"
    entries.write_bytes(entries.read_bytes() + b'{"extra":1}\n')
    with pytest.raises(ExportError, match=r"entries.jsonl:21: more entries than the manifest's size 20"):
        verify_archives([world / "a1"])


def test_an_export_reads_as_the_first_archive(world: Path) -> None:
    db, pub = str(world / "audit.db"), str(world / "keys" / "audit.pub")
    assert run("audit", "export", "--audit-log", db, "--out", str(world / "export")) == 0
    with AuditLog.open(world / "audit.db") as log:
        archive(log, AT_20, world / "a1", drop=True)
    assert read_archive(world / "export").size == 30
    assert (
        run("audit", "verify", "--audit-log", db, "--archive", str(world / "export"), "--public-key", pub)
        == 0
    )
