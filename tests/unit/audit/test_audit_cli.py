"""The ``audit`` verbs, run through argparse as the policyengine CLI will."""

from __future__ import annotations

import argparse
import csv
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from audit import AuditLog, load_signer
from audit.cli import add_commands

Make = Callable[..., dict[str, Any]]


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="policyengine")
    add_commands(parser.add_subparsers(dest="verb"))
    args = parser.parse_args(list(argv))
    code: int = args.func(args)
    return code


@pytest.fixture
def world(tmp_path: Path, make: Make) -> Path:
    assert run("audit", "keygen", "--origin", "example.com/cli", "--out", str(tmp_path / "keys")) == 0
    with AuditLog.open(tmp_path / "audit.db", signer=load_signer(tmp_path / "keys" / "audit.key")) as log:
        for i in range(12):
            log.append(make(i))
    return tmp_path


def test_query_json_lists_entries_with_their_index(world: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert (
        run(
            "audit",
            "query",
            "--audit-log",
            str(world / "audit.db"),
            "--verdict",
            "denied",
            "--format",
            "json",
        )
        == 0
    )
    rows = json.loads(capsys.readouterr().out)
    assert [r["index"] for r in rows] == [1, 4, 7, 10]
    assert {"index", "time", "source", "verdict", "resource", "user", "results"} <= set(rows[0])


@pytest.mark.parametrize("fmt", ["table", "jsonl", "csv"])
def test_query_formats(world: Path, capsys: pytest.CaptureFixture[str], fmt: str) -> None:
    capsys.readouterr()
    argv = [
        "audit",
        "query",
        "--audit-log",
        str(world / "audit.db"),
        "--namespace",
        "team-1",
        "--format",
        fmt,
    ]
    assert run(*argv, "--since", "2026-11-27T12:02:00Z", "--limit", "3") == 0
    out = capsys.readouterr().out
    if fmt == "jsonl":
        assert [json.loads(line)["index"] for line in out.splitlines()] == [4, 7, 10]
    elif fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(out)))
        assert [r["index"] for r in rows] == ["4", "7", "10"] and rows[0]["namespace"] == "team-1"
    else:
        assert out.splitlines()[0].split()[:4] == ["index", "time", "source", "verdict"]
        assert len(out.splitlines()) == 4


def test_verify_exit_codes(world: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db, pub = str(world / "audit.db"), str(world / "keys" / "audit.pub")
    assert run("audit", "verify", "--audit-log", db, "--public-key", pub) == 0
    assert run("audit", "verify", "--audit-log", db) == 2
    assert run("audit", "verify", "--audit-log", db, "--public-key", str(world / "missing.pub")) == 2
    import sqlite3

    con = sqlite3.connect(db)
    con.execute("UPDATE entries SET data = CAST('{}' AS BLOB) WHERE idx = 5")
    con.commit()
    con.close()
    capsys.readouterr()
    assert run("audit", "verify", "--audit-log", db, "--public-key", pub) == 1
    assert "TAMPERED at index 5" in capsys.readouterr().out


def test_verify_without_a_source_is_a_usage_error(world: Path) -> None:
    with pytest.raises(SystemExit) as caught:
        run("audit", "verify", "--public-key", "x")
    assert caught.value.code == 2


def test_checkpoint_prove_verify_proof_export(world: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db, keys = str(world / "audit.db"), world / "keys"
    capsys.readouterr()
    assert run("audit", "checkpoint", "--audit-log", db) == 0
    assert capsys.readouterr().out.startswith("example.com/cli\n12\n")
    assert run("audit", "checkpoint", "--audit-log", db, "--key", str(keys / "audit.key")) == 0
    proof = world / "entry.tlog-proof"
    assert run("audit", "prove", "--audit-log", db, "--index", "3", "--out", str(proof)) == 0
    for key in ("audit.pub", "audit.vkey"):
        assert run("audit", "verify-proof", str(proof), "--public-key", str(keys / key)) == 0
    proof.write_text(proof.read_text().replace("index 3", "index 4"))
    assert run("audit", "verify-proof", str(proof), "--public-key", str(keys / "audit.pub")) == 1
    assert run("audit", "export", "--audit-log", db, "--out", str(world / "export")) == 0
    assert run("audit", "verify", "--export", str(world / "export")) == 0
    assert (
        run("audit", "verify", "--export", str(world / "export"), "--public-key", str(keys / "audit.pub"))
        == 0
    )


def test_keygen_refuses_to_overwrite(world: Path) -> None:
    assert run("audit", "keygen", "--origin", "example.com/cli", "--out", str(world / "keys")) == 2


def test_missing_log_is_a_usage_error(tmp_path: Path) -> None:
    assert run("audit", "query", "--audit-log", str(tmp_path / "none.db")) == 2


def test_verify_reports_an_edited_origin_as_tampering(
    world: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import sqlite3

    db, keys = str(world / "audit.db"), world / "keys"
    con = sqlite3.connect(db)
    con.execute("UPDATE meta SET value = 'evil.example/log' WHERE key = 'origin'")
    con.commit()
    con.close()
    capsys.readouterr()
    assert run("audit", "verify", "--audit-log", db, "--public-key", str(keys / "audit.vkey")) == 1
    assert "TAMPERED at index 0: origin_mismatch" in capsys.readouterr().out
    assert run("audit", "verify", "--audit-log", db, "--public-key", str(keys / "audit.pub")) == 1


def test_unreadable_files_are_usage_errors_and_malformed_proofs_fail(world: Path) -> None:
    db, keys = str(world / "audit.db"), world / "keys"
    missing = str(world / "missing")
    pub = str(keys / "audit.pub")
    assert run("audit", "verify", "--audit-log", db, "--public-key", pub, "--checkpoint", missing) == 2
    assert run("audit", "verify-proof", missing, "--public-key", pub) == 2
    proof = world / "entry.tlog-proof"
    assert run("audit", "prove", "--audit-log", db, "--index", "3", "--out", str(proof)) == 0
    assert run("audit", "verify-proof", str(proof), "--public-key", pub, "--entry", missing) == 2
    garbage = world / "garbage.proof"
    for content in (b"\xff\xfe" + proof.read_bytes(), b"garbage", b""):
        garbage.write_bytes(content)
        for key in ("audit.pub", "audit.vkey"):
            assert run("audit", "verify-proof", str(garbage), "--public-key", str(keys / key)) == 1
    bad = world / "bad.checkpoint"
    bad.write_bytes(b"\xff\xfe")
    assert run("audit", "verify", "--audit-log", db, "--public-key", pub, "--checkpoint", str(bad)) == 1


def test_an_export_stripped_of_its_checkpoints_is_tampered_with_either_key(
    world: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db, keys, out = str(world / "audit.db"), world / "keys", world / "export"
    assert run("audit", "export", "--audit-log", db, "--out", str(out)) == 0
    (out / "checkpoints.jsonl").write_text("")
    for key in ("audit.pub", "audit.vkey"):
        capsys.readouterr()
        assert run("audit", "verify", "--export", str(out), "--public-key", str(keys / key)) == 1
        assert "TAMPERED at index 0: unsigned_entries" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        ("query", "--after", "99999999999999999999"),
        ("query", "--limit", "99999999999999999999"),
        ("query", "--limit", "-1"),
        ("prove", "--index", "1", "--size", "99999999999999999999"),
        ("prove", "--index", "-99999999999999999999"),
    ],
)
def test_integers_the_store_cannot_hold_are_usage_errors(world: Path, argv: tuple[str, ...]) -> None:
    with pytest.raises(SystemExit) as caught:
        run("audit", argv[0], "--audit-log", str(world / "audit.db"), *argv[1:])
    assert caught.value.code == 2


@pytest.mark.parametrize("option", ["--since", "--until"])
@pytest.mark.parametrize("when", ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+01:00"])
def test_times_outside_the_utc_range_are_usage_errors(world: Path, option: str, when: str) -> None:
    assert run("audit", "query", "--audit-log", str(world / "audit.db"), option, when) == 2


def _mixed(tmp_path: Path, make: Make) -> Path:
    """One entry holding a result of each outcome."""
    assert run("audit", "keygen", "--origin", "example.com/cli", "--out", str(tmp_path / "keys")) == 0
    outcomes = ("pass", "skip", "fail", "error", "excepted")
    results = [{"policy": f"p-{o}", "action": "deny", "outcome": o, "message": "m"} for o in outcomes]
    with AuditLog.open(tmp_path / "audit.db", signer=load_signer(tmp_path / "keys" / "audit.key")) as log:
        log.append(make(1, results=results))
    return tmp_path / "audit.db"


@pytest.mark.parametrize("fmt", ["table", "csv", "json"])
def test_query_shows_failing_and_excepted_results_unless_all_results(
    tmp_path: Path, make: Make, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    db = _mixed(tmp_path, make)
    capsys.readouterr()
    assert run("audit", "query", "--audit-log", str(db), "--format", fmt) == 0
    default = capsys.readouterr().out
    assert run("audit", "query", "--audit-log", str(db), "--format", fmt, "--all-results") == 0
    every = capsys.readouterr().out
    for shown in ("p-fail", "p-error", "p-excepted"):
        assert shown in default and shown in every
    for hidden in ("p-pass", "p-skip"):
        assert hidden not in default and hidden in every
